"""The decoders behind `pairminer.audio`: soundfile (in process), a confined ffmpeg child, audioread.

Every function here decodes one file; `pairminer.audio` picks the decoder, applies the length caps
and checks the result. ffmpeg and ffprobe run with a protocol and format whitelist, a wall-clock
timeout, and die with pairminer (`run_confined`).
"""
from __future__ import annotations

import logging
import os
import shutil
import struct
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from .errors import AudioError

log = logging.getLogger(__name__)

SOUNDFILE_EXTS = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".w64", ".caf"}
# libsndfile >= 1.1 decodes MP3 (mpg123) in process: about twice as fast as an ffmpeg subprocess, and the
# header's frame count (Xing) still catches a truncated download. Older libsndfile: MP3 goes to ffmpeg.
try:  # pragma: no cover - depends on the installed libsndfile
    import soundfile as _sf

    if "MP3" in _sf.available_formats():
        SOUNDFILE_EXTS.add(".mp3")
    del _sf
except (ImportError, OSError):  # pragma: no cover
    pass
# Decode in blocks so that a 2-hour file costs a block of memory, not the whole file at the source rate.
_BLOCK_FRAMES = 1 << 20
# Demuxers ffmpeg may use: plain audio containers. Not hls, concat, image2, lavfi, tee, or devices.
FFMPEG_FORMATS = ("mp3", "mov", "aac", "ogg", "flac", "wav", "matroska", "asf", "aiff", "w64", "caf", "ac3", "eac3",
                  "dts", "ape", "wv", "tta", "au", "amr", "mpc", "mpc8", "oma")
_FFMPEG_CONFINE = ["-protocol_whitelist", "file", "-format_whitelist", ",".join(FFMPEG_FORMATS)]
# libsndfile's frame count for a stream whose header does not say its length (SF_COUNT_MAX).
_UNKNOWN_FRAMES = 1 << 62
# A decode under a streamed cap reads this much past the cap, to tell "longer than the cap" from "exactly it".
_CAP_MARGIN_S = 1.0
# Bytes an audio URL may download before pairminer gives up (a lossless 2-hour stereo track is ~1.5 GiB).
MAX_URL_BYTES = 4 << 30
# Wall-clock limit for one decode subprocess (a live playlist or a stuck pipe must not hang a stage).
DECODE_TIMEOUT_S = 600.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """preexec_fn: ask Linux to SIGKILL this child when its parent dies (no orphaned ffmpeg)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def run_confined(cmd: list[str], *, timeout_s: float = DECODE_TIMEOUT_S, what: str = "") -> subprocess.CompletedProcess:
    """Run a decoder child: no stdin, output captured, killed after `timeout_s` or when we die.

    Raises:
        AudioError: the child ran past `timeout_s` (it is killed and reaped first).
    """
    kw = {"preexec_fn": _die_with_parent} if sys.platform.startswith("linux") else {}
    try:
        return subprocess.run(cmd, capture_output=True, check=False, stdin=subprocess.DEVNULL, timeout=timeout_s, **kw)
    except subprocess.TimeoutExpired as exc:
        raise AudioError(f"{what}: decoding took longer than {timeout_s:g} s and was stopped (a live stream or "
                         "a stuck file?); check the file") from exc


def probe_duration_s(path: str) -> float | None:
    """Duration from the file's header, without decoding (soundfile, else ffprobe); None if unknown.

    Raises:
        AudioError: the file is missing.
    """
    if not os.path.exists(path):
        raise AudioError(f"{path}: file not found")
    if Path(path).suffix.lower() in SOUNDFILE_EXTS:
        try:
            import soundfile as sf

            info = sf.info(path)
            if 0 < info.frames < _UNKNOWN_FRAMES and info.samplerate > 0:
                return info.frames / info.samplerate
        except (RuntimeError, ValueError, OSError):
            pass
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    proc = run_confined([exe, "-v", "error", *_FFMPEG_CONFINE, "-show_entries", "format=duration", "-of",
                         "default=noprint_wrappers=1:nokey=1", "file:" + os.path.abspath(path)],
                        timeout_s=60.0, what=path)
    try:
        dur = float(proc.stdout.decode("ascii", "replace").strip().splitlines()[0])
    except (ValueError, IndexError):  # "N/A": the header does not say
        return None
    return dur if np.isfinite(dur) and dur > 0 else None


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


def _decode_soundfile(path: str, sr_hz: int | None, max_seconds: float | None, mono: bool = True):
    (y,), src_sr, channels = _decode_soundfile_rates(path, [(sr_hz, max_seconds, mono)])
    if isinstance(y, AudioError):
        raise y
    return y, src_sr, channels


def _decode_soundfile_rates(path: str, wants: list[tuple]):
    """One decode of `path`, resampled (soxr, streaming) to each (sr_hz, max_seconds[, mono]) of `wants`.

    `sr_hz` None keeps the source rate; `mono` (default True) downmixes, else the output keeps the
    file's channels, shaped (samples, channels). Each output gets the same blocks, in the same order,
    as a decode for it alone would feed its resampler, so each is bit-identical to a decode for it
    alone. Returns (outputs, source rate, channels) where an output is an array or the AudioError that
    a decode for it alone would raise; an AudioError raised here concerns every output.
    """
    import soundfile as sf
    import soxr

    try:
        f = sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        raise _Fallback(str(exc)) from exc
    with f:
        if not 0 <= f.frames < _UNKNOWN_FRAMES:
            # A stream whose header leaves the length open (a FLAC written to a pipe): libsndfile cannot
            # seek in it; ffmpeg decodes it under the caller's cap.
            raise _Fallback("the header does not say how long the file is")
        if f.format == "WAV" and (short := _wav_data_shortfall(path)) is not None:
            claimed, present, rate = short
            if rate > 0:
                raise AudioError(f"{path}: truncated, the WAV header promises {claimed / rate:.1f} s of audio but the "
                                 f"file holds {present / rate:.1f} s; re-fetch or re-encode it")
            raise AudioError(f"{path}: truncated, the WAV header promises {claimed} bytes of audio but the file holds "
                             f"{present}; re-fetch or re-encode it")
        src_sr, channels = f.samplerate, f.channels
        wants = [(src_sr if w[0] is None else w[0], w[1], w[2] if len(w) > 2 else True) for w in wants]
        limits = [f.frames if ms is None else min(f.frames, int(ms * src_sr)) for _, ms, _ in wants]
        limit = max(limits)
        if limit <= 0:
            raise AudioError(f"{path}: no audio frames (empty or zero-length file)")
        resamplers = [soxr.ResampleStream(src_sr, sr, 1 if mono else channels, dtype="float32", quality="HQ")
                      if src_sr != sr else None for sr, _, mono in wants]
        parts: list[list[np.ndarray]] = [[] for _ in wants]
        errors: list[AudioError | None] = [
            AudioError(f"{path}: no audio frames (empty or zero-length file)") if lim <= 0 else None for lim in limits]
        read = 0
        try:
            while read < limit:
                block = f.read(min(_BLOCK_FRAMES, limit - read), dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                before, read = read, read + len(block)
                mono = _mono(block) if any(w[2] for w in wants) else None
                for k, (lim, rs) in enumerate(zip(limits, resamplers)):
                    if before >= lim:
                        continue
                    sig = mono if wants[k][2] else block
                    piece = sig if read <= lim else sig[: lim - before]
                    parts[k].append(rs.resample_chunk(piece, last=read >= lim) if rs else piece)
        except sf.LibsndfileError as exc:
            # The header parsed (the file opened), so the stream stops short of what it promises.
            err = AudioError(f"{path}: truncated or corrupt, decoding fails after {read / src_sr:.1f} s of the "
                             f"{f.frames / src_sr:.1f} s its header promises ({exc})")
            err.__cause__ = exc
            errors = [e or (err if read < lim else None) for e, lim in zip(errors, limits)]
        for k, (lim, rs) in enumerate(zip(limits, resamplers)):
            if errors[k] is not None:
                continue
            if rs is not None and (not parts[k] or read < lim):
                empty = np.zeros(0 if wants[k][2] else (0, channels), np.float32)
                parts[k].append(rs.resample_chunk(empty, last=True))
            if read < lim:
                errors[k] = AudioError(f"{path}: truncated, header promises {lim / src_sr:.1f} s but only "
                                       f"{read / src_sr:.1f} s decode")
    outs = [e if e is not None else (np.concatenate(p) if p else
                                     np.zeros(0 if w[2] else (0, channels), np.float32))
            for e, p, w in zip(errors, parts, wants)]
    return outs, src_sr, channels


class _Fallback(Exception):
    pass


def _probe_stream(path: str) -> tuple[int, int]:
    """(sample rate, channels) of the first audio stream, from ffprobe; raises _Fallback if unknown."""
    exe = shutil.which("ffprobe")
    if exe is None:
        raise _Fallback("ffprobe not installed")
    proc = run_confined([exe, "-v", "error", *_FFMPEG_CONFINE, "-select_streams", "a:0", "-show_entries",
                         "stream=sample_rate,channels", "-of", "default=noprint_wrappers=1",
                         "file:" + os.path.abspath(path)], timeout_s=60.0, what=path)
    fields = dict(line.split("=", 1) for line in proc.stdout.decode("ascii", "replace").split() if "=" in line)
    try:
        return int(fields["sample_rate"]), int(fields["channels"])
    except (KeyError, ValueError) as exc:
        raise _Fallback(f"ffprobe finds no audio stream in {path}") from exc


def _decode_ffmpeg(path: str, sr_hz: int | None, max_seconds: float | None, timeout_s: float = DECODE_TIMEOUT_S,
                   mono: bool = True):
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise _Fallback("ffmpeg not installed")
    src_sr = channels = 0
    if sr_hz is None or not mono:
        src_sr, channels = _probe_stream(path)
        sr_hz = sr_hz or src_sr
    # "file:" stops ffmpeg from reading a leading dash or a colon in a file name as an option/protocol;
    # the whitelists stop a playlist or concat script from pulling in anything else.
    src = "file:" + os.path.abspath(path)
    cmd = [exe, "-nostdin", "-hide_banner", "-v", "warning", *_FFMPEG_CONFINE, "-i", src]
    if max_seconds is not None:
        cmd += ["-t", str(max_seconds)]
    cmd += ["-f", "f32le", "-ac", "1" if mono else str(channels), "-ar", str(sr_hz), "-"]
    proc = run_confined(cmd, timeout_s=timeout_s, what=path)
    if proc.returncode != 0:
        text = proc.stderr.decode("utf-8", "replace")
        if "not on whitelist" in text:
            import re

            fmt = re.search(r"\[(\w+) @", text)
            raise AudioError(f"{path}: refused, it is a {fmt.group(1) if fmt else 'playlist or script'} file (a playlist "
                             "or concat script that can point at other files or URLs), not plain audio; replace it "
                             "with the audio file itself")
        err = text.strip().splitlines()
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
    if not mono:
        y = y[: len(y) - len(y) % channels].reshape(-1, channels)
    return y, src_sr or sr_hz, channels



def _decode_audioread(path: str, sr_hz: int | None, max_seconds: float | None, mono: bool = True):
    try:
        import audioread
        import soxr

        with audioread.audio_open(path) as f:
            src_sr, ch = f.samplerate, f.channels
            want = None if max_seconds is None else int(max_seconds * src_sr) * ch * 2
            chunks, got = [], 0
            for chunk in f:  # stop at max_seconds: never the whole of an unbounded stream
                chunks.append(chunk)
                got += len(chunk)
                if want is not None and got >= want:
                    break
            buf = b"".join(chunks)
        y = np.frombuffer(buf, dtype="<i2").astype(np.float32) / 32768.0
        y = y.reshape(-1, ch)
        y = y.mean(axis=1) if mono else y
        if max_seconds is not None:
            y = y[: int(max_seconds * src_sr)]
        sr_hz = sr_hz or src_sr
        return (soxr.resample(y, src_sr, sr_hz).astype(np.float32) if src_sr != sr_hz else y), src_sr, ch
    except Exception as exc:
        raise AudioError(f"{Path(path).name}: not a decodable audio file ({type(exc).__name__}: {exc})") from exc
