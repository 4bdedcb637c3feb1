"""Grading of a subtraction (how well the pair cancels) and the spectral fallback.

Cancellation. Where the source missing from the version is absent, a pair that shares its waveform
cancels: ``|M - H I|`` drops far below ``|M|``. A different mix (another take, another arrangement)
does not: with unrelated phases ``|M - H I|^2 ~ |M|^2 + |H I|^2``. The grade is measured on STFT bins
(n_fft 4096), so it works for acapellas as well (the band rarely stops in time, but in
time-frequency the voice dominates many bins): among the bins where the matched version is audible
(within `floor_db` of its loud bins), the per-bin ratio ``|M - H I|^2 / |M|^2`` is taken at a low
quantile, each bin weighted by the matched version's energy; ``cancellation_db`` is minus that in
dB. Bins holding the other source have ratios near or above 0 dB and sit at the top of the
distribution, so the low quantile reads the misfit of the bins without it, as long as at least that
share of the version's energy lies where the other source is quiet.

Spectral fallback: magnitude subtraction with the mix's phase (a soft mask),
``|V| = max(|M| - g |I|, 0)``, i.e. the version's part of the mix is ``min(g|I| / |M|, 1) M``, with one
magnitude gain per channel from `pairminer.targets.align.estimate_gain`.
"""

from __future__ import annotations

import numpy as np

from pairminer.stems.spectra import Spectra


def weighted_quantile(v: np.ndarray, w: np.ndarray, q: float) -> float:
    """The q-quantile (0..1) of values v under weights w >= 0 (NaN when all weights are 0).

    float32 values are sorted as float32 (twice as fast as float64); the weights are summed in float64.
    """
    v = np.asarray(v).ravel()
    if v.dtype != np.float32:
        v = v.astype(np.float64)
    w = np.asarray(w, np.float64).ravel()
    if v.size == 0 or not np.any(w > 0):
        return float("nan")
    o = np.argsort(v)
    cw = np.cumsum(w[o])
    return float(v[o][min(len(v) - 1, int(np.searchsorted(cw, q * cw[-1])))])


def cancellation_db(res_e: np.ndarray, mix_e: np.ndarray, ver_e: np.ndarray, *, quantile: float = 0.2,
                    floor_db: float = -40.0) -> float:
    """How far the residual falls below the mix where the pair cancels (dB, larger is better).

    Args:
        res_e: |M - H I|^2 per sampled bin.
        mix_e: |M|^2 per sampled bin.
        ver_e: |H I|^2 per sampled bin.
        quantile: the low quantile of the ratio distribution that is read (0..1).
        floor_db: bins whose matched version is below its 99.9th percentile by more than this are ignored.

    Returns:
        -10 log10 of the energy-weighted `quantile` of |M - H I|^2 / |M|^2; NaN without audible bins.
    """
    ver_e = np.asarray(ver_e).ravel()
    if ver_e.size == 0:
        return float("nan")
    ref = float(np.percentile(ver_e.astype(np.float64, copy=False), 99.9))
    if ref <= 0:
        return float("nan")
    mix_e = np.asarray(mix_e).ravel()
    keep = (ver_e > ref * 10 ** (floor_db / 10)) & (mix_e > 0)
    if not keep.any():
        return float("nan")
    # The ratio in float32 (the energies are float32 already): one rounding, far below the grade's resolution.
    ratio = np.divide(np.asarray(res_e).ravel()[keep], mix_e[keep], dtype=np.float32)
    q = weighted_quantile(ratio, ver_e[keep], quantile)
    return float(-10 * np.log10(max(q, 1e-30)))


def magnitude_gains(mix_mag: np.ndarray, ver_mag: np.ndarray) -> np.ndarray:
    """One magnitude gain per channel, ``|M| ~ g |I|`` where the other source is silent.

    Args:
        mix_mag: |STFT| of the mix on a sample of frames (every 4th, collected by
            `pairminer.stems.matchfilter.accumulate`), (frames, channels, bins).
        ver_mag: the aligned version's, same shape.

    Returns:
        float64 (channels,), NaN where a channel gives no estimate.
    """
    from pairminer.targets.align import estimate_gain

    if mix_mag is None or len(mix_mag) == 0:
        return np.full(1 if mix_mag is None else mix_mag.shape[1], np.nan)
    return np.array([estimate_gain(mix_mag[:, c], ver_mag[:, c]) for c in range(mix_mag.shape[1])])


def spectral_mask(m: np.ndarray, v: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """The magnitude mask ``min(g |I| / |M|, 1)`` of spectra m, v (frames, channels, bins), float32."""
    g = np.where(np.isfinite(gains), gains, 1.0).astype(np.float32)[None, :, None]
    vm = np.abs(v)
    vm *= g
    return np.minimum(vm / np.maximum(np.abs(m), np.float32(1e-12)), np.float32(1.0))


def spectral_part(spectra: Spectra, mix: int, ver: int, gains: np.ndarray) -> np.ndarray:
    """The version's part of the mix by a magnitude mask with the mix's phase.

    Args:
        spectra: the signals' STFTs.
        mix: index of the mix in `spectra`.
        ver: index of the aligned version.
        gains: magnitude gain per channel.

    Returns:
        float32 (samples, channels): ISTFT of ``min(g |I| / |M|, 1) M``.
    """
    stft = spectra.stft
    out = np.zeros(spectra.signals[mix].shape, np.float32)
    for j0, j1 in stft.chunks():
        m = spectra.chunk(mix, j0, j1)
        stft.overlap_add(out, m * spectral_mask(m, spectra.chunk(ver, j0, j1), gains), j0)
    return out


def filter_deviation_db(h: np.ndarray, sii: np.ndarray, floor_db: float = -40.0) -> float:
    """RMS departure of |H| from flat (dB) over the version's band.

    Args:
        h: one filter per channel, (channels, bins).
        sii: the version's energy per channel and bin, same shape (bins more than `floor_db` below
            the loudest do not count).
        floor_db: band edge.

    Returns:
        RMS over channels and in-band bins of ``20 log10|H| - mean``, energy-weighted; NaN if none.
    """
    devs = []
    for c in range(h.shape[0]):
        e = sii[c]
        if e.max(initial=0) <= 0:
            continue
        band = e > e.max() * 10 ** (floor_db / 10)
        db = 20 * np.log10(np.maximum(np.abs(h[c][band]), 1e-9))
        w = np.log1p(e[band] / (e.max() * 10 ** (floor_db / 10)))  # louder bins count more, gently
        mean = np.average(db, weights=w)
        devs.append(np.average((db - mean) ** 2, weights=w))
    return float(np.sqrt(np.mean(devs))) if devs else float("nan")
