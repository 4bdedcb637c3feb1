"""Which pairs the report shows, and the clips and spectrograms a person listens to and looks at.

Listening: for a sample of pairs per group (verified, the lowest-margin verified, too similar, too
different) the report decodes both files once at the targets' sample rate and cuts one `clip_s`
window from the mix's timeline:

* ``mix``: the mix;
* ``version``: the version put onto the mix's timeline with the verify/targets offset and scaled by
  the gain (what the vocal target subtracts);
* ``instrumental`` and ``vocals`` (pairs with targets): shard channels 1 and 2 resynthesised with
  the phase of the mix's STFT (the targets are magnitudes only), i.e. what the trainer learns from.

Clips are encoded by ffmpeg (Opus in Ogg, else MP3) and embedded as base64, within `max_audio_mb`.
"""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AudioError, InputError, PairminerError
from .load import STATUSES, TARGETS_DIR, StageOutputs, _jsonable, _num

log = logging.getLogger(__name__)

_EXAMPLE_COLUMNS = ["pair_id", "artist", "mix_title", "version_title", "version_kind", "genre", "duration_delta_s",
                    "title_score", "n_near_best", "ber", "offset_s", "overlap_s", "reason", "mix_audio_path",
                    "version_audio_path"]
LISTEN_GROUPS = ("verified", "lowest_margin", "too_similar", "too_different")
LISTEN_LABELS = {"verified": "Verified (random draw)", "lowest_margin": "Verified with the lowest margin",
                 "too_similar": "Too similar", "too_different": "Too different"}
CLIP_LABELS = {"mix": "mix", "version": "version, aligned onto the mix",
               "instrumental": "instrumental target (mix phase)", "vocals": "vocal target (mix phase)"}
# Longest file decoded for a clip; longer mixes are cut (the clip lies inside the first part).
_MAX_DECODE_S = 1800.0


def examples(stages: dict[str, StageOutputs], per_status: int, seed: int) -> dict[str, list[dict]]:
    """Example pairs per verify status (or "candidate" when verify has not run), a seeded random draw."""
    ver = stages["verify"].tables.get("verified")
    out: dict[str, list[dict]] = {}
    if ver is not None and "status" in ver:
        groups = [(s, ver[ver["status"].astype(str) == s]) for s in (*STATUSES, *sorted(set(ver["status"].astype(str))
                                                                                         - set(STATUSES)))]
    elif stages["discover"].tables.get("candidates") is not None:
        groups = [("candidate", stages["discover"].tables["candidates"])]
    else:
        return out
    for name, df in groups:
        if not len(df) or per_status == 0:
            out[name] = []
            continue
        pick = df.sample(n=min(per_status, len(df)), random_state=seed)
        pick = pick.sort_values("pair_id") if "pair_id" in pick else pick
        cols = [c for c in _EXAMPLE_COLUMNS if c in pick]
        rows = []
        for rec in pick[cols].to_dict("records"):
            rows.append({k: _jsonable(v) for k, v in rec.items()})
        out[name] = rows
    return out


# --------------------------------------------------------------------------------------------------
# Choosing the pairs to listen to
# --------------------------------------------------------------------------------------------------


def ber_margin(ber: pd.Series, verify_config: dict) -> pd.Series:
    """Distance of each BER to the nearer verify threshold (min_ber, max_ber); NaN when unknown."""
    lo, hi = _num(verify_config.get("min_ber")), _num(verify_config.get("max_ber"))
    ber = pd.to_numeric(ber, errors="coerce")
    if lo is None or hi is None:
        return pd.Series(np.nan, index=ber.index)
    return np.minimum(ber - lo, hi - ber)


def listening_sample(stages: dict[str, StageOutputs], per_group: int, seed: int) -> list[tuple[str, dict]]:
    """(group, verified.parquet row) for up to `per_group` pairs of each of LISTEN_GROUPS.

    The verified, too-similar and too-different groups are seeded random draws; the lowest-margin
    group takes the verified pairs whose BER is nearest a threshold, leaving out the pairs already drawn.
    """
    ver = stages["verify"].tables.get("verified")
    if ver is None or "status" not in ver or per_group == 0:
        return []
    vconf = stages["verify"].report.get("config")
    ver = ver.assign(ber_margin=ber_margin(ver["ber"], vconf if isinstance(vconf, dict) else {})) \
        if "ber" in ver else ver.assign(ber_margin=np.nan)
    status = ver["status"].astype(str)
    out, taken = [], set()
    for group in LISTEN_GROUPS:
        if group == "lowest_margin":
            pool = ver[(status == "verified") & ~ver["pair_id"].isin(taken) & ver["ber_margin"].notna()]
            pick = pool.sort_values(["ber_margin", "pair_id"]).head(per_group)
        else:
            pool = ver[status == group]
            pick = pool.sample(n=min(per_group, len(pool)), random_state=seed).sort_values("pair_id")
        for rec in pick.to_dict("records"):
            taken.add(rec["pair_id"])
            out.append((group, {k: _jsonable(v) for k, v in rec.items()}))
    return out


# --------------------------------------------------------------------------------------------------
# One pair's audio
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StftSettings:
    """The targets' STFT: sample rate (Hz), size and hop (samples), window."""

    sr_hz: int
    n_fft: int
    hop: int
    window: str


def stft_settings(stages: dict[str, StageOutputs]) -> StftSettings:
    """The STFT of the targets: from the manifest, else targets-report.json's config, else the defaults."""
    from ..targets.config import TargetsConfig

    man = stages["targets"].tables.get("manifest")
    if man is not None and len(man) and {"sr_hz", "n_fft", "hop", "window"} <= set(man.columns):
        r = man.iloc[0]
        return StftSettings(int(r["sr_hz"]), int(r["n_fft"]), int(r["hop"]), str(r["window"]))
    conf = stages["targets"].report.get("config")
    d = TargetsConfig()
    conf = conf if isinstance(conf, dict) else {}
    try:
        return StftSettings(int(conf.get("sr", d.sr)), int(conf.get("n_fft", d.n_fft)), int(conf.get("hop", d.hop)),
                            str(conf.get("window", d.window)))
    except (TypeError, ValueError):
        return StftSettings(d.sr, d.n_fft, d.hop, d.window)


@dataclass
class PairAudio:
    """Signals and magnitudes of one pair, cut to the clip window.

    Attributes:
        sr_hz: Sample rate of every signal.
        start_s: Start of the window on the mix's timeline (s).
        clips: Name (mix, version, instrumental, vocals) -> mono float32 signal of the window.
        spectra: Name (mix, instrumental, vocals) -> magnitude (bins, frames) of the window.
        from_targets: The instrumental and vocal magnitudes are the shard's (else computed here as
            g|version| and max(|mix| - g|version|, 0), what targets would make).
        offset_s, gain_db: The alignment used (gain_db: 20 log10 g applied to the version).
    """

    sr_hz: int
    start_s: float
    clips: dict[str, np.ndarray]
    spectra: dict[str, np.ndarray]
    from_targets: bool
    offset_s: float
    gain_db: float
    hop: int = 0
    notes: list[str] = field(default_factory=list)


def _alignment(row: dict, man_row: dict | None) -> tuple[float, float]:
    """(offset_s, gain_db as applied to the version): the refined ones of targets, else verify's."""
    if man_row is not None and _num(man_row.get("offset_s")) is not None:
        return float(man_row["offset_s"]), float(_num(man_row.get("gain_db")) or 0.0)
    off = _num(row.get("offset_s")) or 0.0
    # verify's version_gain_db is the version's level relative to the mix: undo it to match the mix
    return off, -float(_num(row.get("version_gain_db")) or 0.0)


def _window(energy: np.ndarray, n: int) -> int:
    """First frame of the `n`-frame window with the most energy (the middle when there is none)."""
    if len(energy) <= n:
        return 0
    if not np.any(energy > 0):
        return (len(energy) - n) // 2
    c = np.concatenate([[0.0], np.cumsum(energy, dtype=np.float64)])
    return int(np.argmax(c[n:] - c[:-n]))


def clip_energy(voc: np.ndarray, man_row: dict | None) -> np.ndarray:
    """Energy per frame of the vocal magnitude (bins, frames) that the clip window is chosen on.

    With the manifest's covered frames (``cover_start_frame``, ``cover_stop_frame``: where the
    aligned version covers the mix) the frames outside count 0, so the clip is heard where the
    target is real.
    """
    e = np.square(voc, dtype=np.float64).sum(axis=0)
    if man_row is not None:
        lo, hi = _num(man_row.get("cover_start_frame")), _num(man_row.get("cover_stop_frame"))
        if lo is not None and hi is not None and 0 <= lo < hi:
            keep = np.zeros(len(e), dtype=bool)
            keep[int(lo):int(hi)] = True
            if keep.any():
                e = np.where(keep, e, 0.0)
    return e


def pair_audio(row: dict, man_row: dict | None, targets_dir: str | None, settings: StftSettings, clip_s: float,
               audio_root: str | None = None) -> PairAudio:
    """Decode one pair and cut its clip window (see the module docstring).

    Args:
        row: The pair's verified.parquet row (mix_audio_path, version_audio_path, offset_s, ...).
        man_row: Its manifest row when it has targets, else None.
        targets_dir: The targets folder holding the shards (needed with `man_row`).
        settings: The targets' STFT.
        clip_s: Window length (s).
        audio_root: Resolve relative audio paths against it.

    Raises:
        AudioError: a file is missing or cannot be decoded.
    """
    import librosa

    from ..audio import load_audio, resolve_audio_path
    from ..shards import read_pair_frames
    from ..targets.align import shift_onto

    sr, hop = settings.sr_hz, settings.hop
    paths = [resolve_audio_path(str(row.get(c) or ""), audio_root=audio_root)
             for c in ("mix_audio_path", "version_audio_path")]
    mix, _ = load_audio(paths[0], sr, max_seconds=_MAX_DECODE_S, check_silence=False)
    ver, _ = load_audio(paths[1], sr, max_seconds=_MAX_DECODE_S, check_silence=False)
    offset_s, gain_db = _alignment(row, man_row)
    aligned = shift_onto(ver, int(round(offset_s * sr)), len(mix)) * np.float32(10 ** (gain_db / 20))
    del ver
    stft = dict(n_fft=settings.n_fft, hop_length=hop, window=settings.window, center=True)
    mix_stft = librosa.stft(mix, **stft)
    mix_mag = np.abs(mix_stft)
    ver_mag = np.abs(librosa.stft(aligned, **stft))
    notes = []
    inst = voc = None
    if man_row is not None and targets_dir is not None:
        try:
            frames = np.asarray(read_pair_frames(targets_dir, man_row), dtype=np.float32)
            n = min(frames.shape[0], mix_mag.shape[1])
            inst, voc = frames[:n, 1, :].T, frames[:n, 2, :].T
            if frames.shape[0] != mix_mag.shape[1]:
                notes.append(f"the shard holds {frames.shape[0]} frames, the decoded mix {mix_mag.shape[1]}")
        except InputError as exc:
            notes.append(f"shard not readable ({exc}); the targets shown are recomputed")
    from_targets = inst is not None
    if not from_targets:
        acapella = str(row.get("version_kind") or "").strip().lower() == "acapella"
        rest = np.maximum(mix_mag - ver_mag, 0.0)
        inst, voc = (rest, ver_mag) if acapella else (ver_mag, rest)
    n_clip = max(1, int(round(clip_s * sr / hop)))
    clip_n = int(round(clip_s * sr))
    # the clip lies inside the mix: frame f is centred on sample f * hop
    f0 = min(_window(clip_energy(voc, man_row), n_clip), max(0, (len(mix) - clip_n) // hop))
    f1 = min(f0 + n_clip, voc.shape[1])
    s0, s1 = f0 * hop, min(len(mix), f0 * hop + clip_n)
    clips = {"mix": mix[s0:s1], "version": aligned[s0:s1]}
    if from_targets:
        phase = np.exp(1j * np.angle(mix_stft[:, : inst.shape[1]]))
        for name, mag in (("instrumental", inst), ("vocals", voc)):
            y = librosa.istft(mag * phase, hop_length=hop, window=settings.window, center=True, length=len(mix))
            clips[name] = y[s0:s1].astype(np.float32)
    spectra = {"mix": mix_mag[:, f0:f1], "instrumental": inst[:, f0:f1], "vocals": voc[:, f0:f1]}
    return PairAudio(sr_hz=sr, start_s=s0 / sr, clips=clips, spectra=spectra, from_targets=from_targets,
                     offset_s=offset_s, gain_db=gain_db, hop=hop, notes=notes)


# --------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------


def audio_codec() -> tuple[str, str, str] | None:
    """(ffmpeg encoder, container format, MIME type) of the clips: Opus in Ogg, else MP3; None without ffmpeg."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    try:
        enc = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if " libopus " in enc:
        return "libopus", "ogg", "audio/ogg"
    if " libmp3lame " in enc:
        return "libmp3lame", "mp3", "audio/mpeg"
    return None


def encode_clip(y: np.ndarray, sr_hz: int, bitrate_kbps: int, codec: tuple[str, str, str]) -> bytes:
    """Compress a mono float32 signal with ffmpeg (raw samples on stdin, the file on stdout).

    Raises:
        AudioError: ffmpeg fails.
    """
    encoder, fmt, _ = codec
    exe = shutil.which("ffmpeg") or "ffmpeg"
    cmd = [exe, "-nostdin", "-hide_banner", "-v", "error", "-f", "f32le", "-ar", str(sr_hz), "-ac", "1", "-i",
           "pipe:0", "-c:a", encoder, "-b:a", f"{bitrate_kbps}k", "-map_metadata", "-1", "-f", fmt, "pipe:1"]
    data = np.ascontiguousarray(np.clip(y, -1.0, 1.0), dtype="<f4").tobytes()
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AudioError(f"ffmpeg cannot encode a clip ({exc})") from exc
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AudioError(f"ffmpeg cannot encode a clip ({err[-1] if err else 'exit ' + str(proc.returncode)})")
    return proc.stdout


def normalise(clips: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Scale every clip of a pair by one factor so that the loudest peak is at -1 dBFS (keeps their balance)."""
    peak = max((float(np.max(np.abs(y))) for y in clips.values() if len(y)), default=0.0)
    if not peak > 0 or not math.isfinite(peak):
        return clips
    g = np.float32(10 ** (-1 / 20) / peak)
    return {k: (y * g).astype(np.float32) for k, y in clips.items()}


def encode_pair(pa: PairAudio, bitrate_kbps: int, codec: tuple[str, str, str]) -> dict[str, bytes]:
    """Every clip of a pair, compressed: name -> file bytes (one ffmpeg process per clip, run side by side)."""
    from concurrent.futures import ThreadPoolExecutor

    clips = {name: y for name, y in normalise(pa.clips).items() if len(y)}
    with ThreadPoolExecutor(max_workers=len(clips) or 1) as pool:
        done = {name: pool.submit(encode_clip, y, pa.sr_hz, bitrate_kbps, codec) for name, y in clips.items()}
        return {name: f.result() for name, f in done.items()}


# --------------------------------------------------------------------------------------------------
# The listening section
# --------------------------------------------------------------------------------------------------


@dataclass
class Listening:
    """What the listening section holds.

    Attributes:
        available: Whether any clip was made.
        note: Why there are none, or what was left out (for the page and report.json).
        mime: MIME type of the clips.
        pairs: One dict per shown pair (group, pair_id, metadata, clip names, error), in order.
        blobs: pair_id -> clip name -> encoded bytes.
        pictures: pair_id -> spectrogram PNG.
        bytes_total: Bytes of all blobs and pictures.
    """

    available: bool = False
    note: str = ""
    mime: str = ""
    pairs: list[dict] = field(default_factory=list)
    blobs: dict[str, dict[str, bytes]] = field(default_factory=dict)
    pictures: dict[str, bytes] = field(default_factory=dict)
    bytes_total: int = 0

    def to_json(self) -> dict:
        return {"available": self.available, "note": self.note, "mime": self.mime, "bytes": self.bytes_total,
                "pairs": self.pairs}


def _row_index(df: pd.DataFrame | None) -> dict[str, dict]:
    if df is None or "pair_id" not in df:
        return {}
    first = df.drop_duplicates("pair_id", keep="first")
    return {str(r["pair_id"]): {k: _jsonable(v) for k, v in r.items()} for r in first.to_dict("records")}


def build_listening(stages: dict[str, StageOutputs], out_dir: str, config: Any, *,
                    progress: bool = False) -> Listening:
    """Clips and spectrograms of a sample of pairs per group, within `config.max_audio_mb`.

    Per-pair problems (a missing file, a failed decode) are recorded on the pair and the others go on.
    """
    from .plots import plot_pair_spectra

    lst = Listening()
    if config.clips_per_status == 0:
        lst.note = "Listening is off (--clips 0)."
        return lst
    sample = listening_sample(stages, config.clips_per_status, config.example_seed)
    if not sample:
        lst.note = ("verify has not run, so there are no pairs per status to listen to." if not stages["verify"].present
                    else "No pairs to listen to.")
        return lst
    codec = audio_codec()
    if codec is None:
        lst.note = "ffmpeg with an Opus or MP3 encoder is not installed, so there are no clips (apt-get install ffmpeg)."
        return lst
    lst.mime = codec[2]
    settings = stft_settings(stages)
    man = _row_index(stages["targets"].tables.get("manifest"))
    targets_dir = str(Path(out_dir) / TARGETS_DIR) if "://" not in str(out_dir) else None
    vconf = stages["verify"].report.get("config")
    audio_root = config.audio_root or (vconf.get("audio_root") if isinstance(vconf, dict) else None)
    budget = int(config.max_audio_mb * 2**20)
    left_out = not_found = 0
    from ..progress import Progress

    bar = Progress("report: clips", len(sample), unit="pair", enabled=progress)
    for group, row in bar.track(sample):
        pid = str(row["pair_id"])
        entry = {"group": group, "pair_id": pid, **{k: row.get(k) for k in (
            "status", "artist", "mix_title", "version_title", "version_kind", "genre", "ber", "ber_margin",
            "offset_s", "version_gain_db", "reason")}, "clips": [], "spectrogram": False, "error": None}
        n_clips = 4 if pid in man else 2
        estimate = int(n_clips * config.clip_s * config.clip_bitrate_kbps * 125 * 1.1) + 40_000
        if lst.bytes_total + estimate > budget:
            left_out += 1
            continue
        try:
            pa = pair_audio(row, man.get(pid), targets_dir, settings, config.clip_s, audio_root)
            blobs = encode_pair(pa, config.clip_bitrate_kbps, codec)
        except PairminerError as exc:
            entry["error"] = str(exc)
            not_found += "file not found" in str(exc)
            lst.pairs.append(entry)
            log.warning("report: no clips for %s: %s", pid, exc)
            continue
        png = plot_pair_spectra(pa.spectra, pa.sr_hz, pa.hop, pa.start_s, pa.from_targets)
        size = sum(map(len, blobs.values())) + len(png)
        if lst.bytes_total + size > budget:  # the estimate above was low: the bound still holds
            left_out += 1
            continue
        entry.update(clips=list(blobs), spectrogram=True, clip_start_s=pa.start_s, clip_s=config.clip_s,
                     align_offset_s=pa.offset_s, align_gain_db=pa.gain_db, from_targets=pa.from_targets,
                     notes=pa.notes)
        lst.blobs[pid] = blobs
        lst.pictures[pid] = png
        lst.bytes_total += size
        lst.pairs.append(entry)
    lst.available = bool(lst.blobs)
    notes = []
    if not lst.available and not_found and not_found == len(lst.pairs):
        notes.append("The audio files named in verified.parquet are not on this machine (a catalog-only run, or "
                     "the audio moved; --audio-root points elsewhere), so there are no clips. The rest of the "
                     "report does not need them.")
    if left_out:
        notes.append(f"{left_out} pair(s) left out to keep the embedded audio under max_audio_mb="
                     f"{config.max_audio_mb:g} MiB (raise it, or lower --clips / --clip-s).")
    lst.note = " ".join(notes)
    return lst
