"""Lag, polarity and clock drift of a version against its mix (mono signals, one sample rate).

Conventions (the same as `pairminer.targets.align`): a lag ``d`` means ``version[n + d]`` sounds with
``mix[n]`` (positive: the version starts later). With clock drift the lag grows along the song,
``d(n) = d0 + eps * n``; ``drift_ppm = eps * 1e6`` (positive: the version is stretched, it runs slow).

* Integer lag: GCC-PHAT (Knapp & Carter 1976) in windows of a few seconds, the peak of ``|cc|`` so an
  inverted version is found too (its sign is the polarity vote).
* Fractional lag: the PHAT correlation is band-limited, so it is evaluated between samples exactly
  from the cross-spectrum, ``cc(k) = sum_f W(f) C(f) exp(j w k)``, on a coarse-to-fine grid around the
  integer peak (sinc interpolation of the correlation peak, without its bias for sharp peaks).
* Drift: the local lags of windows spread over the song are fitted by a line, robustly
  (Theil-Sen start, Tukey-biweight IRLS), so windows where the voice or a fade hides the accompaniment
  are outliers rather than leverage.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.fft


@dataclass(frozen=True)
class LocalLag:
    """Lags measured in windows along the song.

    Attributes:
        centre: window centres on the mix timeline (samples), shape (k,).
        lag: fractional lag of each window (samples), shape (k,).
        weight: confidence of each window (GCC-PHAT peak over the next-highest value, minus 1), shape (k,).
        sign: sign of each window's correlation peak (+1 or -1), shape (k,).
    """

    centre: np.ndarray
    lag: np.ndarray
    weight: np.ndarray
    sign: np.ndarray


@dataclass(frozen=True)
class DriftFit:
    """Robust line through the local lags: ``lag(n) = intercept + slope * n``.

    Attributes:
        intercept: lag at mix sample 0 (samples).
        slope: lag change per mix sample (eps); ``slope * 1e6`` is the drift in ppm.
        n_inliers: windows kept by the robust fit.
        residual_std: RMS of the inliers' residuals (samples).
        polarity: weighted majority sign of the inliers' peaks (+1 or -1).
    """

    intercept: float
    slope: float
    n_inliers: int
    residual_std: float
    polarity: int


@functools.lru_cache(maxsize=4)
def _hanning(length: int) -> np.ndarray:
    w = np.hanning(length)
    w.flags.writeable = False
    return w


def _segment(x: np.ndarray, start: int, length: int) -> np.ndarray:
    """x[start:start+length] with zeros where the range leaves x (float64)."""
    out = np.zeros(length, np.float64)
    a, b = max(start, 0), min(start + length, len(x))
    if b > a:
        out[a - start:b - start] = x[a:b]
    return out


_BLOCK = 512


def _phasor(n_fft: int, t: float, nb: int) -> np.ndarray:
    """``exp(2j pi f t / n_fft)`` for f = 0..nb-1, as the outer product of two short tables of exponentials
    (``f = 512 a + b``): within a few ulps of the direct evaluation, at a fraction of its cost."""
    step = 2 * np.pi * t / n_fft
    fine = np.exp(1j * step * np.arange(_BLOCK))
    coarse = np.exp(1j * (step * _BLOCK) * np.arange(-(-nb // _BLOCK)))
    return (coarse[:, None] * fine[None, :]).ravel()[:nb]


def fractional_peak(cross: np.ndarray, n_fft: int, k0: float, weights: np.ndarray | None = None,
                    span: float = 1.0, init: tuple[float, float, float] | None = None) -> tuple[float, float]:
    """Locate the peak of a band-limited correlation between samples.

    ``cc(k) = Re sum_f W(f) C(f) exp(2j pi f k / n_fft)`` is evaluated exactly (no interpolation
    kernel): a parabola through k0-1, k0, k0+1 gives the start, then Newton steps on the analytic first
    and second derivatives, kept within ``k0 +- span``.

    Args:
        cross: one-sided cross-spectrum C(f) (rfft layout, length n_fft // 2 + 1), with the sign of the
            peak already made positive.
        n_fft: the transform length C was computed with.
        k0: starting lag (samples, the integer peak).
        weights: W(f), e.g. PHAT ``1/|C|``; None = 1.
        span: half-width of the search (samples).
        init: cc at k0 - 1, k0, k0 + 1 when already known (an inverse FFT of the same weighted spectrum).

    Returns:
        (lag, value): the fractional lag of the maximum and cc there.
    """
    c = (cross if weights is None else cross * weights).astype(np.complex128) * 2.0
    # Bins at DC and Nyquist count once in a real signal's spectrum, the rest twice.
    c[0] *= 0.5
    if n_fft % 2 == 0:
        c[-1] *= 0.5
    omega = 2 * np.pi * np.arange(len(c)) / n_fft
    basis = np.stack([np.ones_like(omega), omega, omega * omega])

    def derivs(t: float) -> tuple[float, float, float]:
        z = c * _phasor(n_fft, t, len(c))
        s = basis @ z.view(np.float64).reshape(-1, 2)  # rows: sums of z, omega z, omega^2 z (re, im)
        return float(s[0, 0]), float(-s[1, 1]), float(-s[2, 0])

    ym, y0, yp = init if init is not None else (derivs(k0 + d)[0] for d in (-1.0, 0.0, 1.0))
    den = ym - 2 * y0 + yp
    t = k0 + (0.5 * (ym - yp) / den if den < 0 else 0.0)
    t = float(np.clip(t, k0 - span, k0 + span))
    for _ in range(8):
        v, d1, d2 = derivs(t)
        if d2 >= 0:
            break
        step = float(np.clip(-d1 / d2, -0.25, 0.25))
        t = float(np.clip(t + step, k0 - span, k0 + span))
        if abs(step) < 1e-5:
            break
    v = derivs(t)[0]
    if v < y0:
        return float(k0), y0
    return t, v


def gcc_lag(mix: np.ndarray, version: np.ndarray, start: int, length: int, centre_lag: int, half_window: int,
            *, fractional: bool = True) -> tuple[float, float, int]:
    """GCC-PHAT lag of ``version`` against ``mix[start:start+length]`` within ``centre_lag +- half_window``.

    Args:
        mix: mono mix, shape (samples,).
        version: mono version, shape (samples,).
        start: first mix sample of the window.
        length: window length (samples).
        centre_lag: centre of the lag search (samples).
        half_window: lags within +- this of `centre_lag` are searched.
        fractional: refine the peak between samples (sinc interpolation of the PHAT correlation).

    Returns:
        (lag, confidence, sign): lag in samples (fractional if asked), the peak's height over the largest
        |cc| more than 2 samples away minus 1 (0 = no clear peak), and the peak's sign (-1: inverted).
    """
    h = int(half_window)
    m = _segment(mix, start, length) * _hanning(length)
    v = _segment(version, start + centre_lag - h, length + 2 * h)
    n = scipy.fft.next_fast_len(len(v) + 1, real=True)
    mf = scipy.fft.rfft(m, n)
    cross = scipy.fft.rfft(v, n) * np.conj(mf)
    mag = np.abs(cross)
    floor = mag.max() * 1e-6 + 1e-30
    w = 1.0 / np.maximum(mag, floor)
    cc = scipy.fft.irfft(cross * w, n)[: 2 * h + 1]
    k = int(np.argmax(np.abs(cc)))
    sign = 1 if cc[k] >= 0 else -1
    peak = abs(float(cc[k]))
    mask = np.ones(len(cc), bool)
    mask[max(0, k - 2):k + 3] = False
    second = float(np.max(np.abs(cc[mask]))) if mask.any() else 0.0
    conf = max(0.0, peak / second - 1.0) if second > 0 else 0.0
    lag = float(k)
    if fractional and 0 < k < 2 * h:
        # cc at the integer lags is the inverse FFT already taken: n * sign * cc[k] (see fractional_peak).
        lag, _ = fractional_peak(cross * sign, n, float(k), w, span=1.0,
                                 init=tuple(float(n * sign * cc[k + d]) for d in (-1, 0, 1)))
    return centre_lag - h + lag, conf, sign


def local_lags(mix: np.ndarray, version: np.ndarray, sr: int, centre_lag: int | np.ndarray, half_window: int,
               win_s: float = 4.0, max_windows: int = 24) -> LocalLag:
    """Lags in windows spread evenly over the mix.

    Args:
        mix: mono mix, shape (samples,).
        version: mono version, shape (samples,).
        sr: sample rate.
        centre_lag: expected lag (samples): one int, or one per window (a predicted drift line).
        half_window: search +- this around the expected lag.
        win_s: window length (s).
        max_windows: most windows (long songs get spaced windows).

    Returns:
        LocalLag of the windows where both signals are audible.
    """
    length = int(win_s * sr)
    n = len(mix)
    if n < length:
        length = n
    k = int(min(max_windows, max(1, n // length)))
    starts = np.linspace(0, n - length, k).astype(np.int64)
    ref_m = _rms(mix) + 1e-12
    ref_v = _rms(version) + 1e-12
    centres, lags, weights, signs = [], [], [], []
    for i, s in enumerate(starts):
        c = int(centre_lag[i]) if np.ndim(centre_lag) else int(centre_lag)
        seg_m = mix[s:s + length]
        vs, ve = max(0, s + c), min(len(version), s + c + length)
        if ve - vs < length // 4:
            continue
        if np.sqrt(np.mean(seg_m.astype(np.float64) ** 2)) < 1e-3 * ref_m:
            continue
        if np.sqrt(np.mean(version[vs:ve].astype(np.float64) ** 2)) < 1e-3 * ref_v:
            continue
        lag, conf, sign = gcc_lag(mix, version, int(s), length, c, half_window)
        centres.append(s + length / 2)
        lags.append(lag)
        weights.append(conf)
        signs.append(sign)
    return LocalLag(np.asarray(centres, float), np.asarray(lags, float), np.asarray(weights, float),
                    np.asarray(signs, int))


def _rms(x: np.ndarray, chunk: int = 1 << 20) -> float:
    """RMS of a 1-D array, summed chunk by chunk into a float64 total (no float64 copy of the signal)."""
    if len(x) == 0:
        return float("nan")
    total = 0.0
    for a in range(0, len(x), chunk):
        seg = x[a:a + chunk]
        total += float(np.dot(seg, seg))
    return float(np.sqrt(total / len(x)))


def robust_line(x: np.ndarray, y: np.ndarray, w: np.ndarray, *, min_scale: float = 0.25,
                c: float = 4.685, n_iter: int = 30) -> tuple[float, float, np.ndarray, float]:
    """Weighted robust line fit ``y = a + b x``: Theil-Sen start, then Tukey-biweight IRLS.

    Args:
        x: abscissae, shape (k,).
        y: ordinates, shape (k,).
        w: prior weights >= 0, shape (k,).
        min_scale: floor of the residual scale (units of y), so exact fits keep their inliers.
        c: biweight cut-off in units of the scale.
        n_iter: IRLS iterations.

    Returns:
        (a, b, inliers, residual_std): intercept, slope, boolean mask of points with weight > 0 in the
        last iteration, RMS residual of those.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    w = np.maximum(np.asarray(w, float), 0.0) + 1e-9
    k = len(x)
    if k == 0:
        return 0.0, 0.0, np.zeros(0, bool), float("nan")
    if k == 1:
        return float(y[0]), 0.0, np.ones(1, bool), 0.0
    i, j = np.triu_indices(k, 1)
    dx = x[j] - x[i]
    ok = np.abs(dx) > 0
    slopes = (y[j] - y[i])[ok] / dx[ok]
    pw = (w[i] * w[j])[ok]
    b = _weighted_median(slopes, pw) if slopes.size else 0.0
    a = _weighted_median(y - b * x, w)
    x0 = float(np.average(x, weights=w))
    for _ in range(n_iter):
        r = y - (a + b * x)
        s = max(1.4826 * _weighted_median(np.abs(r), w), min_scale)
        u = r / (c * s)
        bw = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0) * w
        if np.count_nonzero(bw) < 2:
            break
        xm = float(np.average(x, weights=bw))
        ym = float(np.average(y, weights=bw))
        sxx = float(np.sum(bw * (x - xm) ** 2))
        nb = float(np.sum(bw * (x - xm) * (y - ym)) / sxx) if sxx > 0 else 0.0
        na = ym - nb * xm
        done = abs(nb - b) * max(abs(x0), 1.0) < 1e-6 and abs(na - a) < 1e-6
        a, b = na, nb
        if done:
            break
    r = y - (a + b * x)
    s = max(1.4826 * _weighted_median(np.abs(r), w), min_scale)
    inl = np.abs(r) < c * s
    std = float(np.sqrt(np.mean(r[inl] ** 2))) if inl.any() else float("nan")
    return float(a), float(b), inl, std


def _weighted_median(v: np.ndarray, w: np.ndarray) -> float:
    o = np.argsort(v)
    cw = np.cumsum(w[o])
    return float(v[o][np.searchsorted(cw, 0.5 * cw[-1])])


def fit_drift(ll: LocalLag) -> DriftFit:
    """Fit the drift line to local lags (see `robust_line`) and take the polarity vote of its inliers.

    Args:
        ll: local lags.

    Returns:
        DriftFit; a window-less input gives a zero line with no inliers.
    """
    if len(ll.lag) == 0:
        return DriftFit(0.0, 0.0, 0, float("nan"), 1)
    a, b, inl, std = robust_line(ll.centre, ll.lag, ll.weight)
    vote = float(np.sum((ll.weight + 1e-9)[inl] * ll.sign[inl])) if inl.any() else 1.0
    return DriftFit(a, b, int(inl.sum()), std, 1 if vote >= 0 else -1)
