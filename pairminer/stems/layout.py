"""Layout helpers of the stems stage: bringing a version to the mix's rate and channels, slicing, stems.

Arrays are float32 (samples, channels).
"""

from __future__ import annotations

import numpy as np

from pairminer.errors import AudioError

KINDS = ("instrumental", "karaoke", "off_vocal", "acapella")


def conform(version: np.ndarray, src_sr: int, src_channels: int, sr: int, channels: int) -> np.ndarray:
    """Bring a version to the mix's rate and channel layout.

    Mono -> stereo duplicates the channel, stereo -> mono takes the mean. More than two channels on
    either side raise `AudioError`: a 5.1 (or other) version cannot be matched sample for sample to
    a stereo mix without knowing the downmix its master used, and guessing one (ITU-R BS.775
    coefficients vary by label and era) would pass an approximate match off as a waveform pair.

    Args:
        version: (samples,) or (samples, src_channels) float array.
        src_sr: its rate.
        src_channels: its channel count.
        sr: the mix's rate.
        channels: the mix's channel count (1 or 2).

    Returns:
        float32 (samples', channels) at `sr` (soxr "VHQ").

    Raises:
        AudioError: a layout with more than two channels, or a shape that does not match `src_channels`.
    """
    x = np.asarray(version, np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != src_channels:
        raise AudioError(f"version has shape {np.shape(version)}, expected (samples, {src_channels})")
    if src_channels > 2 or channels > 2:
        raise AudioError(f"cannot match a {src_channels}-channel version to a {channels}-channel mix sample "
                         "for sample: only mono and stereo are supported (the downmix is unknown)")
    if src_channels != channels:
        x = np.repeat(x, channels, axis=1) if src_channels == 1 else x.mean(axis=1, keepdims=True)
    if src_sr != sr:
        import soxr

        x = soxr.resample(x, src_sr, sr, quality="VHQ")
    return np.ascontiguousarray(x, np.float32)


def _check(mix: np.ndarray, version: np.ndarray, kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if mix.ndim != 2 or version.ndim != 2 or mix.shape[1] != version.shape[1]:
        raise AudioError(f"mix {mix.shape} and version {version.shape} must both be (samples, channels) with the "
                         "same channel count: call conform() first")
    if min(len(mix), len(version)) < 4096:
        raise AudioError("mix or version is shorter than 4096 samples")


def _stems(mix_c: np.ndarray, part: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mixture, vocals, instrumental) from the mix and the version's part of it.

    The other stem is the mix minus the version's part; `mixture` is then the float32 sum of the two
    stems, so ``vocals + instrumental == mixture`` holds exactly (float32 subtraction is not exactly
    invertible; the sum differs from the input mix by at most one float32 rounding, ~-150 dBFS).
    """
    part = part.astype(np.float32, copy=False)
    other = np.subtract(mix_c, part, dtype=np.float32)
    vocals, inst = (part, other) if kind == "acapella" else (other, part)
    return np.add(vocals, inst, dtype=np.float32), vocals, inst


def _covered(n_mix: int, n_ver: int, d: int) -> tuple[int, int]:
    return max(0, -d), min(n_mix, n_ver - d)


def _slice(version: np.ndarray, a: int, b: int) -> np.ndarray:
    """version[a:b] with zeros where the range leaves the array."""
    out = np.zeros((b - a, version.shape[1]), np.float32)
    lo, hi = max(a, 0), min(b, len(version))
    if hi > lo:
        out[lo - a:hi - a] = version[lo:hi]
    return out
