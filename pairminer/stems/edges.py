"""The ends of a pair: where the version is present, and a different fade at its head or tail.

Deliveries often fade the version differently from the mix (another fade-in, an earlier fade-out,
a longer tail). Over such a head or tail the version is the mix's accompaniment times a slowly
changing gain; a gain track per segment of a few seconds cannot follow a fade to silence, so the
local gain is measured here at 50 ms resolution and undone before the matching filter.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

_BLOCK_S = 0.05


def _blocks(m: np.ndarray, v: np.ndarray, sr: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    b = max(1, int(_BLOCK_S * sr))
    nb = len(m) // b
    mm = m[: nb * b].reshape(nb, b)
    vv = v[: nb * b].reshape(nb, b)
    return b, np.einsum("ij,ij->i", mm, mm), np.einsum("ij,ij->i", vv, vv), np.einsum("ij,ij->i", mm, vv)


def _mono64(x: np.ndarray) -> np.ndarray:
    """``x.mean(axis=1)`` of (samples, channels) float32 (summed in channel order), as float64; a 1-D x
    is taken as that mono mix already."""
    if x.ndim == 1:
        return x.astype(np.float64)
    out = x[:, 0].copy()
    for c in range(1, x.shape[1]):
        out += x[:, c]
    if x.shape[1] > 1:
        out /= np.float32(x.shape[1])
    return out.astype(np.float64)


def present(mix: np.ndarray, ver: np.ndarray, k: int, n0: int, n1: int, sr: int, floor_db: float) -> tuple[int, int]:
    """Shrink the covered range [n0, n1) to where the gain-matched version is within `floor_db` of the mix.

    Args:
        mix: (samples, channels), or its mono mix (samples,).
        ver: version (samples, channels) or mono; ``ver[n + k]`` sounds with ``mix[n]``.
        k: integer lag.
        n0: first covered mix sample.
        n1: one past the last.
        sr: rate.
        floor_db: presence threshold (dB, negative).

    Returns:
        (n0, n1), narrowed at the head and tail only (energies in 50 ms blocks, smoothed over 0.5 s).
    """
    m = _mono64(mix[n0:n1])
    lo, hi = n0 + k, n1 + k
    v = np.zeros(n1 - n0)
    a, e = max(lo, 0), min(hi, len(ver))
    v[a - lo:e - lo] = _mono64(ver[a:e])
    b, em, ev, cross = _blocks(m, v, sr)
    if len(em) < 4:
        return n0, n1
    g2 = (cross.sum() / max(ev.sum(), 1e-30)) ** 2
    ok = uniform_filter1d(ev, 10) * g2 > uniform_filter1d(em, 10) * 10 ** (floor_db / 10)
    if not ok.any():
        return n0, n1
    first, last = int(np.argmax(ok)), len(ok) - 1 - int(np.argmax(ok[::-1]))
    start = n0 + first * b
    end = n1 if last == len(ok) - 1 else n0 + (last + 1) * b
    return (start, end) if end - start >= 4096 else (n0, n1)


def fade_curve(mix: np.ndarray, ver: np.ndarray, sr: int, tol_db: float = 1.0, win_s: float = 0.3,
               max_s: float = 12.0, min_depth_db: float = 6.0, min_s: float = 0.5) -> np.ndarray | None:
    """A gain curve that undoes a different fade at the head or tail of an aligned accompaniment version.

    The local least-squares gain ``<m, v> / <v, v>`` (windows of `win_s`, every 50 ms; the voice is
    uncorrelated with the version so it only adds noise) is compared with the song's. From each end,
    the stretch (at most `max_s`) until the local gain stays within `tol_db` of the song's for a second
    is a fade if it lasts at least `min_s` and departs somewhere by `min_depth_db`; there the curve is
    the local gain over the song's, and 1 elsewhere.

    Args:
        mix: (samples, channels) covered mix, or its mono mix (samples,).
        ver: aligned version, same shape.
        sr: rate.
        tol_db: departure that counts as a fade (dB).
        win_s: window of the local gain (s).
        max_s: longest fade looked for at each end (s).
        min_depth_db: a fade departs by at least this somewhere (dB).
        min_s: shortest fade (s).

    Returns:
        float32 (samples,) curve, or None when neither end departs.
    """
    m = _mono64(mix)
    v = _mono64(ver)
    b, em, ev, cross = _blocks(m, v, sr)
    nb = len(ev)
    if nb < 60:
        return None
    w = max(1, int(round(win_s / _BLOCK_S)))
    g = cross.sum() / max(ev.sum(), 1e-30)
    if g == 0:
        return None
    loc = uniform_filter1d(cross, w) / np.maximum(uniform_filter1d(ev, w), 1e-30 + 1e-9 * ev.max()) / g
    bad = ~(np.abs(20 * np.log10(np.clip(loc, 1e-4, None))) <= tol_db)
    hold = int(round(1.0 / _BLOCK_S))
    limit = min(nb // 3, int(max_s / _BLOCK_S))
    min_blocks = int(round(min_s / _BLOCK_S))

    def extent(flags: np.ndarray) -> int:
        for i in range(limit):
            if not flags[i:i + hold].any():
                return i
        return 0

    dev = np.abs(20 * np.log10(np.clip(loc, 1e-4, None)))

    def real(n: int, d: np.ndarray) -> int:
        # A fade goes deep; the voice only shakes the local gain by a few dB.
        return n if n >= min_blocks and float(np.max(d[:n])) >= min_depth_db else 0

    head = real(extent(bad), dev)
    tail = real(extent(bad[::-1]), dev[::-1])
    if head == 0 and tail == 0:
        return None
    curve_b = np.ones(nb)
    curve_b[:head] = loc[:head]
    if tail:
        curve_b[nb - tail:] = loc[nb - tail:]
    curve_b = np.clip(curve_b, 0.0, 10.0)  # at most +20 dB: the presence trim keeps louder gaps out
    centres = (np.arange(nb) + 0.5) * b
    return np.interp(np.arange(len(m)), centres, curve_b).astype(np.float32)
