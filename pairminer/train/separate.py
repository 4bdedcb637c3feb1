"""Separating audio files with trained U-Nets: `separate_file` (one input) and `separate_files` (a batch,
with its report). The array and signal API (`Separator`, `separate_signal`, ...) lives in
`train.separator` and is importable from here as before.

Long inputs are processed in segments of `segment_s` seconds overlapping by `overlap_s`, crossfaded
linearly; a libsndfile input is read and the outputs written segment by segment, so memory stays
bounded by the segment length whatever the file's length.

soundfile is imported lazily: this module imports with torch and numpy alone.
"""

from __future__ import annotations

import os

import logging
import math
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import AudioError, ConfigError, InputError, OutputError, PairminerError
from .separator import _resample  # noqa: F401 (imported from here by benchmarks/bench_train.py)
from .separator import (DEFAULT_EXTEND, EXTEND_RULES, SOURCES, Separator, check_compatible, input_stft, istft,
                        map_mask, read_run_config, run_stft, separate_array, separate_mono_band_limited,
                        separate_signal, stft)

__all__ = ["DEFAULT_EXTEND", "DEFAULT_MAX_DURATION_S", "EXTEND_RULES", "MAX_IN_MEMORY_S", "REPORT_NAME", "SOURCES",
           "Separator", "check_compatible", "input_stft", "istft", "map_mask", "read_run_config", "run_stft",
           "separate_array", "separate_file", "separate_files", "separate_mono_band_limited", "separate_signal",
           "stft"]

log = logging.getLogger(__name__)

REPORT_NAME = "separate-report.json"
DEFAULT_MAX_DURATION_S = 6 * 3600.0
MAX_IN_MEMORY_S = 1800.0  # formats libsndfile cannot stream are decoded whole, so they get a lower cap


class _Reader:
    """Blocks of an input file: streamed from libsndfile, or decoded whole (other formats, capped)."""

    def __init__(self, path: str, max_duration_s: float) -> None:
        import soundfile as sf

        self.path = path
        self._f = None
        p = Path(path)
        if not p.is_file():
            raise AudioError(f"{path}: file not found" if not p.exists() else f"{path}: not a file")
        if p.stat().st_size == 0:
            raise AudioError(f"{path}: zero-byte file")
        from ..audio import _UNKNOWN_FRAMES

        try:
            self._f = sf.SoundFile(path)
            if not 0 <= self._f.frames < _UNKNOWN_FRAMES:  # a streamed file: the header has no length
                self.close()
                raise ValueError("the header does not say how long the file is")
        except Exception:  # not a libsndfile format (or no length): decode the mono signal whole, with a cap
            from ..audio import load_audio

            probe, info = load_audio(path, 8000, max_seconds=1.0, check_silence=False)
            cap = min(max_duration_s, MAX_IN_MEMORY_S)
            y, info = load_audio(path, info.source_sr_hz, max_seconds=cap + 1.0, check_silence=False)
            if len(y) > cap * info.source_sr_hz:
                raise AudioError(f"{path}: longer than {cap:.0f} s, the cap for formats decoded whole; convert it "
                                 "to FLAC or WAV (streamed) or raise --max-duration-s") from None
            self.sr_hz, self.channels, self.frames = info.source_sr_hz, 1, len(y)
            self._y = y[:, None]
            self.note = "decoded to mono (not a libsndfile format)"
            return
        self.sr_hz, self.channels, self.frames = int(self._f.samplerate), int(self._f.channels), int(self._f.frames)
        self.note = ""
        if self.frames > max_duration_s * self.sr_hz:  # from the header, before decoding
            self.close()
            raise AudioError(f"{path}: {self.frames / self.sr_hz:.0f} s long (from its header), over the cap of "
                             f"{max_duration_s:.0f} s; raise --max-duration-s to separate it")
        if self.frames <= 0:
            self.close()
            raise AudioError(f"{path}: no audio frames (empty or zero-length file)")

    def read(self, start: int, n: int) -> np.ndarray:
        if self._f is None:
            block = self._y[start:start + n]
        else:
            self._f.seek(start)
            block = self._f.read(n, dtype="float32", always_2d=True)
        if not np.isfinite(block).all():
            raise AudioError(f"{self.path}: holds NaN or infinite samples (near {start / self.sr_hz:.1f} s); "
                             "re-export it with finite samples (a float WAV with values out of range?)")
        return block

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def _segments(n: int, seg: int, overlap: int):
    """(start, length) of overlapping segments covering [0, n)."""
    start = 0
    while True:
        length = min(seg, n - start)
        yield start, length
        if start + length >= n:
            return
        start += length - overlap


def separate_file(path: str, separators: list[Separator], outs: dict[str, Path], *, mono: bool = False,
                  extend: str = DEFAULT_EXTEND, batch_size: int = 8, segment_s: float = 60.0, overlap_s: float = 2.0,
                  max_duration_s: float = DEFAULT_MAX_DURATION_S) -> dict:
    """Separate one file into `outs` ({"vocals": path, "instrumental": path}), segment by segment.

    Returns:
        The track's report row (duration, rate, channels, timings). Raises AudioError (a per-track
        reason) when the input cannot be read, is over the length cap, or holds non-finite samples.
    """
    import soundfile as sf

    from ..storage import atomic_path

    t0 = time.perf_counter()
    reader = _Reader(path, max_duration_s)
    sr, n = reader.sr_hz, reader.frames
    out_ch = 1 if mono else reader.channels
    seg = max(int(segment_s * sr), 4 * int(overlap_s * sr) + 1)
    overlap = int(overlap_s * sr)
    sep_s = 0.0
    try:
        with atomic_path(outs["vocals"], suffix=".wav") as tv, atomic_path(outs["instrumental"], suffix=".wav") as ti:
            files = {s: sf.SoundFile(t, "w", samplerate=sr, channels=out_ch, format="WAV", subtype="FLOAT")
                     for s, t in (("vocals", tv), ("instrumental", ti))}
            try:
                tail = None
                for start, length in _segments(n, seg, overlap):
                    block = reader.read(start, length)
                    t1 = time.perf_counter()
                    est = (separate_mono_band_limited(block, sr, separators, batch_size=batch_size) if mono else
                           separate_signal(block, sr, separators, extend=extend, batch_size=batch_size))
                    sep_s += time.perf_counter() - t1
                    for s in SOURCES:  # the output itself, not only the weights: a NaN can come from anywhere
                        if not np.isfinite(est[s]).all():
                            runs = ", ".join(sp.run_dir for sp in separators)
                            raise InputError(
                                f"{path}: the model output holds NaN or infinite samples (segment at "
                                f"{start / sr:.1f} s, {s}); the checkpoint in {runs} is broken (e.g. a negative "
                                "BatchNorm variance or overflowing weights): retrain, or use another checkpoint")
                    if tail is not None:
                        o = min(len(tail["vocals"]), length)
                        w = np.linspace(0.0, 1.0, o, dtype=np.float32)[:, None]
                        for s in SOURCES:
                            est[s][:o] = tail[s][:o] * (1 - w) + est[s][:o] * w
                    last = start + length >= n
                    keep = length if last else length - overlap
                    for s in SOURCES:
                        files[s].write(est[s][:keep])
                    tail = None if last else {s: est[s][keep:] for s in SOURCES}
            finally:
                for f in files.values():
                    f.close()
    except sf.LibsndfileError as exc:
        raise OutputError(f"cannot write {outs['vocals'].parent}: {exc}; free disk space or choose another -o") from None
    finally:
        reader.close()
    dur = n / sr
    total = time.perf_counter() - t0
    return {"input": path, "track": track_name(path), "duration_s": round(dur, 3), "sr_hz": sr, "samples": n,
            "channels": out_ch, "input_channels": reader.channels,
            "outputs": {s: str(p) for s, p in outs.items()}, "separate_s": round(sep_s, 4),
            "total_s": round(total, 4), "realtime_factor": round(dur / max(sep_s, 1e-9), 2),
            "realtime_factor_total": round(dur / max(total, 1e-9), 2), **({"note": reader.note} if reader.note else {})}


def track_name(path: str) -> str:
    """The output folder name of an input: its file stem, made safe as one path component (``..``,
    ``.``, an empty or hidden stem, separators and control characters never reach the file system)."""
    import re

    stem = Path(path).stem
    safe = re.sub(r"[\x00-\x1f\x7f/\\]", "_", stem).strip()
    if safe in ("", ".", "..") or safe.startswith("."):
        safe = "_" + safe
    return safe


def confined_folder(out_dir: str | os.PathLike, name: str) -> Path:
    """OUT/name, checked to stay inside OUT once resolved (a symlink planted in OUT cannot redirect it).

    Raises:
        OutputError: the folder would lie outside OUT.
    """
    root = Path(out_dir).resolve()
    folder = Path(out_dir) / name
    real = folder.resolve()
    if real.parent != root:
        raise OutputError(f"{name}: refused, its output folder {folder} resolves to {real}, outside -o {root}")
    return folder


def separate_files(audio_paths: list[str], run_dirs: list[str], out_dir: str, *, device: str = "auto",
                   batch_size: int = 8, overwrite: bool = False, progress: bool = True, mono: bool = False,
                   extend: str = DEFAULT_EXTEND, segment_s: float = 60.0,
                   max_duration_s: float = DEFAULT_MAX_DURATION_S) -> dict:
    """Separate each audio file into OUT/<track>/vocals.wav and instrumental.wav.

    Full band and all channels by default (float WAV at the input's rate, channels and length);
    `mono=True` writes the band-limited mono output of earlier versions. A file that cannot be
    separated is recorded in ``failures`` with its reason and the batch goes on
    (inputs = written + skipped_existing + failed).

    Returns:
        The report written to OUT/separate-report.json (tracks, failures with reasons, realtime factors).
    """
    from ..runinfo import versions
    from ..storage import ensure_dir, write_json

    if extend not in EXTEND_RULES:
        raise ConfigError(f"--extend {extend!r}: choose one of {', '.join(EXTEND_RULES)}")
    if not (math.isfinite(max_duration_s) and max_duration_s > 0):
        raise ConfigError(f"--max-duration-s {max_duration_s}: give a positive number of seconds")
    if not (math.isfinite(segment_s) and segment_s >= 10):
        raise ConfigError(f"--segment-s {segment_s}: give at least 10 seconds")
    seps = [Separator.from_run(r, device=device) for r in run_dirs]
    model_sr, _, _ = check_compatible(seps)
    stems = [track_name(p) for p in audio_paths]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ConfigError(f"several inputs would write OUT/{dupes[0]}/; rename them or separate them in separate runs")
    ensure_dir(out_dir)
    tracks, failures, skipped = [], [], []
    items = audio_paths
    if progress:
        try:
            from tqdm.auto import tqdm

            items = tqdm(audio_paths, unit="file", desc="separate")
        except ImportError:
            pass
    for path, stem in zip(items, stems):
        try:
            folder = confined_folder(out_dir, stem)
        except OutputError as exc:
            failures.append({"input": path, "reason": str(exc)})
            log.warning("%s", exc)
            continue
        outs = {s: folder / f"{s}.wav" for s in SOURCES}
        if not overwrite and all(p.exists() for p in outs.values()):
            skipped.append({"input": path, "reason": "outputs exist (use --overwrite to redo)"})
            continue
        try:
            tracks.append(separate_file(path, seps, outs, mono=mono, extend=extend, batch_size=batch_size,
                                        segment_s=segment_s, max_duration_s=max_duration_s))
        except (AudioError, InputError) as exc:
            failures.append({"input": path, "reason": str(exc)})
            log.warning("%s", exc)
        except OutputError:
            raise
        except PairminerError as exc:
            failures.append({"input": path, "reason": str(exc)})
            log.warning("%s", exc)
    audio_s = sum(t["duration_s"] for t in tracks)
    sep_s = sum(t["separate_s"] for t in tracks)
    report = {
        "stage": "separate", "pairminer_version": __version__, "versions": versions(),
        "runs": [{"run_dir": s.run_dir, "source": s.source} for s in seps],
        "device": str(seps[0].device), "model_sr_hz": model_sr,
        "output": {"mode": "mono band-limited" if mono else "full-band, input channels",
                   "extend": None if mono else extend, "segment_s": segment_s, "max_duration_s": max_duration_s},
        "counts": {"inputs": len(audio_paths), "written": len(tracks), "skipped_existing": len(skipped),
                   "failed": len(failures)},
        "audio_s": round(audio_s, 3), "separate_s": round(sep_s, 4),
        "realtime_factor": round(audio_s / sep_s, 2) if sep_s > 0 else None,
        "tracks": tracks, "failures": failures, "skipped": skipped,
    }
    write_json(Path(out_dir) / REPORT_NAME, report, schema="separate-report")
    return report
