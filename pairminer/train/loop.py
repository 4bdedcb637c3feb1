"""The training loop: `run_train(targets_dir, run_dir, config)`.

Run folder (RUN_DIR):

* ``config.json``: the TrainConfig, the data's STFT parameters (sr_hz, n_fft, hop) and the model's
  input layout, so `separate` can check that audio is processed as in training;
* ``metrics.jsonl``: one JSON object per line, ``{"kind": "train", ...}`` every `log_every` steps and
  ``{"kind": "valid", ...}`` per validation;
* ``checkpoint-last.pt`` (model, optimizer, step; rewritten at each validation and at the end) and
  ``checkpoint-best.pt`` (model at the lowest validation loss). Both hold only tensors, numbers and
  strings and load with ``torch.load(path, weights_only=True)``;
* ``train-report.json``: config, versions, pair/frame counts, losses, throughput, timings.

The run folder's files are written and read by `train.checkpoint`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import __version__
from ..errors import ConfigError, InputError, OutputError
from ..runinfo import Timings, versions
from .checkpoint import _atomic_write  # noqa: F401 (imported from here by tests)
from .checkpoint import (ARCHITECTURE, BEST_NAME, CONFIG_NAME, LAST_NAME, METRICS_NAME, REPORT_NAME, _check_resume,
                         _finite, _Metrics, _run_config_doc, _save_checkpoint, _State, _truncate_metrics,
                         load_checkpoint, read_metrics, write_json_atomic)
from .config import TrainConfig, bins_from_data, check_stft
from .data import COVER_COLUMNS, PatchBatches, PatchSampler, fixed_patches, read_manifest, split_rows, stft_params
from .model import UNet, normalise_patch

__all__ = ["ARCHITECTURE", "BEST_NAME", "CONFIG_NAME", "DivergedError", "LAST_NAME", "METRICS_NAME", "REPORT_NAME",
           "TrainResult", "load_checkpoint", "read_metrics", "resolve_device", "run_train", "validate",
           "validation_loss", "write_json_atomic"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What `run_train` wrote and how far it got."""

    run_dir: str
    config_path: str
    metrics_path: str
    checkpoint_last: str
    checkpoint_best: str
    report_path: str
    step: int  # steps completed in all, including earlier runs that this one resumed
    steps_run: int  # steps taken by this call
    best_valid_loss: float
    last_valid_loss: float
    n_train_pairs: int
    n_valid_pairs: int
    valid_sdr_db: float = math.nan  # magnitude-domain SDR of the last validation (see `validate`)
    valid_mix_sdr_db: float = math.nan  # the same for the mixture as the estimate
    stopped_early: bool = False


def resolve_device(name: str) -> torch.device:
    """auto -> cuda if available else cpu; cuda without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to torch; use --device cpu or auto")
    return torch.device(name)


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from ..progress import Progress  # a bar in a terminal, bounded log lines elsewhere

    return Progress("train", total, unit="step", initial=initial)


def _sdr_db(target: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """Per-patch magnitude SDR 10 log10(sum t^2 / sum (t - e)^2); NaN where the target is silent."""
    num = target.square().sum(dim=(1, 2, 3))
    den = (target - est).square().sum(dim=(1, 2, 3)).clamp_min(1e-12)
    sdr = 10.0 * torch.log10(num.clamp_min(1e-12) / den)
    return torch.where(num > 1e-10, sdr, torch.full_like(sdr, math.nan))


@torch.no_grad()
def validate(model: torch.nn.Module, mix: torch.Tensor, target: torch.Tensor, batch_size: int,
             device: torch.device) -> dict:
    """Validation over fixed patches (eval mode: no dropout).

    Args:
        mix, target: (n, 1, bins, frames) float32 unnormalised magnitudes (CPU).

    Returns:
        {"loss": mean L1 of ``mask * mix`` against the target (normalised patches),
         "sdr_db": median magnitude-domain SDR of the estimate over patches with a non-silent target,
         "mix_sdr_db": the same with the mixture as the estimate (the baseline the gain is measured on)}.
    """
    was_training = model.training
    model.eval()
    total, count, sdr, mix_sdr = 0.0, 0, [], []
    for i in range(0, len(mix), batch_size):
        m = mix[i:i + batch_size].to(device)
        t = target[i:i + batch_size].to(device)
        mn, tn, _ = normalise_patch(m, t)
        if device.type == "cuda":
            mn = mn.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            est = model(mn)
        est = est.float()
        total += float(F.l1_loss(est, tn, reduction="sum"))
        count += tn.numel()
        sdr.append(_sdr_db(tn, est).cpu())
        mix_sdr.append(_sdr_db(tn, mn.float()).cpu())
    model.train(was_training)

    def med(parts):
        v = torch.cat(parts)
        v = v[~torch.isnan(v)]
        return float(v.median()) if v.numel() else math.nan

    return {"loss": total / max(count, 1), "sdr_db": med(sdr), "mix_sdr_db": med(mix_sdr)}


def validation_loss(model: torch.nn.Module, mix: torch.Tensor, target: torch.Tensor, batch_size: int,
                    device: torch.device) -> float:
    """Mean L1 of ``mask * mix`` against the target over fixed patches (see `validate`)."""
    return validate(model, mix, target, batch_size, device)["loss"]


class DivergedError(InputError):
    """The loss became NaN or infinite: training stops before a bad checkpoint is written."""

    exit_code = 1


def _diverged(step: int, what: str) -> DivergedError:
    return DivergedError(f"training stopped at step {step}: the {what} is NaN or infinite (the run diverged); "
                         "the last good checkpoint is kept; lower --lr, or check the shards for inf values "
                         "(rerun `pairminer targets`)")


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, mix: torch.Tensor, target: torch.Tensor, *,
               bf16: bool, channels_last: bool) -> torch.Tensor:
    """One optimiser step on a normalised batch (L1 on magnitudes); returns the loss tensor (not synced)."""
    if channels_last:
        mix = mix.contiguous(memory_format=torch.channels_last)
    with torch.autocast(mix.device.type, dtype=torch.bfloat16, enabled=bf16):
        est = net(mix)
    loss = F.l1_loss(est.float(), target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def run_train(targets_dir: str | Path, out_dir: str | Path, config: TrainConfig | None = None, *,
              resume: bool = False, progress: bool = True, scheduler: str | None = None) -> TrainResult:
    """Train a U-Net for one source on the shards of `pairminer targets`.

    Args:
        targets_dir: folder with manifest.parquet and shards/.
        out_dir: the run folder (created). A folder that already holds a run needs `resume=True`.
        config: TrainConfig (defaults: see its docstring).
        resume: continue from ``checkpoint-last.pt`` (step, optimizer, schedule and RNG state, so the
            result is the one of an uninterrupted run); when the run has already reached its planned
            steps (or stopped early) nothing is trained and the existing outputs are returned.
        progress: show a tqdm bar with the loss and steps/s.
        scheduler: accepted for a uniform stage signature; training does not use Dask.

    Returns:
        TrainResult with the paths written and the losses.
    """
    cfg = config or TrainConfig()
    timings = Timings()
    run_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    with timings.step("read_data"):
        manifest = read_manifest(targets_dir)
        stft = stft_params(manifest)
        check_stft(stft["sr_hz"], stft["n_fft"], stft["hop"], f"{Path(targets_dir) / 'manifest.parquet'}")
        n_data_bins = stft["n_fft"] // 2 + 1
        n_bins = cfg.resolved_bins(stft["n_fft"])
        if n_bins > n_data_bins or n_bins <= 0:
            raise ConfigError(f"train.n_bins={cfg.n_bins} but the shards have {n_data_bins} bins (n_fft "
                              f"{stft['n_fft']}); use n_bins 0 (from the data) or <= {bins_from_data(stft['n_fft'])}")
        train_rows, valid_rows, notes = split_rows(manifest)
        kw = dict(channel=cfg.channel, n_bins=n_bins, patch_frames=cfg.patch_frames)
        train_sampler = PatchSampler(targets_dir, train_rows, skip_silent_target_db=cfg.skip_silent_target_db, **kw)
        valid_sampler = PatchSampler(targets_dir, valid_rows, **kw)
        valid_mix, valid_target = fixed_patches(valid_sampler, cfg.valid_patches, cfg.seed)

    paths = {n: run_dir / n for n in (CONFIG_NAME, METRICS_NAME, LAST_NAME, BEST_NAME, REPORT_NAME)}
    has_run = paths[LAST_NAME].exists()
    if has_run and not resume:
        raise OutputError(f"{run_dir} already holds a training run; pass --resume to continue it or choose a new -o")
    if resume and has_run:
        _check_resume(run_dir, cfg, stft)
    elif resume:
        log.info("%s has no checkpoint yet; starting a new run", run_dir)
    write_json_atomic(paths[CONFIG_NAME], _run_config_doc(cfg, stft, n_data_bins, n_bins, str(targets_dir)))

    torch.manual_seed(cfg.seed)
    model = UNet(base_channels=cfg.base_channels).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    state = _State(lr=cfg.lr)
    if resume and has_run:
        ckpt = load_checkpoint(paths[LAST_NAME], map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = _State.from_ckpt(ckpt, cfg.lr)
        if "torch_rng" in ckpt:  # dropout noise continues exactly where the checkpoint left it
            torch.set_rng_state(ckpt["torch_rng"].cpu())
        if "cuda_rng" in ckpt and device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["cuda_rng"].cpu())
        _truncate_metrics(paths[METRICS_NAME], state.step)
        log.info("resuming %s at step %d (best validation loss %.5f)", run_dir, state.step, state.best_valid)
    elif paths[METRICS_NAME].exists():
        paths[METRICS_NAME].unlink()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)

    steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(train_sampler.total_frames / (cfg.patch_frames * cfg.batch_size)))
    caps = [c for c in (cfg.epochs * steps_per_epoch, cfg.max_steps) if c]
    total_steps = min(caps)
    start_step = state.step
    stats = {"patches_per_s": None, "data_wait_share": None, "last_train_loss": None}

    if state.step < total_steps and not state.stopped_early:
        with timings.step("train"):
            _train_steps(model, optimizer, train_sampler, valid_mix, valid_target, cfg, device, paths, stft,
                         state, total_steps, steps_per_epoch, stats, progress)
    else:
        log.info("%s already completed %d of %d steps%s; nothing to train", run_dir, state.step, total_steps,
                 " (stopped early)" if state.stopped_early else "")

    report = {
        "stage": "train",
        "pairminer_version": __version__,
        "config": cfg.to_dict(),
        "versions": versions(),
        "device": str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})",
        "threads": torch.get_num_threads(),
        "data": {
            "targets_dir": str(targets_dir), **stft, "n_bins": n_bins,
            "pairs": {"total": len(manifest), "train": len(train_rows), "valid": len(valid_rows),
                      "test": int((manifest["split"] == "test").sum())},
            "train_frames": train_sampler.total_frames, "valid_frames": valid_sampler.total_frames,
            "covered_frames_from": "manifest cover columns" if all(c in manifest.columns for c in COVER_COLUMNS)
            else "whole pairs (no cover columns)",
            "notes": notes,
        },
        "steps": {"start": start_step, "end": state.step, "planned": total_steps, "per_epoch": steps_per_epoch,
                  "run": state.step - start_step},
        "stopped_early": state.stopped_early,
        "losses": {"last_train": stats["last_train_loss"], "last_valid": _finite(state.last_valid),
                   "best_valid": _finite(state.best_valid), "best_step": state.best_step,
                   "valid_sdr_db": _finite(state.last_sdr_db), "valid_mix_sdr_db": _finite(state.mix_sdr_db),
                   "final_lr": state.lr},
        "throughput": {"patches_per_s": stats["patches_per_s"], "data_wait_share": stats["data_wait_share"]},
        "timings": timings.to_dict(),
    }
    write_json_atomic(paths[REPORT_NAME], report)
    return TrainResult(
        run_dir=str(run_dir), config_path=str(paths[CONFIG_NAME]), metrics_path=str(paths[METRICS_NAME]),
        checkpoint_last=str(paths[LAST_NAME]), checkpoint_best=str(paths[BEST_NAME]),
        report_path=str(paths[REPORT_NAME]), step=state.step, steps_run=state.step - start_step,
        best_valid_loss=float(state.best_valid), last_valid_loss=float(state.last_valid),
        n_train_pairs=len(train_rows), n_valid_pairs=len(valid_rows),
        valid_sdr_db=float(state.last_sdr_db), valid_mix_sdr_db=float(state.mix_sdr_db),
        stopped_early=state.stopped_early,
    )


def _set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _train_steps(model, optimizer, sampler, valid_mix, valid_target, cfg: TrainConfig, device, paths, stft,
                 state: _State, total_steps, steps_per_epoch, stats, progress) -> None:
    cuda = device.type == "cuda"
    data = PatchBatches(sampler, cfg.batch_size, cfg.seed, augment_prob=cfg.augment_prob,
                        augment_gain_db=cfg.augment_gain_db, remix_prob=cfg.remix_prob)
    loader = torch.utils.data.DataLoader(
        data, batch_size=None, sampler=range(state.step, total_steps), num_workers=cfg.num_workers,
        pin_memory=cuda, persistent_workers=False, prefetch_factor=4 if cfg.num_workers else None,
        generator=torch.Generator().manual_seed(cfg.seed))  # own generator: the global RNG drives dropout only
    net = torch.compile(model) if cfg.compile else model
    metrics = _Metrics(paths[METRICS_NAME])
    bar = _progress_bar(total_steps, state.step, progress)
    batches = iter(loader)
    model.train()
    loss_sum = torch.zeros((), device=device)
    n_logged, wait_s, t_log = 0, 0.0, time.perf_counter()
    if cfg.lr_schedule != "cosine":
        _set_lr(optimizer, state.lr)

    def checkpoint(is_best: bool) -> None:
        base = {"model": model.state_dict(), **state.to_ckpt(), "config": cfg.to_dict(), "stft": dict(stft),
                "architecture": ARCHITECTURE}
        if is_best:
            _save_checkpoint(paths[BEST_NAME], base)
        extra = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
        if cuda:
            extra["cuda_rng"] = torch.cuda.get_rng_state()
        _save_checkpoint(paths[LAST_NAME], {**base, **extra})

    t_start = time.perf_counter()
    try:
        while state.step < total_steps:
            t0 = time.perf_counter()
            mix, target, error = next(batches)
            if error:
                raise InputError(error)
            mix = mix.to(device, non_blocking=True)
            target = target.to(device, non_blocking=True)
            wait_s += time.perf_counter() - t0
            mix, target, _ = normalise_patch(mix, target)
            if cfg.lr_schedule == "cosine":
                state.lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * state.step / max(total_steps, 1)))
                _set_lr(optimizer, state.lr)
            loss = train_step(net, optimizer, mix, target, bf16=cuda, channels_last=cuda)
            state.step += 1
            step = state.step
            loss_sum += loss.detach()
            n_logged += 1
            out_of_time = bool(cfg.time_budget_s) and time.perf_counter() - t_start >= cfg.time_budget_s
            due = step % cfg.valid_every == 0 if cfg.valid_every else step % steps_per_epoch == 0
            validating = due or step == total_steps or out_of_time
            if step % cfg.log_every == 0 or validating:
                mean_loss = float(loss_sum) / n_logged  # syncs with the GPU once per log interval
                if not math.isfinite(mean_loss):
                    raise _diverged(step, "training loss")
                dt = time.perf_counter() - t_log
                stats.update(patches_per_s=round(n_logged * cfg.batch_size / dt, 3),
                             data_wait_share=round(wait_s / dt, 4), last_train_loss=mean_loss)
                metrics.write({"kind": "train", "step": step, "epoch": (step - 1) // steps_per_epoch + 1,
                               "loss": mean_loss, "lr": state.lr, "steps_per_s": n_logged / dt,
                               "patches_per_s": stats["patches_per_s"], "data_wait_share": stats["data_wait_share"]})
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.4f}", steps_per_s=f"{n_logged / dt:.2f}")
                loss_sum.zero_()
                n_logged, wait_s, t_log = 0, 0.0, time.perf_counter()
            if bar is not None:
                bar.update(1)
            if out_of_time:
                log.info("time budget of %.0f s used at step %d; stopping (continue with --resume)",
                         cfg.time_budget_s, step)
            if validating:
                t_valid = time.perf_counter()
                v = validate(model, valid_mix, valid_target, cfg.batch_size, device)
                if not math.isfinite(v["loss"]):
                    raise _diverged(step, "validation loss")
                state.last_valid, state.last_sdr_db, state.mix_sdr_db = v["loss"], v["sdr_db"], v["mix_sdr_db"]
                is_best = v["loss"] < state.best_valid
                if is_best:
                    state.best_valid, state.best_step, state.bad_checks, state.lr_bad_checks = v["loss"], step, 0, 0
                else:
                    state.bad_checks += 1
                    state.lr_bad_checks += 1
                    if cfg.lr_schedule == "plateau" and state.lr_bad_checks >= cfg.lr_patience:
                        state.lr *= cfg.lr_decay
                        state.lr_bad_checks = 0
                        _set_lr(optimizer, state.lr)
                        log.info("step %d: no better validation loss in %d checks; learning rate now %.3g",
                                 step, cfg.lr_patience, state.lr)
                    if cfg.early_stop_patience and state.bad_checks >= cfg.early_stop_patience:
                        state.stopped_early = True
                        log.info("step %d: no better validation loss in %d checks; stopping early (best at step %d)",
                                 step, cfg.early_stop_patience, state.best_step)
                checkpoint(is_best)
                metrics.write({"kind": "valid", "step": step, "epoch": (step - 1) // steps_per_epoch + 1,
                               "loss": v["loss"], "sdr_db": v["sdr_db"], "mix_sdr_db": v["mix_sdr_db"],
                               "sdr_gain_db": v["sdr_db"] - v["mix_sdr_db"], "best": is_best,
                               "best_loss": state.best_valid, "lr": state.lr})
                log.debug("step %d: validation loss %.5f, SDR %.2f dB%s", step, v["loss"], v["sdr_db"],
                          " (best)" if is_best else "")
                t_log += time.perf_counter() - t_valid  # validation time is not training throughput
            if out_of_time or state.stopped_early:
                break
    except KeyboardInterrupt:
        log.warning("interrupted at step %d; run again with --resume to continue from the last checkpoint", state.step)
        raise
    finally:
        metrics.close()
        if bar is not None:
            bar.close()
        del batches
