"""The STFT of the stems' alignment: single-precision scipy.fft frames in chunks, and the per-call cache of
the mix's and versions' spectra (bounded by `AlignParams.cache_mb`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.fft


_CHUNK_FRAMES = 192
# Threads of each FFT call (scipy.fft ``workers``): 1 keeps a worker process to its own core.
_WORKERS = 1
# Ridge on a filter's departure from the broadband gain, relative to the mix's energy (see `fit`).
NOISE_RIDGE = 0.01


@dataclass(frozen=True)
class Stft:
    """STFT geometry over a signal of ``n`` samples.

    Frame ``j`` covers samples ``[j * hop - (n_fft - hop), j * hop + hop)``; samples outside the
    signal are zeros, so every sample is covered by n_fft/hop frames. Transforms are single precision
    (scipy.fft on float32 / complex64).
    """

    n: int
    n_fft: int = 4096
    hop: int = 1024

    @property
    def n_frames(self) -> int:
        return (self.n + self.n_fft - self.hop + self.hop - 1) // self.hop

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def window(self) -> np.ndarray:
        return _window(self.n_fft)

    def frames(self, x: np.ndarray, j0: int, j1: int, step: int = 1) -> np.ndarray:
        """Spectra of frames ``j0, j0 + step, ..`` below j1 of x (samples, channels): complex64 (frames, channels, bins)."""
        count = len(range(j0, j1, step))
        a = j0 * self.hop - (self.n_fft - self.hop)
        b = (j0 + (count - 1) * step) * self.hop + self.hop
        buf = np.zeros((b - a, x.shape[1]), np.float32)
        lo, hi = max(a, 0), min(b, self.n)
        if hi > lo:
            buf[lo - a:hi - a] = x[lo:hi]
        view = np.lib.stride_tricks.sliding_window_view(buf, self.n_fft, axis=0)[:: self.hop * step]
        return scipy.fft.rfft(view * self.window, axis=-1, workers=_WORKERS)

    def overlap_add(self, out: np.ndarray, spec: np.ndarray, j0: int) -> None:
        """Add the synthesis of frames ``j0..`` (complex (frames, channels, bins)) into out (samples, channels)."""
        y = scipy.fft.irfft(spec.astype(np.complex64, copy=False), n=self.n_fft, axis=-1, workers=_WORKERS)
        y *= self.window / 2
        nf, ch = y.shape[0], y.shape[1]
        a = j0 * self.hop - (self.n_fft - self.hop)
        r = self.n_fft // self.hop
        if self.n_fft % self.hop:
            for k in range(nf):
                s = a + k * self.hop
                lo, hi = max(s, 0), min(s + self.n_fft, self.n)
                if hi > lo:
                    out[lo:hi] += y[k, :, lo - s:hi - s].T
            return
        # Frames k, k + r, k + 2r, .. tile the time axis without overlapping: add each such set at once.
        block = np.zeros(((nf - 1) * self.hop + self.n_fft, ch), np.float32)
        yt = y.transpose(0, 2, 1)
        for k in range(min(r, nf)):
            part = yt[k::r]
            block[k * self.hop:k * self.hop + len(part) * self.n_fft] += part.reshape(-1, ch)
        lo, hi = max(a, 0), min(a + len(block), self.n)
        if hi > lo:
            out[lo:hi] += block[lo - a:hi - a]

    def chunks(self):
        """(j0, j1) ranges of frames, a few hundred at a time."""
        for j0 in range(0, self.n_frames, _CHUNK_FRAMES):
            yield j0, min(self.n_frames, j0 + _CHUNK_FRAMES)


@functools.lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    w = np.sqrt(np.hanning(n_fft + 1)[:-1]).astype(np.float32)
    w.flags.writeable = False
    return w


class Spectra:
    """STFT chunks (`Stft.chunks`) of a few signals of one geometry, computed once each and kept while the
    cache stays within `budget` bytes; chunks beyond the budget are recomputed on every pass, so memory
    stays bounded on a long song while a short one (or 8 kHz mono) is transformed once. Cached chunks
    are read-only: callers never modify what `chunk` returns.
    """

    def __init__(self, stft: Stft, signals: list[np.ndarray], budget: float = 256e6):
        self.stft = stft
        self.signals = signals
        self.budget = float(budget)
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._bytes = 0
        # A signal passed twice (the same array) is transformed once.
        self._base = [next(j for j in range(i + 1) if signals[j] is signals[i]) for i in range(len(signals))]

    def base(self, i: int) -> int:
        """The first index holding the same array as signal i."""
        return self._base[i]

    def close(self) -> None:
        """Drop the cached chunks and the references to the signals (no use after)."""
        self._cache.clear()
        self._bytes = 0
        self.signals = []

    def chunk(self, i: int, j0: int, j1: int) -> np.ndarray:
        """Frames j0..j1-1 (one of `stft.chunks()`) of signal i, complex64 (frames, channels, bins)."""
        i = self._base[i]
        got = self._cache.get((i, j0))
        if got is not None:
            return got
        s = self.stft.frames(self.signals[i], j0, j1)
        if self._bytes + s.nbytes <= self.budget:
            s.flags.writeable = False
            self._cache[(i, j0)] = s
            self._bytes += s.nbytes
        return s

    def sampled(self, i: int, j0: int, j1: int, every: int) -> np.ndarray | None:
        """The frames of chunk (j0, j1) of signal i whose index is a multiple of `every` (None if none)."""
        first = (-j0) % every
        if first >= j1 - j0:
            return None
        i = self._base[i]
        got = self._cache.get((i, j0))
        if got is not None:
            return got[first::every]
        return self.stft.frames(self.signals[i], j0 + first, j1, step=every)
