"""Align a version (instrumental or acapella) to its mix and subtract it: vocal and accompaniment stems.

Method (docs/stems-method.md has the details and the measured numbers):

1. lag and drift: GCC-PHAT lags in windows along the song around the fingerprint offset, a robust
   line through them (drift in ppm), polarity by the sign of the peaks (`pairminer.stems.lag`);
2. drift correction: the version is resampled by ``1 + ppm * 1e-6`` with soxr, its integer lag
   measured again; the fractional lag comes from the song-wide cross-spectrum (sinc interpolation of
   the weighted correlation peak) and is applied as a phase ramp in the STFT;
3. matching filter: candidate models (one gain per channel; a static filter H(f) per channel; a
   filter per segment of a few seconds, shrunk towards the static one and cross-faded), plus the
   plain integer-lag alignment with one gain per channel, are scored by two-fold held-out residual
   energy; the lowest wins (`pairminer.stems.matchfilter`);
4. grading: cancellation in dB; below `AlignParams.min_cancellation_db` the stems come from a
   magnitude mask with the mix's phase instead (`pairminer.stems.grade`).

Conventions: arrays are float32 (samples, channels) at one rate; a lag ``d`` means
``version[n + d]`` sounds with ``mix[n]`` (as in `pairminer.targets.align`), and ``coarse_offset_s``
is that lag in seconds (verify's fingerprint offset).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pairminer.errors import AudioError
from pairminer.stems import edges, grade, lag, matchfilter as mf
from pairminer.stems import spectra as spectra_mod
from pairminer.stems.layout import KINDS, _check, _covered, _slice, _stems, conform

__all__ = ["KINDS", "AlignParams", "PairStems", "conform", "measure_lag", "naive_subtract", "subtract_pair"]

@dataclass(frozen=True)
class AlignParams:
    """Tunables of `subtract_pair` (the thresholds are calibrated by benchmarks/stems_quality.py).

    Attributes:
        search_window_s: lags within +- this of the coarse offset are searched (s).
        drift_window_s: length of the windows whose lags measure drift (s).
        max_windows: most drift windows per song.
        min_drift_windows: on a song too short for this many windows of `drift_window_s`, the windows
            are shortened to fit this many...
        min_drift_window_s: ...but not below this (s).
        max_drift_ppm: a fitted drift beyond this is not believed (not corrected).
        min_drift_samples: drift is corrected only when it moves the lag by more than this over the song.
        n_fft: STFT size of the matching filter (samples).
        hop: STFT hop (n_fft / 4).
        segment_s: segment length of the time-varying filter (s).
        fold_s: length of the blocks dealt alternately to the two cross-validation folds (s).
        octaves: frequency smoothings tried for the filters (fractions of an octave).
        priors: shrinkage strengths tried for the segment filters (segments' worth of song-wide data).
        ridge: relative Tikhonov term of the filter fits.
        min_cancellation_db: below this cancellation the spectral fallback is used.
        cancel_quantile: quantile of the per-bin residual-to-mix ratio read by the grade.
        weight_power: sharpness of the version-dominance weights of the filter fits.
        select_z: a more complex filter model must lower the held-out residual by this many standard errors...
        select_min_gain_db: ...or by this many dB in all.
        min_presence_db: for an accompaniment version, the head and tail where it is this far below the
            mix (faded out, or not yet in) are left out of the covered range.
        fade_tol_db: a head or tail whose local gain departs from the song's by more than this is a
            different fade, undone by a gain curve (accompaniment versions only).
        keep_alternative: also return the vocals of the method not chosen (for calibration).
        cache_mb: memory for the STFTs of the mix and the two aligned versions, kept between the passes
            (MB); what does not fit is recomputed on each pass (the results do not depend on it).
    """

    search_window_s: float = 0.5
    drift_window_s: float = 4.0
    max_windows: int = 24
    min_drift_windows: int = 8
    min_drift_window_s: float = 1.0
    max_drift_ppm: float = 500.0
    min_drift_samples: float = 0.25
    n_fft: int = 4096
    hop: int = 1024
    segment_s: float = 1.5
    fold_s: float = 0.4
    octaves: tuple[float, ...] = (1 / 12, 1 / 3)
    priors: tuple[float, ...] = (0.5, 3.0)
    ridge: float = 1e-3
    min_cancellation_db: float = 18.1
    cancel_quantile: float = 0.2
    weight_power: float = 2.0
    select_z: float = 2.0
    select_min_gain_db: float = 0.5
    min_presence_db: float = -20.0
    fade_tol_db: float = 1.0
    keep_alternative: bool = False
    cache_mb: float = 512.0

    @classmethod
    def fast(cls, **overrides) -> "AlignParams":
        """The cheaper preset of the targets stage (magnitude targets at 8 kHz mono): one frequency
        smoothing and one shrinkage prior for the filter candidates (4 candidates besides the
        integer-lag one instead of 10) and at most 12 drift windows; `overrides` set any field."""
        return cls(**{**dict(octaves=(1 / 3,), priors=(3.0,), max_windows=12), **overrides})


@dataclass
class PairStems:
    """Stems of one pair over the range the version covers.

    Attributes:
        mixture: the mix over the covered range, (n_samples, channels) float32: the float32 sum of the
            stems, within one rounding (~1e-7) of the input mix.
        vocals: vocal stem, same shape.
        instrumental: accompaniment stem, same shape; ``vocals + instrumental == mixture`` exactly.
        mix_start_sample: first mix sample of the covered range.
        n_samples: its length.
        sr: sample rate.
        method: "waveform" (subtraction), "spectral" (magnitude mask fallback) or "naive" (baseline).
        reason: why the fallback was taken ("" for waveform).
        cancellation_db: grade of the waveform match (see `pairminer.stems.grade.cancellation_db`).
        drift_ppm: measured clock drift (positive: the version runs slow); 0 when not corrected.
        polarity: +1, or -1 for an inverted version.
        lag_samples: final lag at mix sample `mix_start_sample` on the drift-corrected version (fractional).
        gain_db: broadband gain per channel (dB, of |g|).
        filter_dev_db: RMS departure of the matching filter from flat over the band (dB).
        model: the matching-filter model chosen.
        model_scores: held-out residual of each candidate, dB relative to the best.
        lag_windows: drift windows used / kept by the robust fit.
        lag_residual_std: RMS residual of the kept windows' lags around the drift line (samples).
        measured_drift_ppm: the drift the lag windows showed, even when too small to correct.
        alternative_vocals: with `AlignParams.keep_alternative`, the other method's vocals.
    """

    mixture: np.ndarray
    vocals: np.ndarray
    instrumental: np.ndarray
    mix_start_sample: int
    n_samples: int
    sr: int
    method: str
    reason: str = ""
    cancellation_db: float = float("nan")
    drift_ppm: float = 0.0
    polarity: int = 1
    lag_samples: float = 0.0
    gain_db: list[float] = field(default_factory=list)
    filter_dev_db: float = float("nan")
    model: str = ""
    model_scores: dict[str, float] = field(default_factory=dict)
    lag_windows: tuple[int, int] = (0, 0)
    lag_residual_std: float = float("nan")
    measured_drift_ppm: float = 0.0
    alternative_vocals: np.ndarray | None = None


def _mono(x: np.ndarray) -> np.ndarray:
    """Mean over channels of (samples, channels) float32, as ``x.mean(axis=1)`` (summed in channel order)."""
    out = x[:, 0].copy()
    for c in range(1, x.shape[1]):
        out += x[:, c]
    if x.shape[1] > 1:
        out /= np.float32(x.shape[1])
    return out


def drift_window_s(n: int, sr: int, params: AlignParams) -> float:
    """Length of the drift windows (s): `drift_window_s`, shortened on a short song so that it holds
    `min_drift_windows` of them (a line through 3 windows cannot tell an outlier from drift), but not
    below `min_drift_window_s`."""
    fit = n / sr / max(1, params.min_drift_windows)
    return float(min(params.drift_window_s, max(params.min_drift_window_s, fit)))


def measure_lag(mix_mono: np.ndarray, ver_mono: np.ndarray, sr: int, coarse: int,
                params: AlignParams) -> tuple[lag.DriftFit, int]:
    """Drift line and polarity from windowed GCC-PHAT lags around the coarse lag.

    Args:
        mix_mono: mono mix.
        ver_mono: mono version.
        sr: rate.
        coarse: coarse lag (samples).
        params: tunables.

    Returns:
        (fit, n_windows).
    """
    half = max(64, int(params.search_window_s * sr))
    ll = lag.local_lags(mix_mono, ver_mono, sr, coarse, half, drift_window_s(len(mix_mono), sr, params),
                        params.max_windows)
    return lag.fit_drift(ll), len(ll.lag)


def subtract_pair(mix: np.ndarray, version: np.ndarray, sr: int, kind: str, *, coarse_offset_s: float = 0.0,
                  params: AlignParams = AlignParams()) -> PairStems:
    """Align `version` to `mix` (lag, drift, polarity, matching filter) and split the mix into stems.

    Args:
        mix: (samples, channels) float32.
        version: (samples, channels) float32 at the same rate and channel count (see `conform`).
        sr: sample rate.
        kind: "instrumental", "karaoke", "off_vocal" (the version is the accompaniment) or "acapella".
        coarse_offset_s: the fingerprint offset (s); positive: the version starts later.
        params: tunables.

    Returns:
        PairStems over the covered range, with its grades.

    Raises:
        AudioError: shapes that do not match, audio too short, or no overlap at the measured lag.
    """
    import soxr

    mix = np.asarray(mix, np.float32)
    version = np.asarray(version, np.float32)
    _check(mix, version, kind)
    mono_m = _mono(mix)
    mono_v = _mono(version)
    coarse = int(round(coarse_offset_s * sr))
    fit, n_win = measure_lag(mono_m, mono_v, sr, coarse, params)
    if fit.n_inliers == 0:
        fit = lag.DriftFit(float(coarse), 0.0, 0, float("nan"), 1)
    measured_ppm = fit.slope * 1e6
    # Drift: resample by the fitted slope, measure the lags again on the corrected version, repeat while
    # a residual drift remains (a window's GCC peak is smeared by the drift within it, so the first fit
    # is biased by a few ppm; on the corrected version the peaks are sharp).
    eps, ver, cur, mono_ver = 0.0, version, fit, mono_v
    for _ in range(3):
        total = (1 + eps) * (1 + cur.slope) - 1
        if (cur.n_inliers < 3 or abs(cur.slope) * len(mix) < params.min_drift_samples
                or abs(total) * 1e6 > params.max_drift_ppm):
            break
        pred = cur.intercept / (1 + cur.slope)
        eps = total
        ver = soxr.resample(version, sr * (1 + eps), sr, quality="VHQ").astype(np.float32)
        mono_ver = _mono(ver)
        ll = lag.local_lags(mono_m, mono_ver, sr, int(round(pred)), 64, drift_window_s(len(mono_m), sr, params),
                            params.max_windows)
        cur = lag.fit_drift(ll)
        if cur.n_inliers == 0:
            cur = lag.DriftFit(pred, 0.0, 0, float("nan"), fit.polarity)
    centre = cur.intercept + cur.slope * len(mix) / 2
    k = int(round(centre))
    n0, n1 = _covered(len(mix), len(ver), k)
    if n1 - n0 < params.n_fft:
        raise AudioError(f"the version covers {max(0, n1 - n0)} samples of the mix at lag {k}: too little to subtract")
    if kind != "acapella":
        n0, n1 = edges.present(mono_m, mono_ver, k, n0, n1, sr, params.min_presence_db)
    mix_c = np.ascontiguousarray(mix[n0:n1])
    ver_c = _slice(ver, n0 + k, n1 + k)
    curve = (edges.fade_curve(mono_m[n0:n1], _slice(mono_ver[:, None], n0 + k, n1 + k)[:, 0], sr, params.fade_tol_db)
             if kind != "acapella" else None)
    if curve is not None:
        ver_c *= curve[:, None]
    stft = spectra_mod.Stft(n1 - n0, params.n_fft, params.hop)
    seg_frames = max(1, int(round(params.segment_s * sr / params.hop)))
    fold_frames = max(1, int(round(params.fold_s * sr / params.hop)))
    from pairminer.targets.align import refine_offset

    k0 = refine_offset(mono_m, mono_v, sr, coarse_offset_s, params.search_window_s).offset_samples
    ver_int = _slice(version, n0 + k0, n1 + k0)
    if curve is not None:
        ver_int *= curve[:, None]
    if ver is version and k0 == k:
        ver_int = ver_c  # no drift correction and the same lag: one signal, transformed once
    # Every pass below reads the three signals' STFTs from one cache (computed once while it fits the
    # budget, chunk by chunk otherwise); the first pass also samples the magnitudes for the gains.
    spectra = spectra_mod.Spectra(stft, [mix_c, ver_c, ver_int], params.cache_mb * 1e6)
    (st, st_int), mags = mf.accumulate(spectra, 0, [1, 2], seg_frames, fold_frames, mag_every=4)
    mag_gains = {1: grade.magnitude_gains(mags[0], mags[1])}
    mag_gains[2] = mag_gains[1] if spectra.base(2) == 1 else grade.magnitude_gains(mags[0], mags[2])
    del mags

    # Fractional lag from the song-wide cross-spectrum, coherence-weighted (Hannan-Thomson / Carter).
    smm, sii, smi = st.total((0, 1, 2))
    pol = 1 if np.real(smi.sum()) >= 0 else -1
    coh = np.clip(np.abs(smi) ** 2 / np.maximum(smm * sii, 1e-30), 0, 0.999)
    wts = coh / (1 - coh) / np.maximum(np.abs(smi), 1e-30)
    tau, _ = lag.fractional_peak(smi * pol, params.n_fft, 0.0, wts, span=1.5)
    omega = 2 * np.pi * np.arange(stft.n_bins) / params.n_fft
    ramp = np.exp(-1j * omega * tau)
    st = st.rotate(ramp)

    # Second pass: sums weighted by how much the version dominates each bin (the voice cannot bias them).
    # The prior is a slow gain track (fades and gain riding are not the voice).
    gain = mf.Model("gain")
    track = mf.Model("track", prior=max(params.priors))
    g0 = mf.fit_all(track, st)[:, :, :1]
    g0_int = mf.fit_all(track, st_int)[:, :, :1]
    (stw, stw_int), _ = mf.accumulate(spectra, 0, [1, 2], seg_frames, fold_frames,
                                      prior=[(g0, ramp), (g0_int, None)], power=params.weight_power)
    stw = stw.rotate(ramp)
    # One gain per channel by the magnitude mode (voice-free bins pile up at |M|/|I| = g), signed by the
    # least-squares sign: sharper than least squares, whose voice cross-term does not vanish on a song.
    for s_, v_ in ((stw, 1), (stw_int, 2)):
        sign = np.sign(mf.fit_all(gain, s_)[0, :, 0].real)
        mag = mag_gains[v_]
        if np.all(np.isfinite(mag)):
            s_.robust_gain = np.where(sign == 0, 1.0, sign) * mag

    # Candidates from the simplest to the most complex, scored on held-out frames.
    cands: dict[str, tuple[mf.Model, mf.Stats, np.ndarray | None, int]] = {
        "integer lag, gain": (gain, stw_int, None, 2)}
    models = [gain]
    if kind != "acapella":
        # Over an acapella's span the accompaniment (same key, same beat) is not uncorrelated enough
        # with the voice: held-out scores still favour filters that lose 5-20 dB of SDR (measured on
        # seed 1), so an acapella gets one gain per channel only.
        models += [mf.Model("static", o) for o in sorted(params.octaves, reverse=True)]
    if stw.smm.shape[0] > 2 and kind != "acapella":
        models += [mf.Model("track", prior=p) for p in sorted(params.priors, reverse=True)]
        models += [mf.Model("segment", o, p) for o in sorted(params.octaves, reverse=True) for p in sorted(params.priors, reverse=True)]
    for m in models:
        cands[m.label] = (m, stw, ramp, 1)
    scores = {name: mf.cv_residual(m, s, params.ridge) for name, (m, s, _, _) in cands.items()}
    best = mf.select(scores, list(cands), params.select_z, params.select_min_gain_db)
    ref = float(scores[best].sum())
    model_scores = {n: float(10 * np.log10(max(float(v.sum()), 1e-30) / max(ref, 1e-30))) for n, v in scores.items()}
    model, s_best, ramp_best, ver_best = cands[best]
    h = mf.fit_all(model, s_best, params.ridge)
    keep = params.keep_alternative
    matched, samples, spectral = mf.apply(spectra, ver_best, h, seg_frames, ramp_best, mix=0,
                                          spectral_gains=mag_gains[ver_best] if keep else None)
    canc = grade.cancellation_db(*samples, quantile=params.cancel_quantile) if samples else float("nan")

    g_fit = mf.fit_all(mf.Model("gain"), s_best)[0, :, 0].real
    h_static = mf.fit_all(mf.Model("static", max(params.octaves)), s_best)[0]
    dev = grade.filter_deviation_db(h_static, s_best.sii.sum(axis=(0, 1)))
    integer = best.startswith("integer")
    out = dict(mix_start_sample=n0, n_samples=n1 - n0, sr=sr, cancellation_db=canc,
               drift_ppm=0.0 if integer else eps * 1e6, measured_drift_ppm=measured_ppm,
               polarity=int(np.sign(g_fit.sum()) or 1) if not integer else pol,
               lag_samples=float(k0) if integer else k - tau,
               gain_db=[float(20 * np.log10(max(abs(g), 1e-12))) for g in g_fit], filter_dev_db=dev,
               model=best, model_scores=model_scores, lag_windows=(n_win, fit.n_inliers),
               lag_residual_std=fit.residual_std)
    waveform = bool(np.isfinite(canc) and canc >= params.min_cancellation_db)
    alt = None
    if not waveform or params.keep_alternative:
        if spectral is None:
            spectral = grade.spectral_part(spectra, 0, ver_best, mag_gains[ver_best])
        if waveform:
            alt = _stems(mix_c, spectral, kind)[1]
        else:
            alt = _stems(mix_c, matched, kind)[1] if params.keep_alternative else None
            matched = spectral
    spectra.close()  # the cache and the aligned versions are not needed for the stems: free them first
    del ver, ver_c, ver_int
    mixture, vocals, inst = _stems(mix_c, matched, kind)
    reason = "" if waveform else (
        f"cancellation {canc:.1f} dB < {params.min_cancellation_db:g} dB: the pair does not cancel "
        "(a different mix, or faults the matching filter cannot model)")
    return PairStems(mixture=mixture, vocals=vocals, instrumental=inst, method="waveform" if waveform else "spectral",
                     reason=reason, alternative_vocals=alt, **out)


def naive_subtract(mix: np.ndarray, version: np.ndarray, sr: int, kind: str, coarse_offset_s: float = 0.0,
                   search_window_s: float = 0.5) -> PairStems:
    """The team's baseline: integer GCC-PHAT lag (`refine_offset`) and one magnitude gain (`estimate_gain`).

    Args:
        mix: (samples, channels) float32.
        version: same rate and channel count.
        sr: sample rate.
        kind: as in `subtract_pair`.
        coarse_offset_s: fingerprint offset (s).
        search_window_s: lag search half-width (s).

    Returns:
        PairStems with method "naive" over the covered range.
    """
    from pairminer.targets.align import estimate_gain, refine_offset

    mix = np.asarray(mix, np.float32)
    version = np.asarray(version, np.float32)
    _check(mix, version, kind)
    k = refine_offset(mix.mean(axis=1), version.mean(axis=1), sr, coarse_offset_s, search_window_s).offset_samples
    n0, n1 = _covered(len(mix), len(version), k)
    if n1 - n0 < 4096:
        raise AudioError(f"the version covers {max(0, n1 - n0)} samples of the mix at lag {k}")
    mix_c = np.ascontiguousarray(mix[n0:n1])
    ver_c = _slice(version, n0 + k, n1 + k)
    stft = spectra_mod.Stft(n1 - n0, 2048, 512)
    mm, vv = [], []
    for j0, j1 in stft.chunks():
        mm.append(np.abs(stft.frames(mix_c.mean(axis=1, keepdims=True), j0, j1)[::2]))
        vv.append(np.abs(stft.frames(ver_c.mean(axis=1, keepdims=True), j0, j1)[::2]))
    g = estimate_gain(np.concatenate(mm), np.concatenate(vv))
    g = 1.0 if not np.isfinite(g) else g
    mixture, vocals, inst = _stems(mix_c, ver_c * np.float32(g), kind)
    return PairStems(mixture=mixture, vocals=vocals, instrumental=inst, mix_start_sample=n0, n_samples=n1 - n0,
                     sr=sr, method="naive", lag_samples=float(k), gain_db=[float(20 * np.log10(g))],
                     model="integer lag, magnitude gain")
