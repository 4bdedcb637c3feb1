"""Separation with trained U-Nets, on arrays (decoding and file writing live in `pairminer.cli.train`).

Processing, per mono signal at the model's rate:

1. STFT with torch.stft: periodic Hann window of n_fft samples, hop `hop`, centred frames with zero
   padding (the same framing as librosa's default, which the targets stage uses).
2. The network runs convolutionally over time: 128-frame patches (the training patch length) with
   50% overlap, each normalised by its own maximum as in training, batched. The per-patch masks are
   blended with a Hann weight over the patch (normalised by the summed weights), so there are no
   seams at patch edges. Bins above the model's `n_bins` (the dropped Nyquist bin by default) take
   the mask of the highest modelled bin.
3. The mask multiplies the complex mix STFT (masked magnitude, mix phase) and torch.istft rebuilds
   a signal of exactly the input length.

With one model, the other source uses the complementary mask ``1 - mask``; with a vocals and an
instrumental model, each source uses its own mask.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, InputError
from .config import TrainConfig
from .loop import BEST_NAME, CONFIG_NAME, LAST_NAME, load_checkpoint, resolve_device
from .model import UNet

log = logging.getLogger(__name__)

SOURCES = ("vocals", "instrumental")


def stft(y: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT of (samples,) float32 -> (n_fft//2+1, 1 + (samples + hop)//hop) complex64, centred frames.

    The signal gets `hop` zeros at its end first: with centred frames alone, the last
    ``samples % hop`` samples are not covered by the inverse when that remainder exceeds n_fft/2
    (hop 768 > 512 by default), and `istft` would return zeros there.
    """
    window = torch.hann_window(n_fft, device=y.device)
    y = torch.nn.functional.pad(y, (0, hop))
    return torch.stft(y, n_fft, hop_length=hop, window=window, center=True, pad_mode="constant", return_complex=True)


def istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """Inverse of `stft`: (n_fft//2+1, frames) complex -> (length,) float32 (length: the original samples)."""
    window = torch.hann_window(n_fft, device=spec.device)
    return torch.istft(spec, n_fft, hop_length=hop, window=window, center=True, length=length)


@dataclass
class Separator:
    """A trained network for one source, ready to mask spectrograms.

    Attributes:
        model: the UNet in eval mode, on `device`.
        source: "vocals" or "instrumental".
        n_bins, patch_frames: the network's input size.
        sr_hz, n_fft, hop: STFT parameters of the training data.
        run_dir: where it was loaded from.
    """

    model: UNet
    source: str
    n_bins: int
    patch_frames: int
    sr_hz: int
    n_fft: int
    hop: int
    device: torch.device
    run_dir: str = ""

    @classmethod
    def from_run(cls, run_dir: str | Path, *, device: str = "auto", checkpoint: str = "best") -> "Separator":
        """Load a run folder written by `run_train` (checkpoint "best", falling back to "last")."""
        run_dir = Path(run_dir)
        cfg_path = run_dir / CONFIG_NAME
        if not cfg_path.exists():
            raise InputError(f"{run_dir} is not a training run (no {CONFIG_NAME}); give a -o folder of `pairminer train`")
        doc = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg = TrainConfig.from_dict(doc["train"])
        names = [BEST_NAME, LAST_NAME] if checkpoint == "best" else [LAST_NAME]
        path = next((run_dir / n for n in names if (run_dir / n).exists()), run_dir / names[0])
        dev = resolve_device(device)
        ckpt = load_checkpoint(path, map_location=dev)
        model = UNet(base_channels=cfg.base_channels)
        model.load_state_dict(ckpt["model"])
        model.to(dev).eval()
        if dev.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        data = doc["data"]
        return cls(model, cfg.source, cfg.n_bins, cfg.patch_frames, int(data["sr_hz"]), int(data["n_fft"]),
                   int(data["hop"]), dev, str(run_dir))

    @torch.no_grad()
    def mask(self, mag: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """Soft mask for a whole magnitude spectrogram.

        Args:
            mag: (n_fft//2+1, frames) float32 mix magnitudes.
            batch_size: patches per forward pass.

        Returns:
            (n_fft//2+1, frames) float32 mask in [0, 1], on mag's device.
        """
        n_all, frames = mag.shape
        T, hop_p = self.patch_frames, self.patch_frames // 2
        n_patches = max(1, math.ceil((frames + hop_p) / hop_p) - 1)
        padded = torch.zeros(self.n_bins, hop_p + n_patches * hop_p + hop_p, device=self.device)
        padded[:, hop_p:hop_p + frames] = mag[: self.n_bins].to(self.device, torch.float32)
        starts = torch.arange(n_patches) * hop_p
        weight = torch.hann_window(T, periodic=False, device=self.device).clamp_min(1e-3)
        acc = torch.zeros_like(padded)
        wsum = torch.zeros(padded.shape[1], device=self.device)
        cuda = self.device.type == "cuda"
        for b in range(0, n_patches, batch_size):
            s = starts[b:b + batch_size]
            x = torch.stack([padded[:, i:i + T] for i in s.tolist()])[:, None]  # (B, 1, bins, T)
            x = x / x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cuda):
                m = self.model.mask(x).float()[:, 0]  # (B, bins, T)
            for k, i in enumerate(s.tolist()):
                acc[:, i:i + T] += m[k] * weight
                wsum[i:i + T] += weight
        out = (acc / wsum.clamp_min(1e-8))[:, hop_p:hop_p + frames]
        if n_all > self.n_bins:  # dropped bins take the mask of the highest modelled bin
            out = torch.cat([out, out[-1:].expand(n_all - self.n_bins, frames)], dim=0)
        return out.to(mag.device)


def check_compatible(separators: list[Separator]) -> tuple[int, int, int]:
    """The shared (sr_hz, n_fft, hop); at most one model per source."""
    if not separators:
        raise ConfigError("give at least one trained run with -m RUN_DIR")
    params = {(s.sr_hz, s.n_fft, s.hop) for s in separators}
    if len(params) > 1:
        raise ConfigError(f"the runs use different STFT settings {sorted(params)}; give runs trained on the same shards")
    sources = [s.source for s in separators]
    if len(set(sources)) != len(sources):
        raise ConfigError(f"two runs separate the same source ({sources}); give at most one vocals and one instrumental run")
    return params.pop()


def separate_array(y: np.ndarray, separators: list[Separator], *, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Separate a mono signal at the models' sample rate.

    Args:
        y: (samples,) float32 mix at ``separators[0].sr_hz``.
        separators: one or two Separators (one per source) sharing STFT parameters.
        batch_size: patches per forward pass.

    Returns:
        {"vocals": (samples,), "instrumental": (samples,)} float32, same length as `y`. A source without
        its own model uses the complement of the other model's mask.
    """
    _, n_fft, hop = check_compatible(separators)
    device = separators[0].device
    x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(device)
    spec = stft(x, n_fft, hop)
    mag = spec.abs()
    masks = {s.source: s.mask(mag, batch_size=batch_size) for s in separators}
    for src, other in (("vocals", "instrumental"), ("instrumental", "vocals")):
        if src not in masks:
            masks[src] = 1.0 - masks[other]
    return {src: istft(spec * masks[src], n_fft, hop, len(y)).cpu().numpy().astype(np.float32) for src in SOURCES}
