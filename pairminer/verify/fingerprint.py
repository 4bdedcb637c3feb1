"""Chromaprint fingerprints (libchromaprint in process, via pyacoustid) and offset-aware comparison.

A fingerprint is a sequence of 32-bit items, one per 1365 samples at 11025 Hz (`ITEM_S` ~ 0.1238 s).
Two recordings of the same master give items that agree bit for bit at the right alignment; an
instrumental of the same master agrees on most bits (the voice flips some); unrelated audio
agrees on about half the bits, like noise.

`compare(mix_items, version_items, max_offset_items)` tries every item offset in
[-max_offset_items, +max_offset_items] at once (numpy, popcount with `np.bitwise_count`) and keeps
the one with the lowest bit error rate (BER = differing bits / (32 x overlapping items)). The
offset is positive when the version starts later: version item ``i + offset`` matches mix item ``i``.

Alongside the items, `fingerprint_signal` keeps a coarse band-energy envelope (`N_BANDS` log-spaced
bands per item, float16) used for a second, cheap acoustic check: the share of the mix energy left
after subtracting the gain-matched, aligned version (`residual_share`).

These functions are pure and importable, so dask.distributed workers can run them.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass

import numpy as np

from ..audio import load_audio
from ..errors import AudioError

CHROMAPRINT_SR_HZ = 11025
ITEM_HOP_SAMPLES = 1365
ITEM_S = ITEM_HOP_SAMPLES / CHROMAPRINT_SR_HZ  # ~0.1238 s per fingerprint item
# Band envelope frames per item: a finer grid than the items, so that a version offset by a fraction
# of an item still lands within ~20 ms of a band frame (the residual and the envelope GCC-PHAT need it).
BANDS_PER_ITEM = 3
BAND_HOP_SAMPLES = ITEM_HOP_SAMPLES // BANDS_PER_ITEM  # 455 samples, ~41 ms
BAND_HOP_S = BAND_HOP_SAMPLES / CHROMAPRINT_SR_HZ
N_BANDS = 16
_BAND_FFT = 1024
_BAND_BLOCK_FRAMES = 4096
_BAND_EDGES_HZ = np.geomspace(60.0, 5000.0, N_BANDS + 1)


@dataclass(frozen=True)
class Fingerprint:
    """A decoded file's fingerprint.

    Attributes:
        items: raw Chromaprint items, uint32, shape (n_items,).
        bands: band energies (linear power), float32, shape (n_frames, N_BANDS), one row per
            `BAND_HOP_SAMPLES` (a third of an item).
        duration_s: duration of the fingerprinted audio (after `max_seconds`).
        source_sr_hz: sample rate of the file.
        channels: channels of the file (0 when the decoder does not say).
    """

    items: np.ndarray
    bands: np.ndarray
    duration_s: float
    source_sr_hz: int = 0
    channels: int = 0

    def encode(self) -> dict:
        """Plain-typed record for the cache: the compressed Chromaprint string, base64 float16 bands."""
        return {
            "fingerprint": encode_items(self.items),
            "bands_b64": base64.b64encode(_to_db16(self.bands).tobytes()).decode("ascii"),
            "n_items": int(len(self.items)),
            "duration_s": float(self.duration_s),
            "source_sr_hz": int(self.source_sr_hz),
            "channels": int(self.channels),
        }

    @classmethod
    def decode(cls, rec: dict) -> "Fingerprint":
        items = decode_items(rec["fingerprint"])
        bands = _from_db16(np.frombuffer(base64.b64decode(rec["bands_b64"]), dtype="<f2"))
        return cls(items, bands.reshape(-1, N_BANDS), float(rec["duration_s"]), int(rec["source_sr_hz"]),
                   int(rec["channels"]))


def _to_db16(power: np.ndarray) -> np.ndarray:
    """Band powers as float16 dB (the cache's storage; ~0.03 dB steps over -120..+40 dB)."""
    return (10.0 * np.log10(np.maximum(power, 1e-12))).astype("<f2")


def _from_db16(db: np.ndarray) -> np.ndarray:
    return np.power(np.float32(10.0), db.astype(np.float32) / np.float32(10.0)).astype(np.float32)


def encode_items(items: np.ndarray) -> str:
    """Compress raw items to Chromaprint's base64 string (the format AcoustID and fpcalc use)."""
    import chromaprint

    signed = np.ascontiguousarray(items, dtype=np.uint32).view(np.int32).tolist()
    try:
        out = chromaprint.encode_fingerprint(signed, chromaprint.Fingerprinter.ALGORITHM_DEFAULT)
    except chromaprint.FingerprintError as exc:
        raise AudioError("chromaprint could not encode a fingerprint") from exc
    return out.decode("ascii") if isinstance(out, bytes) else out


def decode_items(fp: str | bytes) -> np.ndarray:
    """Raw uint32 items of a compressed base64 fingerprint (chromaprint.decode_fingerprint)."""
    import chromaprint

    data = fp.encode("ascii") if isinstance(fp, str) else fp
    if not data:
        return np.zeros(0, np.uint32)
    items, _algorithm = chromaprint.decode_fingerprint(data)
    return np.asarray(items, dtype=np.uint32)


def chromaprint_items(y: np.ndarray) -> np.ndarray:
    """Raw Chromaprint items of a mono signal at 11025 Hz.

    Args:
        y: float mono signal in [-1, 1], shape (samples,), at `CHROMAPRINT_SR_HZ`.

    Returns:
        uint32 array, shape (n_items,); about len(y) / 1365 - 16 items (none for signals under ~3 s).
    """
    import chromaprint

    pcm = np.clip(np.asarray(y, np.float32) * 32767.0, -32768, 32767).astype("<i2")
    fpr = chromaprint.Fingerprinter()
    fpr.start(CHROMAPRINT_SR_HZ, 1)
    fpr.feed(pcm.tobytes())
    return decode_items(fpr.finish())


@functools.lru_cache(maxsize=1)
def _band_window() -> np.ndarray:
    return np.hanning(_BAND_FFT).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _band_bins() -> tuple[int, np.ndarray, int]:
    """(first bin, band starts relative to it, end bin): bands are contiguous runs of FFT bins."""
    freqs = np.fft.rfftfreq(_BAND_FFT, 1 / CHROMAPRINT_SR_HZ)
    starts = np.searchsorted(freqs, _BAND_EDGES_HZ)  # N_BANDS + 1 edges
    return int(starts[0]), starts[:-1] - starts[0], int(starts[-1])


def band_energies(y: np.ndarray) -> np.ndarray:
    """Power in `N_BANDS` log-spaced bands (60 Hz-5 kHz), one 1024-sample Hann frame per `BAND_HOP_SAMPLES`.

    Args:
        y: mono float signal at 11025 Hz, shape (samples,).

    Returns:
        float32 array (n_frames, N_BANDS), n_frames = len(y) // 455, frame i starting at sample 455 i.
    """
    n = len(y) // BAND_HOP_SAMPLES
    if n == 0:
        return np.zeros((0, N_BANDS), np.float32)
    y = np.ascontiguousarray(y, np.float32)  # as_strided below assumes 4-byte steps
    need = (n - 1) * BAND_HOP_SAMPLES + _BAND_FFT
    if len(y) < need:
        y = np.pad(y, (0, need - len(y)))
    import scipy.fft

    frames = np.lib.stride_tricks.as_strided(y, (n, _BAND_FFT), (BAND_HOP_SAMPLES * 4, 4))
    first, rel_starts, stop = _band_bins()
    out = np.empty((n, N_BANDS), np.float32)
    # In blocks of frames, so that a 2-hour file costs a block of spectra, not all of them at once.
    for k in range(0, n, _BAND_BLOCK_FRAMES):
        spec = scipy.fft.rfft(frames[k:k + _BAND_BLOCK_FRAMES] * _band_window(), axis=1)  # complex64
        power = spec.real**2 + spec.imag**2
        # Sum the bins of each band (no BLAS call: its threads fight the Dask workers for cores).
        out[k:k + _BAND_BLOCK_FRAMES] = np.add.reduceat(power[:, first:stop], rel_starts, axis=1)
    out /= np.float32(_BAND_FFT**2)
    return out


def fingerprint_signal(y: np.ndarray, *, source_sr_hz: int = 0, channels: int = 0) -> Fingerprint:
    """Fingerprint (items + band envelope) of a mono float signal at 11025 Hz."""
    items = chromaprint_items(y)
    if len(items) == 0:
        raise AudioError(f"too short to fingerprint ({len(y) / CHROMAPRINT_SR_HZ:.2f} s)")
    # Quantised like the cache stores them, so a cached fingerprint gives exactly the same results.
    bands = _from_db16(_to_db16(band_energies(y)))
    return Fingerprint(items, bands, len(y) / CHROMAPRINT_SR_HZ, source_sr_hz, channels)


def fingerprint_file(path: str, *, max_seconds: float | None = None, min_seconds: float = 5.0,
                     max_duration_s: float | None = None) -> Fingerprint:
    """Decode `path` (mono, soxr to 11025 Hz) and fingerprint it (files over `max_duration_s` are refused from the header).

    Raises:
        AudioError: missing, unreadable, truncated, silent or too short (message names the file).
    """
    y, info = load_audio(path, CHROMAPRINT_SR_HZ, max_seconds=max_seconds, min_seconds=min_seconds,
                         max_duration_s=max_duration_s)
    try:
        return fingerprint_signal(y, source_sr_hz=info.source_sr_hz, channels=info.channels)
    except AudioError as exc:
        raise AudioError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class Match:
    """Best alignment of two fingerprints.

    Attributes:
        ber: bit error rate at the best offset (0 = identical, ~0.5 = unrelated); NaN without overlap.
        offset_items: best integer offset in items (positive: the version starts later).
        offset_s: refined offset in seconds (sub-item, from the BER curve around the minimum).
        overlap_items / overlap_s: overlap of the two fingerprints at that offset.
        second_ber: lowest BER more than 3 items away from the best (how distinct the minimum is).
    """

    ber: float
    offset_items: int
    offset_s: float
    overlap_items: int
    overlap_s: float
    second_ber: float


# Bytes of scratch one `ber_by_offset` call may use; longer searches run in chunks of offsets.
_SCRATCH_BYTES = 64 << 20


def ber_by_offset(a: np.ndarray, b: np.ndarray, max_offset_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BER of `a` against `b` at each offset in [-max_offset_items, max_offset_items].

    Args:
        a: mix items, uint32 (n_a,).
        b: version items, uint32 (n_b,).
        max_offset_items: search radius in items.

    Returns:
        (offsets int64 (K,), ber float64 (K,), overlap int64 (K,)); at offset o, a[i] is compared
        with b[i + o]; ber is NaN where there is no overlap. Scratch memory stays under ~64 MiB
        whatever the radius and the lengths (offsets are scored in chunks).
    """
    r = int(max(0, max_offset_items))
    na, nb = len(a), len(b)
    offsets = np.arange(-r, r + 1)
    # Pad b by r on each side so that every offset is a window of length na over the padded array.
    valid_b = np.zeros(nb + 2 * r + na, bool)
    valid_b[r:r + nb] = True
    pb = np.zeros(nb + 2 * r + na, np.uint32)
    pb[r:r + nb] = b
    win = np.lib.stride_tricks.sliding_window_view(pb, na)[: 2 * r + 1]
    vwin = np.lib.stride_tricks.sliding_window_view(valid_b, na)[: 2 * r + 1]
    bits_sum = np.empty(2 * r + 1, np.int64)
    overlap = np.empty(2 * r + 1, np.int64)
    step = max(1, _SCRATCH_BYTES // max(1, 9 * na))
    for k in range(0, 2 * r + 1, step):
        bits = np.bitwise_count(win[k:k + step] ^ a[None, :]).astype(np.int32)
        v = vwin[k:k + step]
        bits *= v
        bits_sum[k:k + step] = bits.sum(axis=1)
        overlap[k:k + step] = v.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ber = bits_sum / (32.0 * overlap)
    return offsets, ber, overlap


def envelope_peak_ratio(mix: Fingerprint, version: Fingerprint, offset_items: float, radius_items: float,
                        guard_items: float = 3.0) -> float:
    """GCC-PHAT on the band envelopes: how sharp the alignment peak is at `offset_items`.

    The per-band log-energy changes (onsets) of the two files are cross-correlated with the phase
    transform (each frequency of the cross-spectrum divided by its magnitude, summed over the bands,
    Knapp & Carter 1976). The same recording gives one sharp peak at its offset, whatever the voice
    and the master do; another song at the same tempo gives a comb of similar peaks at the beat lags.

    Returns:
        the correlation at `offset_items` (best of +-1 band frame) over the largest correlation more than
        `guard_items` away from it within +-`radius_items`; ~1 means no distinct peak. NaN if too short.
    """
    offset = int(round(offset_items * BANDS_PER_ITEM))
    radius = int(np.ceil(radius_items * BANDS_PER_ITEM))
    guard = int(round(guard_items * BANDS_PER_ITEM))
    m = np.log(mix.bands.astype(np.float64) + 1e-10)
    v = np.log(version.bands.astype(np.float64) + 1e-10)
    if len(m) < 8 or len(v) < 8:
        return float("nan")
    dm, dv = np.diff(m, axis=0), np.diff(v, axis=0)
    dm -= dm.mean(axis=0)
    dv -= dv.mean(axis=0)
    r = int(max(radius, abs(offset) + guard + 2))
    n = int(2 ** np.ceil(np.log2(len(dm) + len(dv) + 2 * r + 1)))
    fm = np.fft.rfft(dm, n, axis=0)
    fv = np.fft.rfft(dv, n, axis=0)
    cross = (np.conj(fm) * fv).sum(axis=1)
    cross /= np.maximum(np.abs(cross), 1e-12 * np.abs(cross).max() + 1e-30)
    cc = np.fft.irfft(cross, n)  # cc[o] = sum_i dm[i] dv[i + o], negative lags wrap to the end
    lags = np.arange(-r, r + 1)
    vals = cc[lags % n]
    at = np.abs(lags - offset) <= 1
    peak = float(vals[at].max())
    far = np.abs(lags - offset) > guard
    rest = float(np.abs(vals[far]).max()) if far.any() else 0.0
    return peak / rest if rest > 0 else float("inf")


def compare(a: np.ndarray, b: np.ndarray, max_offset_items: int, *, min_overlap_items: int = 1) -> Match:
    """Best offset of version items `b` against mix items `a` (see `ber_by_offset`).

    Offsets whose overlap is below `min_overlap_items` are only used when no offset reaches it.
    The sub-item refinement fits a V (the BER of two Chromaprint streams grows about linearly
    with misalignment near the minimum) through the best offset and its two neighbours.
    """
    if len(a) == 0 or len(b) == 0:
        return Match(float("nan"), 0, 0.0, 0, 0.0, float("nan"))
    offsets, ber, overlap = ber_by_offset(a, b, max_offset_items)
    usable = overlap >= max(1, min_overlap_items)
    if not usable.any():
        usable = overlap > 0
    score = np.where(usable, ber, np.inf)
    i = int(np.argmin(score))
    best = float(ber[i])
    frac = 0.0
    if 0 < i < len(ber) - 1 and usable[i - 1] and usable[i + 1]:
        lo, hi = float(ber[i - 1]), float(ber[i + 1])
        rise = max(lo, hi) - best
        if rise > 1e-9:
            frac = float(np.clip(0.5 * (lo - hi) / rise, -0.5, 0.5))
    far = usable & (np.abs(offsets - offsets[i]) > 3)
    second = float(ber[far].min()) if far.any() else float("nan")
    return Match(best, int(offsets[i]), (offsets[i] + frac) * ITEM_S, int(overlap[i]), overlap[i] * ITEM_S, second)


# A cell counts as "the mix holds something the version lacks" when it is this far above the version,
# in the bands from EXCESS_MIN_HZ up (below it, kick and bass fall on one or two FFT bins and an EQ of
# another master moves them by more than a quiet voice does).
EXCESS_DB = 6.0
EXCESS_MIN_HZ = 220.0


def residual_share(mix: Fingerprint, version: Fingerprint, offset_items: float) -> tuple[float, float]:
    """(residual share, version level in dB): see `residual_stats`."""
    st = residual_stats(mix, version, offset_items)
    return st["residual_share"], st["version_gain_db"]


def residual_stats(mix: Fingerprint, version: Fingerprint, offset_items: float) -> dict[str, float]:
    """What the aligned, gain-matched version does not explain of the mix.

    With M, V the band powers of the overlapping frames (version shifted by `offset_items`, which may be
    fractional: it is rounded to the band grid, a third of an item), V is widened to the largest of each
    frame and its two neighbours (a misalignment below one band frame costs nothing), and each band
    gets its own gain g_b (the 20th percentile of M/V over its audible cells, so a gentle EQ of another
    master costs nothing either).

    Returns:
        residual_share: sum(max(M - g_b V, 0)) / sum(M), in [0, 1]: ~0 for a copy of the mix, about the
            energy share of the missing source for a true version, large for unrelated audio;
        excess_share: share of the audible cells (bands from `EXCESS_MIN_HZ` up) where M is more than
            `EXCESS_DB` above g_b V. A
            remaster or a lossy copy of the mix stays within a few dB everywhere (share ~0); a voice
            that is missing from the version, even 20 dB down, pokes out of a few percent of cells;
        version_gain_db: level of the version relative to the mix (median over the bands of -10 log10 g_b).
        All NaN when nothing overlaps.
    """
    nan = {"residual_share": float("nan"), "excess_share": float("nan"), "version_gain_db": float("nan")}
    m, v = mix.bands, version.bands
    o = int(round(float(offset_items) * BANDS_PER_ITEM))
    i0, i1 = max(0, -o), min(len(m), len(v) - o)
    if i1 - i0 <= 0:
        return nan
    M = m[i0:i1].astype(np.float64)
    V = v[i0 + o:i1 + o].astype(np.float64)
    W = V
    if len(V) >= 3:
        W = V.copy()
        np.maximum(W[1:], V[:-1], out=W[1:])
        np.maximum(W[:-1], V[1:], out=W[:-1])
    floor = 1e-6 * max(M.max(), V.max(), 1e-20)
    cells = (M > floor) & (V > floor)
    if not cells.any():
        return nan
    gains = np.full(M.shape[1], np.nan)
    for b in range(M.shape[1]):
        c = cells[:, b]
        if c.sum() >= 4:
            gains[b] = np.quantile(M[c, b] / V[c, b], 0.2)
    if not np.isfinite(gains).any():
        return nan
    g_all = float(np.nanmedian(gains))
    gains = np.where(np.isfinite(gains), gains, g_all)
    GW = gains[None, :] * W
    share = float(np.maximum(M - GW, 0.0).sum() / max(M.sum(), 1e-20))
    audible = cells & (M > 1e-4 * M.max())
    audible[:, _BAND_EDGES_HZ[:-1] < EXCESS_MIN_HZ] = False
    excess = float(np.mean(M[audible] > GW[audible] * 10 ** (EXCESS_DB / 10))) if audible.any() else float("nan")
    gain_db = (-10 * float(np.log10(g_all)) + 0.0) if g_all > 0 else float("nan")
    return {"residual_share": share, "excess_share": excess, "version_gain_db": gain_db}
