"""The training run folder's state: atomic writes, config.json, checkpoints (save, load with
``weights_only=True``, the resume check and the `_State` saved in them) and metrics.jsonl."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import ConfigError, InputError, OutputError
from .config import TrainConfig

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"
LAST_NAME = "checkpoint-last.pt"
BEST_NAME = "checkpoint-best.pt"
REPORT_NAME = "train-report.json"
ARCHITECTURE = "jansson2017-unet"


def _atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), then rename onto `path` (a killed run never leaves a half file).

    The file gets the umask's permissions (mkstemp alone would leave it 0600). Disk-full and other
    write errors (torch reports them as RuntimeError "enforce fail at inline_container.cc") become an
    OutputError naming the file.
    """
    from ..storage import atomic_path  # the one atomic writer

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write in {path.parent}: {exc.strerror}; choose a writable -o folder") from exc
    try:
        with atomic_path(path) as tmp:
            write(tmp)
    except OutputError:
        raise
    except (OSError, RuntimeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "the write failed (disk full?)"
        raise OutputError(f"cannot write {path}: {why}; free disk space or choose another -o folder") from exc


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
    """Load a checkpoint with ``weights_only=True`` (tensors, numbers, strings only; nothing unpickled).

    Raises InputError when the file is missing, is not a pairminer checkpoint (for example a pickle
    of Python objects, which is never loaded), or holds non-finite weights.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist; train a model first (`pairminer train`)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated, foreign, or a pickle with Python objects
        log.debug("torch.load(%s) failed: %s", path, exc)
        raise InputError(f"{path} is not a pairminer checkpoint (it is truncated, or holds objects other than "
                         "tensors and numbers, which pairminer never loads); retrain, or give the run folder of "
                         "`pairminer train`") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise InputError(f"{path} is not a pairminer checkpoint (no model weights in it); retrain or pick another run")
    bad = [k for k, v in ckpt["model"].items()
           if isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise InputError(f"{path} holds NaN or infinite weights ({bad[0]}{' and more' if len(bad) > 1 else ''}); "
                         "the run diverged: retrain with a lower --lr or check the shards for inf values")
    return ckpt


def _save_checkpoint(path: Path, doc: dict) -> None:
    _atomic_write(path, lambda tmp: torch.save(doc, tmp))


def _run_config_doc(cfg: TrainConfig, stft: dict, n_data_bins: int, n_bins: int, targets_dir: str) -> dict:
    return {
        "pairminer_version": __version__,
        "train": cfg.to_dict(),
        "data": {**stft, "bins_in_data": n_data_bins, "targets_dir": str(targets_dir)},
        "model": {
            "architecture": ARCHITECTURE,
            "source": cfg.source,
            "n_bins": n_bins,
            "patch_frames": cfg.patch_frames,
            "base_channels": cfg.base_channels,
            "dropped_bins": f"the top {n_data_bins - n_bins} of {n_data_bins} (bins {n_bins}..{n_data_bins - 1})",
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


def read_metrics(path: Path) -> list[dict]:
    """The lines of metrics.jsonl; a torn last line (a run killed mid-write) is dropped with a warning."""
    if not path.exists():
        return []
    lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    out = []
    for k, ln in enumerate(lines):
        try:
            doc = json.loads(ln)
            if not isinstance(doc, dict) or "step" not in doc:
                raise ValueError("not a metrics line")
        except ValueError:
            if k == len(lines) - 1:
                log.warning("%s: dropping a torn last line (the run was killed while writing it)", path)
                break
            raise InputError(f"{path} line {k + 1} is not a metrics line; move the file away to resume") from None
        out.append(doc)
    return out


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (they belong to lost steps)."""
    if not path.exists():
        return
    keep = [json.dumps(d) for d in read_metrics(path) if d["step"] <= step]
    _atomic_write(path, lambda tmp: Path(tmp).write_text("".join(ln + "\n" for ln in keep), encoding="utf-8"))


class _Metrics:
    def __init__(self, path: Path) -> None:
        self.f = open(path, "a", encoding="utf-8")

    def write(self, doc: dict) -> None:
        self.f.write(json.dumps({k: (_finite(v) if isinstance(v, float) else v) for k, v in doc.items()}) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


@dataclass
class _State:
    """Everything that moves during training (saved whole in checkpoint-last.pt)."""

    step: int = 0
    best_valid: float = math.inf
    best_step: int = -1
    last_valid: float = math.nan
    last_sdr_db: float = math.nan
    mix_sdr_db: float = math.nan
    lr: float = 0.0
    bad_checks: int = 0  # validations since the best one
    lr_bad_checks: int = 0  # validations since the best one or the last decay
    stopped_early: bool = False

    def to_ckpt(self) -> dict:
        return {"step": self.step, "best_valid_loss": float(self.best_valid), "best_step": self.best_step,
                "last_valid_loss": float(self.last_valid), "last_sdr_db": float(self.last_sdr_db),
                "mix_sdr_db": float(self.mix_sdr_db), "lr": float(self.lr), "bad_checks": self.bad_checks,
                "lr_bad_checks": self.lr_bad_checks, "stopped_early": self.stopped_early}

    @classmethod
    def from_ckpt(cls, ck: dict, lr: float) -> "_State":
        return cls(step=int(ck["step"]), best_valid=float(ck["best_valid_loss"]), best_step=int(ck["best_step"]),
                   last_valid=float(ck.get("last_valid_loss", math.nan)),
                   last_sdr_db=float(ck.get("last_sdr_db", math.nan)), mix_sdr_db=float(ck.get("mix_sdr_db", math.nan)),
                   lr=float(ck.get("lr", lr)), bad_checks=int(ck.get("bad_checks", 0)),
                   lr_bad_checks=int(ck.get("lr_bad_checks", 0)), stopped_early=bool(ck.get("stopped_early", False)))
