"""The frequency-dependent matching filter: STFT framing, statistics, candidate models, cross-validation.

The version ``I`` (accompaniment for an instrumental, voice for an acapella) reaches the mix ``M``
through an unknown filter: ``M = H I + V`` where ``V`` (the other source) is uncorrelated with ``I``.
The least-squares estimate ``H = E[M conj(I)] / E[|I|^2]`` is therefore unbiased (Wiener, Bendat &
Piersol's H1 estimator); its variance is reduced by smoothing the cross- and auto-spectra over
frequency (a band that widens with frequency) and over time, and it is regularised towards a prior
(Tikhonov): towards 0 by a small relative ridge, and, for the per-segment (time-varying) filter,
towards the song-wide filter.

Everything is computed from per-segment, per-fold sums (``S_mm = sum |M|^2``, ``S_ii = sum |I|^2``,
``S_mi = sum M conj(I)``), so the residual energy ``sum |M - H I|^2 = S_mm - 2 Re(conj(H) S_mi) +
|H|^2 S_ii`` of any piecewise-constant model on held-out frames costs nothing more than the sums:
frames are dealt into two folds by blocks of ~0.4 s; a model fitted on one fold is scored on the
other. The voice's energy is the same for every model, so the model with the lowest held-out residual
is the one with the smallest misfit, and a model that fits the voice (overfits) pays for it on the
frames it did not see.

STFT: periodic sqrt-Hann analysis and synthesis windows, hop n_fft/4 (the squared windows add up
to 2), computed chunk by chunk so a long song never holds its whole spectrogram.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spectra import NOISE_RIDGE, Spectra

@dataclass
class Stats:
    """Per-segment, per-fold sums, shapes (segments, 2, channels, bins); ``frames`` (segments, 2)."""

    smm: np.ndarray
    sii: np.ndarray
    smi: np.ndarray
    frames: np.ndarray
    seg_frames: int
    robust_gain: np.ndarray | None = None

    def total(self, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.smm.sum(axis), self.sii.sum(axis), self.smi.sum(axis)

    def rotate(self, ramp: np.ndarray) -> "Stats":
        """The sums after the version is multiplied by ``ramp`` (bins,), a unit-modulus phase ramp."""
        return Stats(self.smm, self.sii, self.smi * np.conj(ramp), self.frames, self.seg_frames, self.robust_gain)


def _runs(j0: int, j1: int, seg_frames: int, fold_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of consecutive frames j0..j1-1 in one (segment, fold) cell: (starts, segments, folds)."""
    j = np.arange(j0, j1)
    key = (j // seg_frames) * 2 + (j // fold_frames) % 2
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    seg, fold = np.divmod(key[starts], 2)
    return starts, seg, fold


def _add_runs(dst: np.ndarray, x: np.ndarray, starts: np.ndarray, seg: np.ndarray, fold: np.ndarray) -> None:
    """dst[seg, fold] += the sum of x (frames, ...) over each run."""
    sums = np.add.reduceat(x, starts, axis=0)
    for r in range(len(starts)):
        dst[seg[r], fold[r]] += sums[r]


def _abs2(z: np.ndarray) -> np.ndarray:
    """|z|^2 of a complex64 array, float32."""
    return np.square(z.real) + np.square(z.imag)


def accumulate(spectra: Spectra, mix: int, vers: list[int], seg_frames: int, fold_frames: int,
               prior: list[tuple[np.ndarray, np.ndarray | None]] | None = None, power: float = 2.0,
               mag_every: int = 0) -> tuple[list[Stats], list[np.ndarray] | None]:
    """One pass over the mix and one or more aligned versions: the per-segment, per-fold sums.

    With `prior` (one (filters (segments, channels, 1 or bins), phase ramp or None) per version), every
    bin is weighted by how much the version dominates it, ``w = (P / (P + R))^power`` with ``P = |H I|^2``
    and ``R`` the smallest residual ``|M - H I|^2`` over the versions: bins where the other source (the
    voice, for an instrumental) dominates hardly count, so it cannot bias the filters (a robust,
    IRLS-style regression with the other source as the outlier; Egbert & Booker 1986 do the same for
    magnetotelluric transfer functions). All versions share the weights, so their sums compare.

    Args:
        spectra: the signals' STFTs.
        mix: index of the mix in `spectra`.
        vers: indices of the aligned versions.
        seg_frames: frames per segment of the time-varying filter.
        fold_frames: frames per cross-validation block (blocks alternate between folds 0 and 1).
        prior: None (unweighted sums), or per version (filters (segments, channels, 1 or bins), ramp (bins,) or None).
        power: sharpness of the weights.
        mag_every: when > 0, also collect the magnitudes of every `mag_every`-th frame of the mix and of
            each version (for `pairminer.stems.grade.magnitude_gains`).

    Returns:
        (one Stats per version, [mix magnitudes, version magnitudes...] float32 (frames, channels, bins) or None).
    """
    stft = spectra.stft
    n_seg = max(1, -(-stft.n_frames // seg_frames))
    ch = spectra.signals[mix].shape[1]
    shape = (n_seg, 2, ch, stft.n_bins)
    out = [Stats(np.zeros(shape), np.zeros(shape), np.zeros(shape, np.complex128), np.zeros((n_seg, 2)), seg_frames)
           for _ in vers]
    mags: list[list[np.ndarray]] = [[] for _ in range(len(vers) + 1)]
    # Versions that are the same signal share their sums (their weights are shared too).
    bases = [spectra.base(v) for v in vers]
    own = [bases.index(b) == i for i, b in enumerate(bases)]
    for j0, j1 in stft.chunks():
        m = spectra.chunk(mix, j0, j1)
        specs = [spectra.chunk(v, j0, j1) for v in vers]
        if mag_every:
            first = (-j0) % mag_every
            if first < j1 - j0:
                for k, (acc, sp) in enumerate(zip(mags, [m] + specs)):
                    if k == 0 or own[k - 1]:
                        acc.append(np.abs(sp[first::mag_every]))
        w = None
        if prior is not None:
            res = pw = None
            for s, (h, r) in zip(specs, prior):
                f = frame_filters(h, seg_frames, j0, j1)
                if r is not None:
                    f = f * r.astype(np.complex64)[None, None, :]
                pred = s * f
                e = _abs2(m - pred)
                if pw is None:
                    pw, res = _abs2(pred), e
                else:
                    np.minimum(res, e, out=res)
            res += pw
            res += np.float32(1e-20)
            w = np.divide(pw, res, out=pw)
            if power == 2.0:
                np.square(w, out=w)
            else:
                np.power(w, np.float32(power), out=w)
            del res
        starts, seg, fold = _runs(j0, j1, seg_frames, fold_frames)
        pm = _abs2(m)
        if w is not None:
            pm *= w
        counts = np.diff(np.r_[starts, j1 - j0])
        for st, spec, mine in zip(out, specs, own):
            if not mine:
                continue
            _add_runs(st.smm, pm, starts, seg, fold)
            pv = _abs2(spec)
            cross = m * np.conj(spec)
            if w is not None:
                pv *= w
                cross *= w
            _add_runs(st.sii, pv, starts, seg, fold)
            _add_runs(st.smi, cross, starts, seg, fold)
            for r in range(len(starts)):
                st.frames[seg[r], fold[r]] += counts[r]
    for i, b in enumerate(bases):
        first = bases.index(b)
        if first != i:
            src = out[first]
            out[i] = Stats(src.smm.copy(), src.sii.copy(), src.smi.copy(), src.frames.copy(), seg_frames)
            mags[i + 1] = mags[first + 1]
    got = [np.concatenate(a) for a in mags] if mag_every and mags[0] else None
    return out, got


def smooth_bins(x: np.ndarray, octave: float, min_half: int = 1) -> np.ndarray:
    """Average over a band around each bin (last axis): +- max(min_half, octave/2 * bin * ln2) bins.

    Args:
        x: real or complex array, bins on the last axis.
        octave: band width as a fraction of an octave (0 = no smoothing).
        min_half: smallest half-width in bins.

    Returns:
        Array of x's shape and dtype kind.
    """
    if octave <= 0:
        return x
    nb = x.shape[-1]
    k = np.arange(nb)
    half = np.maximum(min_half, np.round(k * (2 ** (octave / 2) - 1))).astype(np.int64)
    lo = np.clip(k - half, 0, nb - 1)
    hi = np.clip(k + half, 0, nb - 1)
    c = np.concatenate([np.zeros(x.shape[:-1] + (1,), x.dtype), np.cumsum(x, axis=-1)], axis=-1)
    return (c[..., hi + 1] - c[..., lo]) / (hi - lo + 1)


@dataclass(frozen=True)
class Model:
    """A matching-filter model: its name and how it is fitted from sums.

    Attributes:
        name: "gain" (one real gain per channel), "track" (one real gain per segment and channel, shrunk
            towards the song-wide one: fades, slow gain riding), "static" (one filter per channel),
            "segment" (one filter per segment and channel, shrunk towards the static one).
        octave: frequency smoothing (fraction of an octave) for the filters.
        prior: shrinkage strength of a segment filter towards the static one, in segments' worth of data.
    """

    name: str
    octave: float = 0.0
    prior: float = 0.0

    @property
    def label(self) -> str:
        if self.name == "gain":
            return "gain"
        if self.name == "track":
            return f"gain track(prior {self.prior:g})"
        if self.name == "static":
            return f"static(1/{round(1 / self.octave)} oct)"
        return f"segment(1/{round(1 / self.octave)} oct, prior {self.prior:g})"


def fit(model: Model, smm: np.ndarray, sii: np.ndarray, smi: np.ndarray, nfr: np.ndarray,
        ridge: float = 1e-3, robust_gain: np.ndarray | None = None) -> np.ndarray:
    """Fit a model from per-segment sums (segments, channels, bins); returns H (segments, channels, bins).

    Args:
        model: which model.
        smm: sums of |M|^2 (the noise scale of the ridge).
        sii: sums of |I|^2.
        smi: sums of M conj(I).
        nfr: frames per segment, (segments,).
        ridge: relative Tikhonov term: the denominator is ``S_ii (1 + ridge) + eps``.
        robust_gain: a gain per channel measured robustly (magnitude mode, signed): when given, it is
            the "gain" model and the centre the filters are shrunk towards.

    Returns:
        complex128 array (segments, channels, bins).
    """
    n_seg, ch, nb = sii.shape
    tiny = 1e-20 + 1e-12 * float(sii.max(initial=0.0))
    if model.name == "gain":
        g = np.real(smi.sum(axis=(0, 2))) / (sii.sum(axis=(0, 2)) * (1 + ridge) + tiny)
        if robust_gain is not None:
            g = robust_gain
        return np.broadcast_to(g[None, :, None], (n_seg, ch, nb)).astype(np.complex128)
    total = max(float(nfr.sum()), 1.0)
    share = (model.prior * np.maximum(nfr, 1.0) / total)[:, None]
    if model.name == "track":
        num = np.real(smi.sum(axis=2)) + share * np.real(smi.sum(axis=(0, 2)))[None]
        den = sii.sum(axis=2) + share * sii.sum(axis=(0, 2))[None]
        g = num / (den * (1 + ridge) + tiny)
        return np.broadcast_to(g[:, :, None], (n_seg, ch, nb)).astype(np.complex128)
    gi = smooth_bins(sii.sum(0), model.octave)
    gm = smooth_bins(smi.sum(0), model.octave)
    # Shrink towards the broadband gain g0 where the version is weak against the mix: the estimate's
    # variance grows as S_mm / S_ii, so the ridge on the departure from g0 is NOISE_RIDGE * S_mm / g0^2.
    g0 = np.real(smi.sum(axis=(0, 2))) / (sii.sum(axis=(0, 2)) + tiny)
    if robust_gain is not None:
        g0 = robust_gain
    g0 = np.where(np.abs(g0) > 1e-6, g0, 1e-6)[:, None]
    gmm = smooth_bins(smm.sum(0), model.octave) * NOISE_RIDGE / g0 ** 2
    if model.name == "static":
        h = g0 + (gm - g0 * gi) / (gi * (1 + ridge) + gmm + tiny)
        return np.broadcast_to(h[None], (n_seg, ch, nb)).astype(np.complex128)
    share = share[:, :, None]
    si = smooth_bins(sii, model.octave) + share * gi
    sm = smooth_bins(smi, model.octave) + share * gm
    smn = (smooth_bins(smm, model.octave) + share * smooth_bins(smm.sum(0), model.octave)) * NOISE_RIDGE / g0[None] ** 2
    return g0[None] + (sm - g0[None] * si) / (si * (1 + ridge) + smn + tiny)


def residual(h: np.ndarray, smm: np.ndarray, sii: np.ndarray, smi: np.ndarray) -> np.ndarray:
    """Energy of ``M - H I`` per segment (arrays (segments, channels, bins)): shape (segments,)."""
    return np.sum(smm - 2 * np.real(np.conj(h) * smi) + (h.real ** 2 + h.imag ** 2) * sii, axis=(1, 2))


def cv_residual(model: Model, st: Stats, ridge: float = 1e-3) -> np.ndarray:
    """Two-fold held-out residual energy per segment (fit on one fold, scored on the other, both ways)."""
    total = np.zeros(st.smm.shape[0])
    for held in (0, 1):
        other = 1 - held
        h = fit(model, st.smm[:, other], st.sii[:, other], st.smi[:, other], st.frames[:, other], ridge,
                st.robust_gain)
        total += residual(h, st.smm[:, held], st.sii[:, held], st.smi[:, held])
    return total


def select(scores: dict[str, np.ndarray], order: list[str], z: float = 2.0, min_gain_db: float = 0.25) -> str:
    """Pick a model: the simplest first, a more complex one only when it lowers the held-out residual
    clearly: by more than `z` standard errors of the per-segment differences (a paired test, for
    improvements spread over the song), or by more than `min_gain_db` in all (for improvements
    concentrated in a few segments, such as a fade). Held-out frames still share notes with the
    frames next to them, so the more complex models win a little (0.02-0.2 dB) even on a pair that
    one gain explains exactly; both rules stay above that.

    Args:
        scores: per-segment held-out residuals of each model.
        order: model names from the simplest to the most complex; the first two are one-gain models
            and the lower of them starts.
        z: significance in standard errors.
        min_gain_db: smallest total improvement (dB) accepted without significance.

    Returns:
        The chosen name.
    """
    best = min(order[:2], key=lambda k: float(scores[k].sum()))
    for name in order[2:]:
        d = scores[best] - scores[name]
        n = len(d)
        se = float(np.std(d, ddof=1) * np.sqrt(n)) if n > 1 else float("inf")
        total = float(d.sum())
        gain_db = 10 * np.log10(max(float(scores[best].sum()), 1e-30) / max(float(scores[name].sum()), 1e-30))
        if total > 0 and (total > z * se or gain_db > min_gain_db):
            best = name
    return best


def fit_all(model: Model, st: Stats, ridge: float = 1e-3) -> np.ndarray:
    """Fit on both folds: H (segments, channels, bins)."""
    return fit(model, st.smm.sum(1), st.sii.sum(1), st.smi.sum(1), st.frames.sum(1), ridge, st.robust_gain)


def frame_filters(h: np.ndarray, seg_frames: int, j0: int, j1: int) -> np.ndarray:
    """Per-frame filters for frames j0..j1-1: linear cross-fade between segment centres.

    Args:
        h: (segments, channels, bins).
        seg_frames: frames per segment.
        j0: first frame.
        j1: one past the last frame.

    Returns:
        complex64 (frames, channels, bins) (a broadcast view when h has one segment).
    """
    n_seg = h.shape[0]
    h = h.astype(np.complex64, copy=False)
    if n_seg == 1:
        return np.broadcast_to(h[0], (j1 - j0,) + h.shape[1:])
    pos = (np.arange(j0, j1) + 0.5) / seg_frames - 0.5
    pos = np.clip(pos, 0, n_seg - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_seg - 1)
    t = (pos - lo).astype(np.float32)[:, None, None]
    out = h[hi] - h[lo]
    out *= t
    out += h[lo]
    return out


def _constant_over_segments(h: np.ndarray) -> np.ndarray:
    """h (segments, channels, bins), reduced to one segment when every segment holds the same filter."""
    return h[:1] if h.shape[0] > 1 and np.array_equal(h, np.broadcast_to(h[:1], h.shape)) else h


def apply(spectra: Spectra, ver: int, h: np.ndarray, seg_frames: int, ramp: np.ndarray | None = None,
          mix: int | None = None, grade_every: int = 4, spectral_gains: np.ndarray | None = None):
    """Filter the version through H (cross-faded per frame) and resynthesise it.

    Args:
        spectra: the signals' STFTs.
        ver: index of the aligned version in `spectra`.
        h: filters (segments, channels, bins).
        seg_frames: frames per segment.
        ramp: optional phase ramp (bins,) applied to the version first (a fractional delay).
        mix: index of the mix: when given, also collect, on every `grade_every`-th frame, per-bin
            (|M - H I|^2, |M|^2, |H I|^2) for grading.
        grade_every: frame stride of the grading sample.
        spectral_gains: with `mix`, also synthesise the spectral fallback (`pairminer.stems.grade.spectral_part`)
            with these magnitude gains in the same pass.

    Returns:
        (matched, samples, spectral): matched version (samples, channels) float32, a tuple of three
        float32 arrays (or None without `mix`), and the spectral part (or None).
    """
    stft = spectra.stft
    shape = spectra.signals[ver].shape
    out = np.zeros(shape, np.float32)
    spec_out = np.zeros(shape, np.float32) if spectral_gains is not None and mix is not None else None
    hr = h if ramp is None else h * ramp[None, None, :]
    hr = _constant_over_segments(hr.astype(np.complex64))
    res, mixe, vere = [], [], []
    for j0, j1 in stft.chunks():
        raw = spectra.chunk(ver, j0, j1)
        spec = raw * frame_filters(hr, seg_frames, j0, j1)
        stft.overlap_add(out, spec, j0)
        if mix is None:
            continue
        first = (-j0) % grade_every
        if spec_out is not None:
            mfull = spectra.chunk(mix, j0, j1)
            from pairminer.stems.grade import spectral_mask

            stft.overlap_add(spec_out, mfull * spectral_mask(mfull, raw, spectral_gains), j0)
            m = mfull[first::grade_every] if first < j1 - j0 else None
        else:
            m = spectra.sampled(mix, j0, j1, grade_every)
        if m is not None and len(m):
            s = spec[first::grade_every][: len(m)]
            res.append(_abs2(m - s))
            mixe.append(_abs2(m))
            vere.append(_abs2(s))
    samples = None
    if mix is not None and res:
        samples = (np.concatenate(res), np.concatenate(mixe), np.concatenate(vere))
    return out, samples, spec_out
