"""Audio decoding and resampling shared by the audio stages.

`load_audio` decodes a file once, downmixes to mono (mean of the channels) and resamples with soxr.
soundfile (libsndfile) reads WAV/FLAC/OGG/AIFF; anything else (MP3, M4A...) falls back to an ffmpeg
subprocess (argument list, never a shell), then audioread. Every failure is an AudioError whose
message names the file and the reason, for a stage's `reason` column.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AudioError

log = logging.getLogger(__name__)

SOUNDFILE_EXTS = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".w64", ".caf"}
# Decode in blocks so that a 2-hour file costs a block of memory, not the whole file at the source rate.
_BLOCK_FRAMES = 1 << 20


@dataclass(frozen=True)
class AudioInfo:
    path: str
    source_sr_hz: int
    channels: int
    duration_s: float  # of the decoded (and possibly truncated) signal


def resolve_audio_path(path: str, *, base_dir: str | None = None, audio_root: str | None = None) -> str:
    """Resolve a catalog `audio_path`.

    Relative paths resolve against `audio_root` when given, else against `base_dir` (the catalog's
    folder). URLs pass through. With `audio_root` set, a path that escapes the root (``../..`` or an
    absolute path elsewhere) raises AudioError, so a catalog cannot make pairminer read other files.
    """
    if not path:
        raise AudioError("no audio_path given for this track")
    if "://" in path:
        return path
    if audio_root is not None and "://" in audio_root:
        return audio_root.rstrip("/") + "/" + path.lstrip("/")
    if audio_root is not None:
        root = Path(audio_root).resolve()
        full = (root / path).resolve()
        if full != root and root not in full.parents:
            raise AudioError(f"{path}: refused, the path escapes --audio-root {root}")
        return str(full)
    p = Path(path)
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return str(p)


def _mono(block: np.ndarray) -> np.ndarray:
    """Mean of the channels of a (frames, channels) block.

    Column adds: `ndarray.mean(axis=1)` on a (N, 2) float32 block is ~20x slower (a strided
    reduction per frame), and it was the largest single cost of verify on stereo files.
    """
    if block.ndim == 1:
        return block
    if block.shape[1] == 1:
        return block[:, 0].copy()
    out = block[:, 0].copy()
    for c in range(1, block.shape[1]):
        out += block[:, c]
    out *= np.float32(1.0 / block.shape[1])
    return out


# Data sizes a WAV writer that cannot seek back (a pipe) leaves in the header: "length unknown".
_WAV_SIZE_PLACEHOLDERS = (0, 0xFFFFFFFF, 0x7FFFFFFF)


def _wav_data_shortfall(path: str) -> tuple[int, int, int] | None:
    """For a RIFF/WAVE file whose `data` chunk claims more bytes than the file holds, return
    (claimed bytes, bytes present, bytes per second); None otherwise (including unknown-length placeholders).

    libsndfile silently clamps such a file to the bytes present, which hides a truncated download.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            pos, bytes_per_s = 12, 0
            while pos + 8 <= size:
                f.seek(pos)
                cid, csize = struct.unpack("<4sI", f.read(8))
                if cid == b"fmt ":
                    fmt = f.read(16)
                    if len(fmt) == 16:
                        bytes_per_s = struct.unpack("<HHIIHH", fmt)[3]
                elif cid == b"data":
                    present = size - (pos + 8)
                    if csize in _WAV_SIZE_PLACEHOLDERS or csize <= present:
                        return None
                    return csize, present, bytes_per_s
                pos += 8 + csize + (csize & 1)
    except (OSError, struct.error):
        return None
    return None


def _decode_soundfile(path: str, sr_hz: int, max_seconds: float | None):
    import soundfile as sf
    import soxr

    try:
        f = sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        raise _Fallback(str(exc)) from exc
    with f:
        if f.format == "WAV" and (short := _wav_data_shortfall(path)) is not None:
            claimed, present, rate = short
            if rate > 0:
                raise AudioError(f"{path}: truncated, the WAV header promises {claimed / rate:.1f} s of audio but the "
                                 f"file holds {present / rate:.1f} s; re-fetch or re-encode it")
            raise AudioError(f"{path}: truncated, the WAV header promises {claimed} bytes of audio but the file holds "
                             f"{present}; re-fetch or re-encode it")
        src_sr, channels = f.samplerate, f.channels
        limit = f.frames if max_seconds is None else min(f.frames, int(max_seconds * src_sr))
        if limit <= 0:
            raise AudioError(f"{path}: no audio frames (empty or zero-length file)")
        resampler = soxr.ResampleStream(src_sr, sr_hz, 1, dtype="float32", quality="HQ") if src_sr != sr_hz else None
        parts, read = [], 0
        try:
            while read < limit:
                block = f.read(min(_BLOCK_FRAMES, limit - read), dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                read += len(block)
                mono = _mono(block)
                last = read >= limit
                parts.append(resampler.resample_chunk(mono, last=last) if resampler else mono)
        except sf.LibsndfileError as exc:
            # The header parsed (the file opened), so the stream stops short of what it promises.
            raise AudioError(f"{path}: truncated or corrupt, decoding fails after {read / src_sr:.1f} s of the "
                             f"{f.frames / src_sr:.1f} s its header promises ({exc})") from exc
        if resampler is not None and (not parts or read < limit):
            parts.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        if read < limit:
            raise AudioError(f"{path}: truncated, header promises {limit / src_sr:.1f} s but only {read / src_sr:.1f} s decode")
    return np.concatenate(parts) if parts else np.zeros(0, np.float32), src_sr, channels


class _Fallback(Exception):
    pass


def _decode_ffmpeg(path: str, sr_hz: int, max_seconds: float | None):
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise _Fallback("ffmpeg not installed")
    # "file:" stops ffmpeg from reading a leading dash or a colon in a file name as an option/protocol.
    src = path if "://" in path else "file:" + os.path.abspath(path)
    cmd = [exe, "-nostdin", "-hide_banner", "-v", "warning", "-i", src]
    if max_seconds is not None:
        cmd += ["-t", str(max_seconds)]
    cmd += ["-f", "f32le", "-ac", "1", "-ar", str(sr_hz), "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AudioError(f"{path}: ffmpeg cannot decode it, not audio or corrupt "
                         f"({err[-1] if err else 'exit ' + str(proc.returncode)})")
    warnings = proc.stderr.decode("utf-8", "replace")
    # An MP3 whose Xing/Info header counts more frames than the file holds: a truncated download.
    if "filesize and duration do not match" in warnings:
        raise AudioError(f"{path}: truncated, its header promises more audio than the file holds "
                         "(ffmpeg: filesize and duration do not match); re-fetch or re-encode it")
    if warnings.strip():
        log.debug("ffmpeg warnings for %s: %s", path, warnings.strip().splitlines()[-1])
    y = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    return y, sr_hz, 0


def load_audio(path: str, sr_hz: int, *, max_seconds: float | None = None, min_seconds: float = 0.0,
               check_silence: bool = True) -> tuple[np.ndarray, AudioInfo]:
    """Decode `path` to mono float32 at `sr_hz`.

    Args:
        path: local path (URLs are fetched with fsspec to a temporary file first).
        sr_hz: output sample rate.
        max_seconds: decode at most this much from the start (None: the whole file).
        min_seconds: raise AudioError if the decoded signal is shorter.
        check_silence: raise AudioError if the signal is digital silence.

    Returns:
        (y, info): y has shape (samples,), dtype float32, at `sr_hz`.
    """
    if "://" in path:
        return _load_url(path, sr_hz, max_seconds=max_seconds, min_seconds=min_seconds, check_silence=check_silence)
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{path}: file not found")
    if p.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{path}: zero-byte file")
    try:
        if p.suffix.lower() in SOUNDFILE_EXTS:
            y, src_sr, ch = _decode_soundfile(path, sr_hz, max_seconds)
        else:
            raise _Fallback("not a soundfile format")
    except _Fallback:
        try:
            y, src_sr, ch = _decode_ffmpeg(path, sr_hz, max_seconds)
        except _Fallback:
            y, src_sr, ch = _decode_audioread(path, sr_hz, max_seconds)
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path}: decoded samples contain NaN or infinity")
    dur = len(y) / sr_hz
    if dur < max(min_seconds, 1e-9):
        raise AudioError(f"{path}: too short ({dur:.2f} s, need at least {min_seconds:.2f} s)")
    if check_silence and float(np.max(np.abs(y))) < 1e-5:
        raise AudioError(f"{path}: silent (peak below -100 dBFS)")
    return y, AudioInfo(path=path, source_sr_hz=int(src_sr), channels=int(ch), duration_s=dur)


def _decode_audioread(path: str, sr_hz: int, max_seconds: float | None):
    try:
        import audioread
        import soxr

        with audioread.audio_open(path) as f:
            src_sr, ch = f.samplerate, f.channels
            buf = b"".join(f)
        y = np.frombuffer(buf, dtype="<i2").astype(np.float32) / 32768.0
        y = y.reshape(-1, ch).mean(axis=1) if ch > 1 else y
        if max_seconds is not None:
            y = y[: int(max_seconds * src_sr)]
        return (soxr.resample(y, src_sr, sr_hz).astype(np.float32) if src_sr != sr_hz else y), src_sr, ch
    except Exception as exc:
        raise AudioError(f"{Path(path).name}: not a decodable audio file ({type(exc).__name__}: {exc})") from exc


def _load_url(url: str, sr_hz: int, **kw) -> tuple[np.ndarray, AudioInfo]:
    import tempfile

    import fsspec

    suffix = Path(url.split("?")[0]).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        try:
            with fsspec.open(url, "rb") as src:
                shutil.copyfileobj(src, tmp)
        except (FileNotFoundError, OSError) as exc:
            raise AudioError(f"{url}: cannot fetch ({exc})") from exc
        tmp.flush()
        y, info = load_audio(tmp.name, sr_hz, **kw)
    return y, AudioInfo(url, info.source_sr_hz, info.channels, info.duration_s)
