"""The `train` stage config (a frozen dataclass; YAML section `train:`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Optional

from ..config import StageConfig
from ..errors import ConfigError

SOURCE_CHANNEL = {"instrumental": 1, "vocals": 2}
"""Shard channel of each source's target (channel 0 is |mix|)."""

BIN_STEP = 64
"""The U-Net halves its input six times, so bins and frames are multiples of 64."""

# Limits of an STFT a run folder may name (checked before any memory is allocated for it).
MAX_N_FFT = 16384
MAX_SR_HZ = 384_000


def bins_from_data(n_fft: int) -> int:
    """The model's bin count for data of this n_fft: the largest multiple of 64 <= n_fft // 2 + 1.

    1024 -> 512 (Jansson et al. 2017: the Nyquist bin dropped), 2048 -> 1024, 4096 -> 2048.
    """
    return (n_fft // 2 + 1) // BIN_STEP * BIN_STEP


def check_stft(sr_hz, n_fft, hop, where: str) -> None:
    """Raise ConfigError unless (sr_hz, n_fft, hop) is an STFT the trainer and separate can run."""
    for name, v in (("sr_hz", sr_hz), ("n_fft", n_fft), ("hop", hop)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where}: {name}={v!r} must be an integer")
    if not 1000 <= sr_hz <= MAX_SR_HZ:
        raise ConfigError(f"{where}: sr_hz={sr_hz} must be between 1000 and {MAX_SR_HZ} Hz")
    if not (BIN_STEP * 2 <= n_fft <= MAX_N_FFT) or n_fft % 2:
        raise ConfigError(f"{where}: n_fft={n_fft} must be an even number between {BIN_STEP * 2} and {MAX_N_FFT} "
                          "(the recipes use 1024 or 2048)")
    if not 0 < hop <= n_fft:
        raise ConfigError(f"{where}: hop={hop} must be between 1 and n_fft ({n_fft})")


@dataclass(frozen=True)
class TrainConfig(StageConfig):
    """Options of `pairminer train`. Defaults follow Jansson et al. (2017) where the paper says.

    Attributes:
        source: which target to learn: vocals (shard channel 2) or instrumental (channel 1).
        n_bins: frequency bins fed to the net, the lowest of the data's n_fft//2+1; 0 takes them from the
            data (the largest multiple of 64: 512 of 513 at n_fft 1024, 1024 of 1025 at n_fft 2048).
        patch_frames: STFT frames per patch (128 in the paper, about 12 s at 8192 Hz / hop 768).
        base_channels: channels of the first encoder layer (16 in the paper; doubles per layer to 512).
        batch_size: patches per step.
        lr: ADAM learning rate at the start (the paper's 1e-4 is slow for small data; 1e-3 with the
            plateau schedule converges in a fraction of the steps on CPU).
        lr_schedule: plateau (multiply the rate by `lr_decay` after `lr_patience` validations without a
            better loss), cosine (from lr to 0 over max_steps) or constant.
        lr_decay: factor of each plateau decay.
        lr_patience: validations without improvement before the rate decays (plateau schedule).
        early_stop_patience: stop after this many validations without a better validation loss (0: never).
        epochs: passes over the data; one epoch is `steps_per_epoch` steps (0: no epoch cap, the step
            budget decides).
        steps_per_epoch: 0 means total training frames / (patch_frames * batch_size), i.e. every frame
            is seen about once per epoch on average.
        max_steps: the step budget: stop after this many steps in all (0: no cap, `epochs` decides).
        time_budget_s: stop this call after this many seconds of training (0: no limit); the run then
            validates, checkpoints and can be continued with --resume.
        valid_every: validate every this many steps (0: at the end of each epoch).
        valid_patches: fixed patches drawn once (seeded) from the valid split for the validation loss.
        log_every: write a metrics line every this many steps.
        num_workers: DataLoader worker processes (0: load in the training process).
        threads: torch intra-op threads (0: torch's default, all cores).
        augment_prob: share of training patches rebuilt from their targets with random source gains
            (and possibly another pair's instrumental, see remix_prob); the rest keep the real |mix|.
        augment_gain_db: each source of a rebuilt patch gets a gain drawn uniformly in +-this many dB.
        remix_prob: share of rebuilt patches whose instrumental target comes from another random pair.
        skip_silent_target_db: if set, resample a patch whose target energy is more than this many dB
            below the mix energy (e.g. 40 skips vocal-free patches when training vocals); None: keep all.
        device: auto (cuda when available), cpu or cuda.
        compile: wrap the model in torch.compile.
        seed: seeds patch sampling, initial weights and dropout.
    """

    stage: ClassVar[str] = "train"

    source: Literal["vocals", "instrumental"] = "vocals"
    n_bins: int = 0
    patch_frames: int = 128
    base_channels: int = 16
    batch_size: int = 16
    lr: float = 1e-3
    lr_schedule: Literal["plateau", "cosine", "constant"] = "plateau"
    lr_decay: float = 0.5
    lr_patience: int = 4
    early_stop_patience: int = 12
    epochs: int = 0
    steps_per_epoch: int = 0
    max_steps: int = 20000
    time_budget_s: float = 0.0
    valid_every: int = 200
    valid_patches: int = 64
    log_every: int = 50
    num_workers: int = 2
    threads: int = 0
    augment_prob: float = 0.5
    augment_gain_db: float = 6.0
    remix_prob: float = 0.5
    skip_silent_target_db: Optional[float] = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False
    seed: int = 0

    def check(self) -> None:
        for name in ("lr", "lr_decay", "time_budget_s", "augment_prob", "augment_gain_db", "remix_prob"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"train.{name}={v!r}: must be a finite number")
        for name in ("n_bins", "patch_frames", "base_channels", "batch_size", "epochs", "valid_patches", "log_every",
                     "steps_per_epoch", "max_steps", "valid_every", "num_workers", "threads", "lr_patience",
                     "early_stop_patience", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"train.{name}={v!r}: must be a whole number")
        if self.n_bins < 0 or self.n_bins % BIN_STEP:
            raise ConfigError(f"train.n_bins={self.n_bins}: must be 0 (from the data) or a positive multiple of 64 "
                              "(the U-Net halves it six times); the paper uses 512")
        if self.patch_frames <= 0 or self.patch_frames % BIN_STEP:
            raise ConfigError(f"train.patch_frames={self.patch_frames}: must be a positive multiple of 64 "
                              "(the U-Net halves it six times); the paper uses 128")
        for name in ("base_channels", "batch_size", "valid_patches", "log_every", "lr_patience"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name}={getattr(self, name)}: must be at least 1")
        for name in ("epochs", "steps_per_epoch", "max_steps", "valid_every", "num_workers", "threads",
                     "early_stop_patience"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name}={getattr(self, name)}: must be 0 or more")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"train.seed={self.seed}: must be between 0 and 2**32 - 1")
        if self.epochs == 0 and self.max_steps == 0:
            raise ConfigError("train: epochs and max_steps are both 0 (no end); give a step budget, e.g. max_steps 20000")
        if self.time_budget_s < 0:
            raise ConfigError(f"train.time_budget_s={self.time_budget_s}: must be 0 (no limit) or more seconds")
        if not self.lr > 0:
            raise ConfigError(f"train.lr={self.lr}: must be positive (default 1e-3)")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"train.lr_decay={self.lr_decay}: must be in (0, 1] (default 0.5)")
        for name in ("augment_prob", "remix_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"train.{name}={getattr(self, name)}: must be a probability between 0 and 1")
        if not 0 <= self.augment_gain_db <= 40:
            raise ConfigError(f"train.augment_gain_db={self.augment_gain_db}: must be between 0 and 40 dB")
        if self.skip_silent_target_db is not None and not (math.isfinite(self.skip_silent_target_db)
                                                           and self.skip_silent_target_db > 0):
            raise ConfigError("train.skip_silent_target_db: give a positive number of dB (e.g. 40), or leave it unset")

    @property
    def channel(self) -> int:
        """Shard channel holding this source's target."""
        return SOURCE_CHANNEL[self.source]

    def resolved_bins(self, n_fft: int) -> int:
        """The model's bins for data of this n_fft (n_bins, or from the data when 0)."""
        return self.n_bins or bins_from_data(n_fft)

    def model_dict(self) -> dict:
        """The options that fix the network's shape (must match when resuming or separating)."""
        return {"n_bins": self.n_bins, "patch_frames": self.patch_frames, "base_channels": self.base_channels,
                "source": self.source}
