"""Sample-accurate alignment and gain matching of a version (instrumental or acapella) to its mix.

Pure numpy/scipy. Conventions: signals are mono float32 at one sample rate; an offset of
``offset_samples = d > 0`` means the version starts later, i.e. ``version[n + d]`` sounds with
``mix[n]``. `shift_onto` puts the version on the mix's timeline.

Offset: generalised cross-correlation with phase transform (GCC-PHAT). The cross-spectrum
``M(f) conj(V(f))`` is divided by its magnitude, so every frequency votes with its phase alone. The
part of the mix that the version lacks (the voice) is uncorrelated with the version and adds a
flat noise floor, while the shared part adds a sharp peak at the true lag; whitening keeps loud low
notes from smearing that peak over many samples. Only lags within ``search_window_s`` of the
fingerprint offset are searched.

Gain: on STFT magnitudes, ``|mix| ~ g |version|`` wherever the source missing from the version is
silent. In every time-frequency bin where the version is audible the log-ratio
``log|mix| - log|version|`` is computed; bins without the missing source pile up at ``log g`` (a
sharp peak), bins with it scatter mostly above. The peak of a magnitude-weighted histogram of the
log-ratios gives the start, and a Tukey-biweight M-estimate (iteratively reweighted least squares)
refines it using only the bins near that peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

# Bins quieter than this (relative to the loudest bin of the version) do not vote on the gain.
_GAIN_FLOOR_DB = -60.0
# Tukey biweight cut-off in natural-log units (0.3 ~ 2.6 dB): bins further from the estimate get no weight.
_BIWEIGHT_C = 0.3


@dataclass(frozen=True)
class Alignment:
    """Result of `refine_offset`.

    Attributes:
        offset_samples: lag d (samples at sr_hz); positive = the version starts later.
        offset_s: the same in seconds.
        peak_ratio: height of the GCC-PHAT peak over the largest value outside +-2 ms of it
            (a confidence; ~1 means no clear peak).
        at_edge: the peak lies on the edge of the search window (the true lag may be outside it).
    """

    offset_samples: int
    offset_s: float
    peak_ratio: float
    at_edge: bool


def shift_onto(version: np.ndarray, offset_samples: int, length: int) -> np.ndarray:
    """The version on the mix's timeline: ``out[n] = version[n + offset_samples]``, zero where it is missing.

    Args:
        version: shape (samples,), any float dtype.
        offset_samples: lag d; positive = the version starts later.
        length: output length (the mix's length in samples).

    Returns:
        Array of shape (length,), same dtype as `version`.
    """
    out = np.zeros(length, dtype=version.dtype)
    src_start = max(offset_samples, 0)
    dst_start = max(-offset_samples, 0)
    n = min(length - dst_start, len(version) - src_start)
    if n > 0:
        out[dst_start:dst_start + n] = version[src_start:src_start + n]
    return out


def refine_offset(mix: np.ndarray, version: np.ndarray, sr_hz: int, coarse_offset_s: float = 0.0,
                  search_window_s: float = 0.5) -> Alignment:
    """Refine a coarse (fingerprint) offset to the sample by GCC-PHAT.

    Args:
        mix: shape (samples,), float32 at sr_hz.
        version: shape (samples,), float32 at sr_hz.
        sr_hz: sample rate of both.
        coarse_offset_s: starting estimate (s), positive = the version starts later.
        search_window_s: lags within +-this of the coarse offset are searched (s).

    Returns:
        Alignment with the lag of the highest correlation in the window.
    """
    coarse = int(round(coarse_offset_s * sr_hz))
    w = max(1, int(round(search_window_s * sr_hz)))
    # Put the version on the mix's timeline at the coarse lag, with w samples of context on each side
    # so that every searched lag has real version samples to compare (not zeros).
    v = shift_onto(version, coarse - w, len(mix) + 2 * w).astype(np.float32, copy=False)
    m = mix.astype(np.float32, copy=False)
    # Circular correlation of length n is exact for lags 0..2w as long as n >= len(v) = len(m) + 2w:
    # v[n + k] never wraps for n < len(m), so no further zero-padding is needed.
    n = scipy.fft.next_fast_len(len(v), real=True)
    mf = scipy.fft.rfft(m, n)
    cross = scipy.fft.rfft(v, n)
    cross *= np.conj(mf, out=mf)
    mag = np.abs(cross)
    np.maximum(mag, mag.max() * 1e-9 + 1e-30, out=mag)
    cross /= mag
    cc = scipy.fft.irfft(cross, n)
    # cc[k] = sum_n v[n + k] m[n]; lag k=w corresponds to the coarse offset.
    lags = cc[: 2 * w + 1]
    k = int(np.argmax(lags))
    guard = max(1, int(0.002 * sr_hz))
    outside = np.concatenate([lags[: max(0, k - guard)], lags[k + guard + 1:]])
    second = float(np.max(np.abs(outside))) if outside.size else 0.0
    peak = float(lags[k])
    ratio = peak / second if second > 0 else float("inf")
    d = coarse - w + k
    return Alignment(offset_samples=d, offset_s=d / sr_hz, peak_ratio=ratio, at_edge=k in (0, 2 * w))


def estimate_gain(mix_mag: np.ndarray, version_mag: np.ndarray, *, floor_db: float = _GAIN_FLOOR_DB,
                  c: float = _BIWEIGHT_C, n_iter: int = 20) -> float:
    """Gain g (linear) so that ``g * version_mag`` best explains ``mix_mag`` where the other source is silent.

    Args:
        mix_mag: |STFT| of the mix, shape (bins, frames) or any shape, float.
        version_mag: |STFT| of the aligned version, same shape.
        floor_db: bins of the version below this level (dB re its loudest bin) do not vote.
        c: Tukey biweight cut-off on the log-ratio (natural-log units).
        n_iter: IRLS iterations.

    Returns:
        g > 0; NaN when the version has no audible bins or the mix is silent there.
    """
    vm = np.asarray(version_mag, dtype=np.float32).ravel()
    mm = np.asarray(mix_mag, dtype=np.float32).ravel()
    if vm.size == 0 or not np.any(vm > 0):
        return float("nan")
    floor = float(vm.max()) * 10 ** (floor_db / 20)
    keep = (vm > floor) & (mm > floor)
    if not np.any(keep):
        return float("nan")
    vk, mk = vm[keep], mm[keep]
    r = np.log(mk) - np.log(vk)
    wgt = vk  # louder bins of the version are less affected by noise and by the other source
    # Start at the mode: a weighted histogram at ~0.05 dB resolution, lightly smoothed.
    lo, hi = np.percentile(r, [0.5, 99.5])
    if hi - lo < 1e-6:
        return float(np.exp(np.median(r)))
    n_bins = int(min(4000, max(50, (hi - lo) / 0.006)))
    hist, edges = np.histogram(r, bins=n_bins, range=(lo, hi), weights=wgt)
    kern = np.hanning(max(3, (n_bins // 200) * 2 + 1))
    smooth = np.convolve(hist, kern / kern.sum(), mode="same")
    j = int(np.argmax(smooth))
    mu = 0.5 * (edges[j] + edges[j + 1])
    # The biweight is zero beyond c of mu: iterate on the points within 2c of a centre, re-selected
    # whenever mu moves more than c from it (the same sums, without the points that add zeros).
    centre, rs, ws = None, r, wgt
    for _ in range(n_iter):
        if centre is None or abs(mu - centre) > c:
            centre = mu
            sel = np.abs(r - centre) < 2 * c
            rs, ws = r[sel], wgt[sel]
        u = (rs - mu) / c
        bw = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0) * ws
        s = float(bw.sum())
        if s <= 0:
            break
        new = float((bw * rs).sum() / s)
        if abs(new - mu) < 1e-7:
            mu = new
            break
        mu = new
    return float(np.exp(mu))
