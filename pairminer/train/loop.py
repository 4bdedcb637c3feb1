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
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import __version__
from ..errors import ConfigError, InputError, OutputError
from ..runinfo import Timings, versions
from .config import TrainConfig
from .data import PatchSampler, RandomPatches, fixed_patches, read_manifest, split_rows, stft_params
from .model import UNet, normalise_patch

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
LAST_NAME = "checkpoint-last.pt"
BEST_NAME = "checkpoint-best.pt"
REPORT_NAME = "train-report.json"
ARCHITECTURE = "jansson2017-unet"


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


def resolve_device(name: str) -> torch.device:
    """auto -> cuda if available else cpu; cuda without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is visible to torch; use --device cpu or auto")
    return torch.device(name)


def _atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename onto `path` (a killed run never leaves a half file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write in {path.parent}: {exc.strerror}; choose a writable -o folder") from exc
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, doc: dict) -> None:
    from ..storage import write_json  # the one atomic JSON writer (umask-honouring, NaN -> null)

    write_json(path, json.loads(json.dumps(doc, default=_jsonable)))


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (tensors, numbers, strings only; nothing unpickled)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; train a model first (`pairminer train`)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated or foreign file
        raise InputError(f"{path} is not a readable pairminer checkpoint ({exc}); retrain or pick another run") from exc


def _save_checkpoint(path: Path, doc: dict) -> None:
    _atomic_write(path, lambda tmp: torch.save(doc, tmp))


def _run_config_doc(cfg: TrainConfig, stft: dict, n_data_bins: int, targets_dir: str) -> dict:
    return {
        "pairminer_version": __version__,
        "train": cfg.to_dict(),
        "data": {**stft, "bins_in_data": n_data_bins, "targets_dir": str(targets_dir)},
        "model": {
            "architecture": ARCHITECTURE,
            "source": cfg.source,
            "n_bins": cfg.n_bins,
            "patch_frames": cfg.patch_frames,
            "base_channels": cfg.base_channels,
            "dropped_bins": f"the top {n_data_bins - cfg.n_bins} of {n_data_bins} (bins {cfg.n_bins}..{n_data_bins - 1})",
            "normalisation": "each patch divided by the maximum of its mix magnitude",
        },
    }


def _check_resume(run_dir: Path, cfg: TrainConfig, stft: dict) -> None:
    old = json.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    old_cfg = TrainConfig.from_dict(old["train"])
    if old_cfg.model_dict() != cfg.model_dict():
        raise ConfigError(f"--resume: {run_dir} was trained with {old_cfg.model_dict()}, not {cfg.model_dict()}; "
                          "use the same model options or a new -o folder")
    old_stft = {k: old["data"][k] for k in ("sr_hz", "n_fft", "hop")}
    if old_stft != stft:
        raise ConfigError(f"--resume: {run_dir} was trained on STFT {old_stft}, these shards use {stft}")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (they belong to lost steps)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    _atomic_write(path, lambda tmp: Path(tmp).write_text("".join(ln + "\n" for ln in keep), encoding="utf-8"))


class _Metrics:
    def __init__(self, path: Path) -> None:
        self.f = open(path, "a", encoding="utf-8")

    def write(self, doc: dict) -> None:
        self.f.write(json.dumps({k: (_finite(v) if isinstance(v, float) else v) for k, v in doc.items()}) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from ..progress import Progress  # a bar in a terminal, bounded log lines elsewhere

    return Progress("train", total, unit="step", initial=initial)


@torch.no_grad()
def validation_loss(model: torch.nn.Module, mix: torch.Tensor, target: torch.Tensor, batch_size: int,
                    device: torch.device) -> float:
    """Mean L1 of ``mask * mix`` against the target over fixed patches (eval mode: no dropout).

    Args:
        mix, target: (n, 1, bins, frames) float32 unnormalised magnitudes (CPU).
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(mix), batch_size):
        m = mix[i:i + batch_size].to(device)
        t = target[i:i + batch_size].to(device)
        mn, tn, _ = normalise_patch(m, t)
        if device.type == "cuda":
            mn = mn.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            est = model(mn)
        total += float(F.l1_loss(est.float(), tn, reduction="sum"))
        count += tn.numel()
    model.train(was_training)
    return total / max(count, 1)


def run_train(targets_dir: str | Path, out_dir: str | Path, config: TrainConfig | None = None, *,
              resume: bool = False, progress: bool = True, scheduler: str | None = None) -> TrainResult:
    """Train a U-Net for one source on the shards of `pairminer targets`.

    Args:
        targets_dir: folder with manifest.parquet and shards/.
        out_dir: the run folder (created). A folder that already holds a run needs `resume=True`.
        config: TrainConfig (defaults: the paper's settings).
        resume: continue from ``checkpoint-last.pt`` (step count, optimizer state); when the run has
            already reached its planned steps nothing is trained and the existing outputs are returned.
        progress: show a tqdm bar with the loss and steps/s.
        scheduler: accepted for a uniform stage signature; training does not use Dask.

    Returns:
        TrainResult with the paths written and the losses.
    """
    cfg = config or TrainConfig()
    timings = Timings()
    run_dir = Path(out_dir)
    device = resolve_device(cfg.device)
    with timings.step("read_data"):
        manifest = read_manifest(targets_dir)
        stft = stft_params(manifest)
        n_data_bins = stft["n_fft"] // 2 + 1
        if cfg.n_bins > n_data_bins:
            raise ConfigError(f"train.n_bins={cfg.n_bins} but the shards have {n_data_bins} bins (n_fft "
                              f"{stft['n_fft']}); use n_bins <= {n_data_bins - n_data_bins % 64}")
        train_rows, valid_rows, notes = split_rows(manifest)
        kw = dict(channel=cfg.channel, n_bins=cfg.n_bins, patch_frames=cfg.patch_frames)
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
    write_json_atomic(paths[CONFIG_NAME], _run_config_doc(cfg, stft, n_data_bins, str(targets_dir)))

    torch.manual_seed(cfg.seed)
    model = UNet(base_channels=cfg.base_channels).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, best_valid, best_step, last_valid = 0, math.inf, -1, math.nan
    if resume and has_run:
        ckpt = load_checkpoint(paths[LAST_NAME], map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        for group in optimizer.param_groups:  # a changed --lr applies from here on
            group["lr"] = cfg.lr
        step, best_valid, best_step = int(ckpt["step"]), float(ckpt["best_valid_loss"]), int(ckpt["best_step"])
        last_valid = float(ckpt.get("last_valid_loss", math.nan))
        _truncate_metrics(paths[METRICS_NAME], step)
        log.info("resuming %s at step %d (best validation loss %.5f)", run_dir, step, best_valid)
    elif paths[METRICS_NAME].exists():
        paths[METRICS_NAME].unlink()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    torch.manual_seed(cfg.seed + step)  # fresh dropout noise after a resume

    steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(train_sampler.total_frames / (cfg.patch_frames * cfg.batch_size)))
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    start_step = step
    stats = {"patches_per_s": None, "data_wait_share": None, "last_train_loss": None}

    if step < total_steps:
        with timings.step("train"):
            step, best_valid, best_step, last_valid = _train_steps(
                model, optimizer, train_sampler, valid_mix, valid_target, cfg, device, paths, stft,
                step, total_steps, steps_per_epoch, best_valid, best_step, last_valid, stats, progress)
    else:
        log.info("%s already completed %d of %d steps; nothing to train", run_dir, step, total_steps)

    report = {
        "stage": "train",
        "pairminer_version": __version__,
        "config": cfg.to_dict(),
        "versions": versions(),
        "device": str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})",
        "data": {
            "targets_dir": str(targets_dir), **stft,
            "pairs": {"total": len(manifest), "train": len(train_rows), "valid": len(valid_rows),
                      "test": int((manifest["split"] == "test").sum())},
            "train_frames": train_sampler.total_frames, "valid_frames": valid_sampler.total_frames,
            "notes": notes,
        },
        "steps": {"start": start_step, "end": step, "planned": total_steps, "per_epoch": steps_per_epoch,
                  "run": step - start_step},
        "losses": {"last_train": stats["last_train_loss"], "last_valid": _finite(last_valid),
                   "best_valid": _finite(best_valid), "best_step": best_step},
        "throughput": {"patches_per_s": stats["patches_per_s"], "data_wait_share": stats["data_wait_share"]},
        "timings": timings.to_dict(),
    }
    write_json_atomic(paths[REPORT_NAME], report)
    return TrainResult(
        run_dir=str(run_dir), config_path=str(paths[CONFIG_NAME]), metrics_path=str(paths[METRICS_NAME]),
        checkpoint_last=str(paths[LAST_NAME]), checkpoint_best=str(paths[BEST_NAME]),
        report_path=str(paths[REPORT_NAME]), step=step, steps_run=step - start_step,
        best_valid_loss=float(best_valid), last_valid_loss=float(last_valid),
        n_train_pairs=len(train_rows), n_valid_pairs=len(valid_rows),
    )


def _train_steps(model, optimizer, sampler, valid_mix, valid_target, cfg: TrainConfig, device, paths, stft,
                 step, total_steps, steps_per_epoch, best_valid, best_step, last_valid, stats, progress):
    cuda = device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        RandomPatches(sampler, seed=cfg.seed * 1_000_003 + step), batch_size=cfg.batch_size,
        num_workers=cfg.num_workers, pin_memory=cuda, persistent_workers=False,
        prefetch_factor=4 if cfg.num_workers else None)
    net = torch.compile(model) if cfg.compile else model
    metrics = _Metrics(paths[METRICS_NAME])
    bar = _progress_bar(total_steps, step, progress)
    batches = iter(loader)
    model.train()
    loss_sum = torch.zeros((), device=device)
    n_logged, wait_s, t_log = 0, 0.0, time.perf_counter()

    def checkpoint(is_best: bool) -> None:
        base = {"model": model.state_dict(), "step": step, "best_valid_loss": float(best_valid),
                "best_step": best_step, "last_valid_loss": float(last_valid), "config": cfg.to_dict(),
                "stft": dict(stft), "architecture": ARCHITECTURE}
        if is_best:
            _save_checkpoint(paths[BEST_NAME], base)
        _save_checkpoint(paths[LAST_NAME], {**base, "optimizer": optimizer.state_dict()})

    t_start = time.perf_counter()
    try:
        while step < total_steps:
            t0 = time.perf_counter()
            mix, target = next(batches)
            mix = mix.to(device, non_blocking=True)
            target = target.to(device, non_blocking=True)
            wait_s += time.perf_counter() - t0
            mix, target, _ = normalise_patch(mix, target)
            if cuda:
                mix = mix.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                est = net(mix)
            loss = F.l1_loss(est.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += loss.detach()
            n_logged += 1
            out_of_time = bool(cfg.time_budget_s) and time.perf_counter() - t_start >= cfg.time_budget_s
            if step % cfg.log_every == 0 or step == total_steps or out_of_time:
                mean_loss = float(loss_sum) / n_logged  # syncs with the GPU once per log interval
                dt = time.perf_counter() - t_log
                stats.update(patches_per_s=round(n_logged * cfg.batch_size / dt, 3),
                             data_wait_share=round(wait_s / dt, 4), last_train_loss=mean_loss)
                metrics.write({"kind": "train", "step": step, "epoch": (step - 1) // steps_per_epoch + 1,
                               "loss": mean_loss, "lr": cfg.lr, "steps_per_s": n_logged / dt,
                               "patches_per_s": stats["patches_per_s"], "data_wait_share": stats["data_wait_share"]})
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.4f}", steps_per_s=f"{n_logged / dt:.2f}")
                loss_sum.zero_()
                n_logged, wait_s, t_log = 0, 0.0, time.perf_counter()
            if bar is not None:
                bar.update(1)
            due = step % cfg.valid_every == 0 if cfg.valid_every else step % steps_per_epoch == 0
            if out_of_time:
                log.info("time budget of %.0f s used at step %d; stopping (continue with --resume)",
                         cfg.time_budget_s, step)
            if due or step == total_steps or out_of_time:
                t_valid = time.perf_counter()
                last_valid = validation_loss(model, valid_mix, valid_target, cfg.batch_size, device)
                is_best = last_valid < best_valid
                if is_best:
                    best_valid, best_step = last_valid, step
                checkpoint(is_best)
                metrics.write({"kind": "valid", "step": step, "epoch": (step - 1) // steps_per_epoch + 1,
                               "loss": last_valid, "best": is_best, "best_loss": best_valid})
                log.debug("step %d: validation loss %.5f%s", step, last_valid, " (best)" if is_best else "")
                t_log += time.perf_counter() - t_valid  # validation time is not training throughput
            if out_of_time:
                break
    except KeyboardInterrupt:
        log.warning("interrupted at step %d; run again with --resume to continue from the last checkpoint", step)
        raise
    finally:
        metrics.close()
        if bar is not None:
            bar.close()
        del batches
    return step, best_valid, best_step, last_valid
