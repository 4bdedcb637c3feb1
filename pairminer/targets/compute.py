"""The targets stage's signal math: one verified pair -> aligned STFT magnitude frames (pure, no I/O).

1. decode the mix and the version once (mono, soxr to `sr`), see `pairminer.audio.load_audio`;
2. refine the fingerprint offset to the sample (GCC-PHAT, `pairminer.targets.align.refine_offset`) and put
   the version on the mix's timeline, zero-padded where it is missing;
3. STFT both (`librosa.stft`, centred), estimate the gain g with `pairminer.targets.align.estimate_gain`;
4. channels: 0 = |mix|, 1 = g|instrumental|, 2 = max(|mix| - g|instrumental|, 0); for acapella pairs
   2 = g|acapella| and 1 = max(|mix| - g|acapella|, 0).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import shards as shardlib
from ..errors import AudioError
from .config import TargetsConfig

log = logging.getLogger(__name__)

# Length assumed for planning batches when the input has no mix_duration_s.
_DEFAULT_DURATION_S = 240.0


@dataclass
class TargetsOutcome:
    """One pair's targets: its frames and stats, or why it failed."""

    frames: np.ndarray | None = None
    stats: dict[str, Any] | None = None
    error: str | None = None


def compute_pair(row: dict, config: TargetsConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode, align, gain-match and STFT one pair.

    Args:
        row: a verified.parquet row (dict) with the REQUIRED_COLUMNS.
        config: the stage config.

    Returns:
        (frames, stats): frames is float16 of shape (n_frames, 3, n_fft // 2 + 1) on the mix's timeline
        (frame i centred on mix sample i * hop); stats holds offset_s, gain_db and the quality figures.

    Raises:
        AudioError: a file cannot be decoded, or the pair is unusable (too short, no overlap).
    """
    from ..audio import load_audio

    check_mix_duration(row, config)
    (mpath, mreq), (vpath, vreq) = decode_requests(row, config)
    # The length cap is read from the headers first, so a small file that holds hours is never decoded.
    mix, _ = load_audio(mpath, mreq.sr_hz, max_duration_s=mreq.max_duration_s)
    ver, _ = load_audio(vpath, vreq.sr_hz, max_duration_s=vreq.max_duration_s)
    return compute_pair_audio(row, config, mix, ver)


def check_mix_duration(row: dict, config: TargetsConfig) -> None:
    """Refuse (AudioError) a pair whose mix_duration_s is over `max_duration_s`, before any decode."""
    dur = row.get("mix_duration_s")
    if dur is not None and np.isfinite(dur) and dur > config.max_duration_s:
        raise AudioError(f"mix is {dur:.0f} s long, over max_duration_s={config.max_duration_s:.0f}; raise it to keep it")


def decode_requests(row: dict, config: TargetsConfig) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """((mix path, DecodeRequest), (version path, DecodeRequest)): what `compute_pair` decodes, and how."""
    from ..audio import DecodeRequest, resolve_audio_path

    mix = resolve_audio_path(row["mix_audio_path"], audio_root=config.audio_root)
    ver = resolve_audio_path(row["version_audio_path"], audio_root=config.audio_root)
    return ((mix, DecodeRequest(config.sr, max_duration_s=config.max_duration_s)),
            (ver, DecodeRequest(config.sr, max_duration_s=config.max_duration_s + config.search_window_s + 3600.0)))


def compute_pair_audio(row: dict, config: TargetsConfig, mix: np.ndarray, ver: np.ndarray
                       ) -> tuple[np.ndarray, dict[str, Any]]:
    """`compute_pair` on audio already decoded (mono float32 at `config.sr`, as `load_audio` gives it)."""
    import librosa

    from .align import estimate_gain, refine_offset, shift_onto

    sr = config.sr
    if len(mix) > config.max_duration_s * sr:
        raise AudioError(f"mix is over max_duration_s={config.max_duration_s:.0f} s long; raise it to keep it")
    coarse_s = float(row["offset_s"]) if row.get("offset_s") is not None and np.isfinite(row["offset_s"]) else 0.0
    al = refine_offset(mix, ver, sr, coarse_s, config.search_window_s)
    d = al.offset_samples
    cover_lo, cover_hi = max(0, -d), min(len(mix), len(ver) - d)
    covered = max(0, cover_hi - cover_lo)
    if covered <= 0:
        raise AudioError(f"the version does not overlap the mix at offset {al.offset_s:.3f} s")
    acapella = str(row.get("version_kind", "")).strip().lower() == "acapella"
    wave = _waveform_split(mix, ver, sr, acapella, coarse_s, config) if config.vocal_target == "waveform" else None
    if wave is not None:  # the pair cancels: magnitudes of the aligned waveform stems (docs/targets.md)
        cover_lo, cover_hi = wave[2], wave[3]
        covered = cover_hi - cover_lo
    aligned = shift_onto(ver, d, len(mix))
    del ver
    stft = dict(n_fft=config.n_fft, hop_length=config.hop, window=config.window, center=True)
    mix_mag = np.abs(librosa.stft(mix, **stft))
    ver_mag = np.abs(librosa.stft(aligned, **stft))
    del aligned
    n_frames = mix_mag.shape[1]
    if n_frames < config.min_frames:
        raise AudioError(f"too short: {n_frames} STFT frames, need min_frames={config.min_frames}")
    g = estimate_gain(mix_mag, ver_mag)
    if not np.isfinite(g) or g <= 0:
        raise AudioError("cannot estimate a gain: the aligned version or the mix is silent where they overlap")
    if wave is not None:
        del ver_mag
        inst, vocal = (np.abs(librosa.stft(w, **stft)) for w in wave[:2])
    else:  # the seed's rule: max(|M| - g|I|, 0)
        ver_mag *= np.float32(g)
        rest = np.maximum(mix_mag - ver_mag, 0.0)
        inst, vocal = (rest, ver_mag) if acapella else (ver_mag, rest)
    c0, c1 = covered_frame_range(cover_lo, cover_hi, len(mix), n_frames, config.n_fft, config.hop)
    if c1 - c0 < config.min_frames:
        raise AudioError(f"the version covers only {max(0, c1 - c0)} STFT frames of the mix (need min_frames="
                         f"{config.min_frames}) at offset {al.offset_s:.3f} s")
    # Where the version is missing there is no valid target (not vocal = mix): zeros, outside the manifest's range.
    for mag in (inst, vocal):
        mag[:, :c0] = 0.0
        mag[:, c1:] = 0.0
    peak = max(float(mix_mag.max()), float(inst.max()), float(vocal.max()))
    if not np.isfinite(peak):
        raise AudioError("the STFT holds NaN or infinity; check the files")
    if peak > shardlib.FLOAT16_MAX:
        raise AudioError(f"STFT magnitudes reach {peak:.3g}, beyond float16 ({shardlib.FLOAT16_MAX:.0f}): the audio is "
                         "far outside [-1, 1] (a float WAV holding integer-scale samples?); rescale the file to "
                         "[-1, 1] and rerun")

    frames = np.empty((n_frames, shardlib.N_CHANNELS, config.bins), dtype=shardlib.SHARD_DTYPE)
    for ch, mag in ((shardlib.MIX, mix_mag), (shardlib.INSTRUMENTAL, inst), (shardlib.VOCALS, vocal)):
        frames[:, ch, :] = mag.T
    mix_e = np.square(mix_mag[:, c0:c1], dtype=np.float64).sum(axis=0)
    voc_e = np.square(vocal[:, c0:c1], dtype=np.float64).sum(axis=0)
    active = mix_e > mix_e.max() * 1e-8
    has_voc = active & (voc_e >= mix_e * 10 ** (config.vocal_frame_db / 10))
    stats = {
        "duration_s": len(mix) / sr,
        "offset_s": al.offset_s,
        "fingerprint_offset_s": coarse_s,
        "gain_db": 20.0 * math.log10(g),
        "align_peak_ratio": al.peak_ratio if np.isfinite(al.peak_ratio) else 1e9,
        "align_at_edge": bool(al.at_edge),
        "version_coverage": covered / len(mix),
        "vocal_energy_ratio": float(voc_e.sum() / mix_e.sum()) if mix_e.sum() > 0 else 0.0,
        "vocal_frame_share": float(has_voc.sum() / max(1, active.sum())),
        "n_frames": n_frames,
        "cover_start_frame": int(c0),
        "cover_stop_frame": int(c1),
        "target_method": "waveform" if wave is not None else "magnitude",
        "cancellation_db": wave[4] if wave is not None else None,
    }
    if al.at_edge:
        log.warning("pair %s: offset peak at the edge of the +-%.2f s search window; the alignment may be wrong",
                    row["pair_id"], config.search_window_s)
    return frames, stats


def _waveform_split(mix: np.ndarray, ver: np.ndarray, sr: int, acapella: bool, coarse_s: float,
                    config: TargetsConfig) -> tuple[np.ndarray, np.ndarray, int, int, float] | None:
    """(instrumental, vocals on the mix's timeline, covered start, stop, cancellation dB) from the stems'
    alignment and subtraction, or None when the pair does not cancel (the seed's rule is used then)."""
    from ..stems.align import AlignParams, subtract_pair

    try:
        st = subtract_pair(mix[:, None], ver[:, None], sr, "acapella" if acapella else "instrumental",
                           coarse_offset_s=coarse_s,
                           params=AlignParams.fast(search_window_s=config.search_window_s,
                                                   min_cancellation_db=config.min_cancellation_db))
    except AudioError as exc:
        log.debug("waveform split failed (%s); the magnitude rule is used", exc)
        return None
    if st.method != "waveform":
        return None
    lo, hi = int(st.mix_start_sample), int(st.mix_start_sample + st.n_samples)
    inst = np.zeros(len(mix), np.float32)
    voc = np.zeros(len(mix), np.float32)
    inst[lo:hi], voc[lo:hi] = st.instrumental[:, 0], st.vocals[:, 0]
    return inst, voc, lo, hi, float(st.cancellation_db)


def covered_frame_range(lo: int, hi: int, n_samples: int, n_frames: int, n_fft: int, hop: int) -> tuple[int, int]:
    """[start, stop) of the centred STFT frames whose whole window lies where the version exists.

    Args:
        lo, hi: mix samples [lo, hi) where the aligned version has audio.
        n_samples: the mix's length; at its two ends the padding is the same for both signals, so a
            version that reaches an end covers the frames there.
        n_frames: frames of the mix's STFT (frame i centred on sample i * hop).
        n_fft, hop: STFT size and hop.
    """
    half = n_fft // 2
    start = 0 if lo <= 0 else -(-(lo + half) // hop)
    stop = n_frames if hi >= n_samples else (hi - half) // hop + 1
    return int(min(max(start, 0), n_frames)), int(min(max(stop, 0), n_frames))


def estimate_frames(row: dict, config: TargetsConfig) -> int:
    """STFT frames a pair will take, from its catalog duration (capped), before it is decoded."""
    dur = row.get("mix_duration_s")
    dur = float(dur) if dur is not None and np.isfinite(dur) else _DEFAULT_DURATION_S
    return int(min(dur, config.max_duration_s) * config.sr / config.hop) + 1

