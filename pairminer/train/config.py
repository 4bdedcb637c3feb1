"""The `train` stage config (a frozen dataclass; YAML section `train:`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

from ..config import StageConfig
from ..errors import ConfigError

SOURCE_CHANNEL = {"instrumental": 1, "vocals": 2}
"""Shard channel of each source's target (channel 0 is |mix|)."""


@dataclass(frozen=True)
class TrainConfig(StageConfig):
    """Options of `pairminer train`. Defaults follow Jansson et al. (2017) where the paper says.

    Attributes:
        source: which target to learn: vocals (shard channel 2) or instrumental (channel 1).
        n_bins: frequency bins fed to the net, the lowest of the data's n_fft//2+1 (512 drops the Nyquist bin).
        patch_frames: STFT frames per patch (128 in the paper, about 12 s at 8192 Hz / hop 768).
        base_channels: channels of the first encoder layer (16 in the paper; doubles per layer to 512).
        batch_size: patches per step.
        lr: ADAM learning rate (1e-4 in the paper; ADAM betas are torch's defaults 0.9, 0.999).
        epochs: passes over the data; one epoch is `steps_per_epoch` steps.
        steps_per_epoch: 0 means total training frames / (patch_frames * batch_size), i.e. every frame
            is seen about once per epoch on average.
        max_steps: stop after this many steps in all (0: no cap, `epochs` decides).
        time_budget_s: stop this call after this many seconds of training (0: no limit); the run then
            validates, checkpoints and can be continued with --resume.
        valid_every: validate every this many steps (0: at the end of each epoch).
        valid_patches: fixed patches drawn once (seeded) from the valid split for the validation loss.
        log_every: write a metrics line every this many steps.
        num_workers: DataLoader worker processes (0: load in the training process).
        skip_silent_target_db: if set, resample a patch whose target energy is more than this many dB
            below the mix energy (e.g. 40 skips vocal-free patches when training vocals); None: keep all.
        device: auto (cuda when available), cpu or cuda.
        compile: wrap the model in torch.compile.
        seed: seeds patch sampling, initial weights and dropout.
    """

    stage: ClassVar[str] = "train"

    source: Literal["vocals", "instrumental"] = "vocals"
    n_bins: int = 512
    patch_frames: int = 128
    base_channels: int = 16
    batch_size: int = 16
    lr: float = 1e-4
    epochs: int = 20
    steps_per_epoch: int = 0
    max_steps: int = 0
    time_budget_s: float = 0.0
    valid_every: int = 0
    valid_patches: int = 64
    log_every: int = 50
    num_workers: int = 2
    skip_silent_target_db: Optional[float] = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    seed: int = 0

    def check(self) -> None:
        for name in ("n_bins", "patch_frames"):
            v = getattr(self, name)
            if v <= 0 or v % 64:
                raise ConfigError(f"train.{name}={v}: must be a positive multiple of 64 "
                                  "(the U-Net halves it six times); the paper uses n_bins 512, patch_frames 128")
        positive = ("base_channels", "batch_size", "epochs", "valid_patches", "log_every")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name}={getattr(self, name)}: must be at least 1")
        for name in ("steps_per_epoch", "max_steps", "valid_every", "num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name}={getattr(self, name)}: must be 0 or more")
        if self.time_budget_s < 0:
            raise ConfigError(f"train.time_budget_s={self.time_budget_s}: must be 0 (no limit) or more seconds")
        if not self.lr > 0:
            raise ConfigError(f"train.lr={self.lr}: must be positive (the paper uses 1e-4)")
        if self.skip_silent_target_db is not None and self.skip_silent_target_db <= 0:
            raise ConfigError("train.skip_silent_target_db: give a positive number of dB (e.g. 40), or leave it unset")

    @property
    def channel(self) -> int:
        """Shard channel holding this source's target."""
        return SOURCE_CHANNEL[self.source]

    def model_dict(self) -> dict:
        """The options that fix the network's shape (must match when resuming or separating)."""
        return {"n_bins": self.n_bins, "patch_frames": self.patch_frames, "base_channels": self.base_channels,
                "source": self.source}
