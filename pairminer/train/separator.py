"""Separation with trained U-Nets on arrays and signals: `Separator`, `separate_array`, `separate_signal`.

Model-rate processing (`Separator.mask`), per mono signal at the model's rate:

1. STFT with torch.stft: periodic Hann window of n_fft samples, hop `hop`, centred frames with zero
   padding (the same framing as librosa's default, which the targets stage uses).
2. The network runs convolutionally over time: patch_frames-frame patches with 50% overlap, each
   normalised by its own maximum as in training, batched. The per-patch masks are blended with a Hann
   weight over the patch (normalised by the summed weights), so there are no seams at patch edges.
   Bins above the model's `n_bins` (the dropped Nyquist bin by default) take the mask of the highest
   modelled bin.

Full-band stereo (the default of `separate_files`): the mask is computed once, by the model at its
own rate on the channels' mean, then applied to the STFT of *each input channel at the input's own
rate*. That STFT has the same window duration as the model's (n_fft_in = n_fft * sr_in / sr_model,
rounded to even) and a hop of n_fft_in / 4. The mask's grid is mapped onto it by linear
interpolation in time (frame centres in seconds) and in frequency (bin centres in Hz). Above the
model's Nyquist frequency the mask is extended by `EXTEND_RULES[extend]` (chosen by measurement; see
docs/training.md): ``rolloff`` (default) fades, per frame, from the mean mask over the top octave of
the model's band to 0 over one octave; ``band_mean`` repeats that top-octave mean; ``top_bin``
repeats the highest bin; ``zero`` / ``half`` use the fixed values 0 / 0.5. The masked STFTs are inverted with
torch.istft to exactly the input length, so the output keeps channels, rate and length.

With one model, the other source uses the complementary mask ``1 - mask``; with a vocals and an
instrumental model, each source uses its own mask.

soxr is imported lazily: this module imports with torch and numpy alone. Files: `train.separate`.
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
from .checkpoint import BEST_NAME, CONFIG_NAME, LAST_NAME, load_checkpoint
from .config import BIN_STEP, TrainConfig, check_stft
from .loop import resolve_device
from .model import UNet

log = logging.getLogger(__name__)

SOURCES = ("vocals", "instrumental")
EXTEND_RULES = ("band_mean", "top_bin", "rolloff", "zero", "half")
DEFAULT_EXTEND = "rolloff"


def stft(y: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Complex STFT of (..., samples) float32 -> (..., n_fft//2+1, 1 + (samples + hop)//hop) complex64, centred.

    The signal gets `hop` zeros at its end first: with centred frames alone, the last
    ``samples % hop`` samples are not covered by the inverse when that remainder exceeds n_fft/2
    (hop 768 > 512 by default), and `istft` would return zeros there.
    """
    window = torch.hann_window(n_fft, device=y.device)
    y = torch.nn.functional.pad(y, (0, hop))
    return torch.stft(y, n_fft, hop_length=hop, window=window, center=True, pad_mode="constant", return_complex=True)


def istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> torch.Tensor:
    """Inverse of `stft`: (..., n_fft//2+1, frames) complex -> (..., length) float32."""
    window = torch.hann_window(n_fft, device=spec.device)
    return torch.istft(spec, n_fft, hop_length=hop, window=window, center=True, length=length)


# ---------------------------------------------------------------------------------------------- run folders

def read_run_config(run_dir: str | Path) -> dict:
    """The run folder's config.json, validated with the trainer's own checks.

    Raises InputError / ConfigError naming the file and the fix when it is missing, not JSON,
    lacks keys, or names values training would refuse (e.g. n_fft 2**24).
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_NAME
    if not run_dir.is_dir():
        raise InputError(f"{run_dir} is not a folder; give the -o folder of `pairminer train`")
    if not path.is_file():
        raise InputError(f"{run_dir} is not a training run (no {CONFIG_NAME}); give the -o folder of `pairminer train`")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        train, data, model = doc["train"], doc["data"], doc["model"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a pairminer run config (unreadable JSON or missing 'train'/'data'/'model': "
                         f"{type(exc).__name__}); restore it or retrain into a new -o folder") from None
    try:
        TrainConfig.from_dict(train)
        check_stft(data.get("sr_hz"), data.get("n_fft"), data.get("hop"), f"{path} data")
        n_bins, frames = model.get("n_bins"), model.get("patch_frames")
        for name, v in (("n_bins", n_bins), ("patch_frames", frames)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v % BIN_STEP:
                raise ConfigError(f"{path} model: {name}={v!r} must be a positive multiple of 64")
        if n_bins > data["n_fft"] // 2 + 1:
            raise ConfigError(f"{path} model: n_bins={n_bins} exceeds the data's {data['n_fft'] // 2 + 1} bins")
        if frames > 4096:
            raise ConfigError(f"{path} model: patch_frames={frames} is larger than any recipe (at most 4096)")
    except ConfigError as exc:
        msg = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        raise ConfigError(f"{msg}; this run folder's config was edited or damaged: retrain into a new -o folder") from None
    return doc


def run_stft(run_dir: str | Path) -> tuple[int, int, int]:
    """(sr_hz, n_fft, hop) of a run folder's training data, from its validated config.json."""
    data = read_run_config(run_dir)["data"]
    return int(data["sr_hz"]), int(data["n_fft"]), int(data["hop"])


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
        doc = read_run_config(run_dir)
        cfg = TrainConfig.from_dict(doc["train"])
        names = [BEST_NAME, LAST_NAME] if checkpoint == "best" else [LAST_NAME]
        path = next((run_dir / n for n in names if (run_dir / n).exists()), run_dir / names[0])
        dev = resolve_device(device)
        ckpt = load_checkpoint(path, map_location=dev)
        model = UNet(base_channels=cfg.base_channels)
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError:
            raise InputError(f"{path} does not match {run_dir / CONFIG_NAME} (the config's base_channels "
                             f"{cfg.base_channels} gives other weight shapes); the config was edited or belongs "
                             "to another run: retrain, or restore the run's own config.json") from None
        model.to(dev).eval()
        if dev.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        data, m = doc["data"], doc["model"]
        return cls(model, cfg.source, int(m["n_bins"]), int(m["patch_frames"]), int(data["sr_hz"]),
                   int(data["n_fft"]), int(data["hop"]), dev, str(run_dir))

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


def _complete(masks: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for src, other in (("vocals", "instrumental"), ("instrumental", "vocals")):
        if src not in masks:
            masks[src] = 1.0 - masks[other]
    return masks


def separate_array(y: np.ndarray, separators: list[Separator], *, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Separate a mono signal at the models' sample rate (the band ends at the model's Nyquist frequency).

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
    masks = _complete({s.source: s.mask(mag, batch_size=batch_size) for s in separators})
    return {src: istft(spec * masks[src], n_fft, hop, len(y)).cpu().numpy().astype(np.float32) for src in SOURCES}


# ---------------------------------------------------------------------------------------------- full band

def input_stft(n_fft: int, model_sr_hz: int, sr_hz: int) -> tuple[int, int]:
    """(n_fft_in, hop_in) at the input's rate: the model's window duration, hop a quarter window."""
    n_in = max(16, 2 * int(round(n_fft * sr_hz / model_sr_hz / 2)))
    return n_in, n_in // 4


def _interp_axis(x: torch.Tensor, pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Linear interpolation of `x` along `dim` at fractional indices `pos` (clamped to the ends)."""
    n = x.shape[dim]
    pos = pos.clamp(0, n - 1)
    i0 = pos.floor().long().clamp(0, max(n - 2, 0))
    w = (pos - i0).clamp(0, 1)
    i1 = (i0 + 1).clamp(max=n - 1)
    shape = [1] * x.dim()
    shape[dim] = -1
    w = w.view(shape)
    return x.index_select(dim, i0) * (1 - w) + x.index_select(dim, i1) * w


def map_mask(mask: torch.Tensor, *, model_sr_hz: int, n_fft: int, hop: int, sr_hz: int, n_fft_in: int,
             hop_in: int, frames_in: int, extend: str = DEFAULT_EXTEND) -> torch.Tensor:
    """Map a model-rate mask onto the grid of an input-rate STFT (see the module docstring).

    Args:
        mask: (n_fft//2+1, frames) mask at the model's STFT.
        frames_in: frames of the input-rate STFT (frame u is centred at u * hop_in / sr_hz seconds).
        extend: rule above the model's Nyquist frequency, one of EXTEND_RULES.

    Returns:
        (n_fft_in//2+1, frames_in) float32 mask in [0, 1].
    """
    if extend not in EXTEND_RULES:
        raise ConfigError(f"--extend {extend!r}: choose one of {', '.join(EXTEND_RULES)}")
    dev = mask.device
    t_model = torch.arange(frames_in, device=dev, dtype=torch.float64) * (hop_in / sr_hz) * (model_sr_hz / hop)
    m_t = _interp_axis(mask.float(), t_model.float(), 1)  # (F_model, frames_in)
    bins_in = n_fft_in // 2 + 1
    f_hz = torch.arange(bins_in, device=dev, dtype=torch.float64) * (sr_hz / n_fft_in)
    j = (f_hz * (n_fft / model_sr_hz)).float()
    top = mask.shape[0] - 1
    inside = j <= top
    out = torch.empty(bins_in, frames_in, device=dev)
    out[inside] = _interp_axis(m_t, j[inside], 0)
    n_above = int((~inside).sum())
    if n_above:
        octave = m_t[top // 2:].mean(dim=0)  # (frames_in,) mean over the top octave of the model's band
        if extend == "top_bin":
            ext = m_t[top].expand(n_above, frames_in)
        elif extend == "band_mean":
            ext = octave.expand(n_above, frames_in)
        elif extend == "rolloff":
            ratio = (j[~inside] / top - 1.0).clamp(0, 1)[:, None]  # 0 at the model's Nyquist, 1 an octave up
            ext = octave[None] * (1.0 - ratio)
        else:
            ext = torch.full((n_above, frames_in), 0.0 if extend == "zero" else 0.5, device=dev)
        out[~inside] = ext
    return out.clamp(0, 1)


def _resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return np.ascontiguousarray(y, dtype=np.float32)
    import soxr

    return soxr.resample(y, sr_in, sr_out, quality="HQ").astype(np.float32)


def separate_signal(y: np.ndarray, sr_hz: int, separators: list[Separator], *, extend: str = DEFAULT_EXTEND,
                    batch_size: int = 8) -> dict[str, np.ndarray]:
    """Full-band separation of one block, all channels (see the module docstring).

    Args:
        y: (samples, channels) float32 at `sr_hz`, finite.
        sr_hz: the input's sample rate.

    Returns:
        {"vocals", "instrumental"}: (samples, channels) float32 at `sr_hz`.
    """
    model_sr, n_fft, hop = check_compatible(separators)
    device = separators[0].device
    n, ch = y.shape
    n_in, hop_in = input_stft(n_fft, model_sr, sr_hz)
    pad = max(0, n_in - n)  # very short blocks (a 1-sample file) are zero-padded, then trimmed
    yp = np.pad(y, ((0, pad), (0, 0))) if pad else y
    low = _resample(yp.mean(axis=1), sr_hz, model_sr)
    if len(low) < 2:
        low = np.pad(low, (0, 2 - len(low)))
    spec_low = stft(torch.from_numpy(low).to(device), n_fft, hop)
    masks = {s.source: s.mask(spec_low.abs(), batch_size=batch_size) for s in separators}
    x = torch.from_numpy(np.ascontiguousarray(yp.T, dtype=np.float32)).to(device)  # (channels, samples)
    spec = stft(x, n_in, hop_in)  # (channels, bins_in, frames_in)
    mapped = {src: map_mask(m, model_sr_hz=model_sr, n_fft=n_fft, hop=hop, sr_hz=sr_hz, n_fft_in=n_in,
                            hop_in=hop_in, frames_in=spec.shape[-1], extend=extend) for src, m in masks.items()}
    mapped = _complete(mapped)
    out = {}
    for src in SOURCES:
        z = istft(spec * mapped[src][None], n_in, hop_in, yp.shape[0])
        out[src] = z.T[:n].cpu().numpy().astype(np.float32)
    return out


def separate_mono_band_limited(y: np.ndarray, sr_hz: int, separators: list[Separator], *,
                               batch_size: int = 8) -> dict[str, np.ndarray]:
    """The pre-full-band output (`--mono`): channels averaged, vocals limited to the model's band.

    The model's estimate is resampled back to `sr_hz`; the other source is the input minus it, so
    above the model's Nyquist frequency everything goes to the instrumental (with a vocals model).

    Returns:
        {"vocals", "instrumental"}: (samples, 1) float32 at `sr_hz`.
    """
    model_sr, _, _ = check_compatible(separators)
    mono = y.mean(axis=1).astype(np.float32)
    n = len(mono)
    low = _resample(mono, sr_hz, model_sr)
    short = max(0, 64 - len(low))
    est = separate_array(np.pad(low, (0, short)) if short else low, separators, batch_size=batch_size)
    back = {s: _fit(_resample(v[: len(low)], model_sr, sr_hz), n) for s, v in est.items()}
    own = {s.source for s in separators}
    if own == {"vocals"}:
        back["instrumental"] = mono - back["vocals"]
    elif own == {"instrumental"}:
        back["vocals"] = mono - back["instrumental"]
    return {s: v[:, None] for s, v in back.items()}


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))
