"""Audio decoding and resampling shared by the audio stages.

(Over 500 lines: decoding, the confined ffmpeg fallback and header-based length caps form one contract.)

`load_audio` decodes a file once, downmixes to mono (mean of the channels) and resamples with soxr.
soundfile (libsndfile) reads WAV/FLAC/OGG/AIFF (and MP3 with libsndfile >= 1.1); anything else (M4A...)
or a file it cannot open falls back to an ffmpeg subprocess (argument list, never a shell), then audioread. Every failure is an AudioError whose
message names the file and the reason, for a stage's `reason` column.

Confinement (ffmpeg is a network-capable demuxer of everything): ffmpeg and ffprobe run with
``-protocol_whitelist file`` and a ``-format_whitelist`` of plain audio containers, so an HLS playlist
or a concat script (under any file name) cannot make them read other files or URLs; each child has a
wall-clock timeout and is killed when pairminer dies (``PR_SET_PDEATHSIG`` on Linux). With
``--audio-root`` set, URLs are refused unless they lie under a URL root, and ``file://`` URLs are
local paths confined like any other.

Length caps: `load_audio(max_duration_s=...)` reads the duration from the header (soundfile, or
ffprobe) and refuses an over-long file before decoding any of it (a small FLAC can hold hours of
silence). A header that cannot say (a FLAC written to a pipe, `ffmpeg -f flac pipe:1`, has "length
unknown") is decoded under a streamed cap instead: at most the cap plus a second is decoded, and a
file that reaches past the cap is refused.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import signal
import subprocess
import sys
from dataclasses import dataclass
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


@dataclass(frozen=True)
class AudioInfo:
    path: str
    source_sr_hz: int
    channels: int
    duration_s: float  # of the decoded (and possibly truncated) signal
    sr_hz: int = 0  # of the decoded signal (the source rate when the decode kept it)


def _file_url_path(path: str) -> str | None:
    """The local path of a ``file://`` URL (None for anything else)."""
    if not path.lower().startswith("file://"):
        return None
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(path)
    if parts.netloc not in ("", "localhost"):
        raise AudioError(f"{path}: file:// URLs with a host ({parts.netloc}) are not local files; give a local path")
    return unquote(parts.path)


def resolve_audio_path(path: str, *, base_dir: str | None = None, audio_root: str | None = None) -> str:
    """Resolve a catalog `audio_path`.

    Relative paths resolve against `audio_root` when given, else against `base_dir` (the catalog's
    folder). ``file://`` URLs are local paths. Other URLs pass through when no `audio_root` is set.
    With `audio_root` set, a path that escapes the root (``../..``, an absolute path elsewhere, a
    URL of another scheme or outside a URL root) raises AudioError, so a catalog cannot make
    pairminer read other files.
    """
    if not path:
        raise AudioError("no audio_path given for this track")
    local = _file_url_path(path)
    if local is not None:
        path = local
    root_local = _file_url_path(audio_root) if audio_root else None
    if root_local is not None:
        audio_root = root_local
    if "://" in path:
        if audio_root is None:
            return path
        if "://" not in audio_root:
            raise AudioError(f"{path}: refused, a URL cannot be confined to --audio-root {audio_root}; give paths "
                             "relative to the root, or drop --audio-root to allow URLs")
        root = audio_root.rstrip("/") + "/"
        if not path.startswith(root) or "/../" in path[len(root) - 1:] or path.endswith("/.."):
            raise AudioError(f"{path}: refused, the URL is not under --audio-root {audio_root}")
        return path
    if audio_root is not None and "://" in audio_root:
        rel = path.lstrip("/")
        if any(part == ".." for part in rel.split("/")):
            raise AudioError(f"{path}: refused, the path escapes --audio-root {audio_root}")
        return audio_root.rstrip("/") + "/" + rel
    if audio_root is not None:
        try:
            root = Path(audio_root).resolve()
            full = (root / path).resolve()
        except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before Python 3.13), ELOOP, EACCES
            raise AudioError(f"{path}: cannot resolve it under --audio-root {audio_root} "
                             f"({'a symlink loop' if 'loop' in str(exc).lower() else exc}); fix or remove the link"
                             ) from exc
        if full != root and root not in full.parents:
            raise AudioError(f"{path}: refused, the path escapes --audio-root {root}")
        return str(full)
    p = Path(path)
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    return str(p)


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


def load_audio(path: str, sr_hz: int | None, *, max_seconds: float | None = None, min_seconds: float = 0.0,
               check_silence: bool = True, max_duration_s: float | None = None,
               timeout_s: float = DECODE_TIMEOUT_S, mono: bool = True) -> tuple[np.ndarray, AudioInfo]:
    """Decode `path` to float32 at `sr_hz`, mono (the mean of the channels) unless `mono` is False.

    Args:
        path: local path (URLs are fetched with fsspec to a temporary file first).
        sr_hz: output sample rate; None keeps the file's own.
        max_seconds: decode at most this much from the start (None: the whole file).
        min_seconds: raise AudioError if the decoded signal is shorter.
        check_silence: raise AudioError if the signal is digital silence.
        max_duration_s: refuse (AudioError, before decoding) a file whose header says it is longer,
            unless `max_seconds` already bounds the decode below it.
        timeout_s: wall-clock limit of a decoder subprocess.
        mono: downmix; False keeps the channels.

    Returns:
        (y, info): y has shape (samples,) (mono) or (samples, channels), dtype float32, at `info.sr_hz`.
    """
    local = _file_url_path(path)
    if local is not None:
        path = local
    if "://" in path:
        return _load_url(path, sr_hz, max_seconds=max_seconds, min_seconds=min_seconds, check_silence=check_silence,
                         max_duration_s=max_duration_s, timeout_s=timeout_s, mono=mono)
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{path}: file not found")
    if p.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{path}: zero-byte file")
    cap_s = None  # a streamed cap: the header could not say how long the file is
    if max_duration_s is not None and (max_seconds is None or max_seconds > max_duration_s):
        dur = probe_duration_s(path)
        if dur is not None and dur > max_duration_s:
            raise AudioError(f"{path}: {dur / 3600:.2f} h long, over the length cap of {max_duration_s:g} s; "
                             "raise the stage's max_duration_s (or set max_seconds) to read it")
        if dur is None:
            cap_s = float(max_duration_s)
    decode_s = max_seconds
    if cap_s is not None:
        decode_s = cap_s + _CAP_MARGIN_S if max_seconds is None else min(max_seconds, cap_s + _CAP_MARGIN_S)
    try:
        if p.suffix.lower() in SOUNDFILE_EXTS:
            y, src_sr, ch = _decode_soundfile(path, sr_hz, decode_s, mono)
        else:
            raise _Fallback("not a soundfile format")
    except _Fallback:
        try:
            y, src_sr, ch = _decode_ffmpeg(path, sr_hz, decode_s, timeout_s, mono)
        except _Fallback:
            y, src_sr, ch = _decode_audioread(path, sr_hz, decode_s, mono)
    if cap_s is not None and len(y) > cap_s * (sr_hz or src_sr):
        raise AudioError(f"{path}: longer than the length cap of {cap_s:g} s (its header does not say how long it "
                         "is, so it was decoded up to the cap); raise the stage's max_duration_s (or set "
                         "max_seconds) to read it")
    return _finish(path, y, sr_hz or src_sr, min_seconds, check_silence, src_sr, ch)


@dataclass(frozen=True)
class DecodeRequest:
    """One consumer's view of a file for `load_audio_rates` (the keyword arguments of `load_audio`).

    `sr_hz` None keeps the file's rate; `mono` False keeps its channels ((samples, channels) arrays).
    """

    sr_hz: int | None
    max_seconds: float | None = None
    min_seconds: float = 0.0
    check_silence: bool = True
    max_duration_s: float | None = None
    mono: bool = True


def load_audio_rates(path: str, requests: list[DecodeRequest], *, timeout_s: float = DECODE_TIMEOUT_S
                     ) -> list[tuple[np.ndarray, AudioInfo] | AudioError]:
    """Decode `path` once for several consumers (e.g. verify at 11025 Hz and targets at 8192 Hz).

    Each result is what ``load_audio(path, r.sr_hz, ...)`` would return for request r, bit for bit,
    or the AudioError it would raise: the file is read and downmixed once, and resampled (soxr) once
    per requested rate. Formats that libsndfile cannot read go through one ffmpeg run per request.
    """
    if not requests:
        return []
    local = _file_url_path(path)
    if local is not None:
        path = local
    p = Path(path)

    def each(fn) -> list:
        out = []
        for r in requests:
            try:
                out.append(fn(r))
            except AudioError as exc:
                out.append(exc)
        return out

    if "://" in path or p.suffix.lower() not in SOUNDFILE_EXTS or not p.is_file() or p.stat().st_size == 0:
        return each(lambda r: load_audio(path, r.sr_hz, max_seconds=r.max_seconds, min_seconds=r.min_seconds,
                                         check_silence=r.check_silence, max_duration_s=r.max_duration_s,
                                         timeout_s=timeout_s, mono=r.mono))
    results: list = [None] * len(requests)
    need_probe = [r.max_duration_s is not None and (r.max_seconds is None or r.max_seconds > r.max_duration_s)
                  for r in requests]
    dur = probe_duration_s(path) if any(need_probe) else None
    live = []
    for k, r in enumerate(requests):
        if need_probe[k] and dur is not None and dur > r.max_duration_s:
            results[k] = AudioError(f"{path}: {dur / 3600:.2f} h long, over the length cap of {r.max_duration_s:g} "
                                    "s; raise the stage's max_duration_s (or set max_seconds) to read it")
        else:
            live.append(k)
    if not live:
        return results
    try:
        outs, src_sr, ch = _decode_soundfile_rates(
            path, [(requests[k].sr_hz, requests[k].max_seconds, requests[k].mono) for k in live])
    except _Fallback:
        for k in live:
            r = requests[k]
            try:
                # the length cap again: a header that could not say the length is decoded under it
                results[k] = load_audio(path, r.sr_hz, max_seconds=r.max_seconds, min_seconds=r.min_seconds,
                                        check_silence=r.check_silence, max_duration_s=r.max_duration_s,
                                        timeout_s=timeout_s, mono=r.mono)
            except AudioError as exc:
                results[k] = exc
        return results
    except AudioError as exc:
        for k in live:
            results[k] = exc
        return results
    for k, y in zip(live, outs):
        results[k] = y if isinstance(y, AudioError) else _checked(path, y, requests[k], src_sr, ch)
    return results


def _checked(path: str, y: np.ndarray, r: DecodeRequest, src_sr: int, ch: int):
    try:
        return _finish(path, y, r.sr_hz or src_sr, r.min_seconds, r.check_silence, src_sr, ch)
    except AudioError as exc:
        return exc


def _finish(path: str, y: np.ndarray, sr_hz: int, min_seconds: float, check_silence: bool, src_sr: int, ch: int
            ) -> tuple[np.ndarray, AudioInfo]:
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{path}: decoded samples contain NaN or infinity")
    dur = len(y) / sr_hz
    if dur < max(min_seconds, 1e-9):
        raise AudioError(f"{path}: too short ({dur:.2f} s, need at least {min_seconds:.2f} s)")
    if check_silence and float(np.max(np.abs(y))) < 1e-5:
        raise AudioError(f"{path}: silent (peak below -100 dBFS)")
    return y, AudioInfo(path=path, source_sr_hz=int(src_sr), channels=int(ch), duration_s=dur, sr_hz=int(sr_hz))


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


def _load_url(url: str, sr_hz: int, **kw) -> tuple[np.ndarray, AudioInfo]:
    import tempfile

    import fsspec

    suffix = Path(url.split("?")[0]).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        try:
            with fsspec.open(url, "rb") as src:
                got = 0
                while chunk := src.read(1 << 20):  # capped: `local:///dev/zero` must not fill the disk
                    got += len(chunk)
                    if got > MAX_URL_BYTES:
                        raise AudioError(f"{url}: over {MAX_URL_BYTES / 2**30:g} GiB, the download cap for audio URLs; "
                                         "it is not an audio file of a song (or raise pairminer.audio.MAX_URL_BYTES)")
                    tmp.write(chunk)
        except ImportError as exc:  # the scheme's fsspec backend (s3fs, gcsfs...) is not installed
            raise AudioError(f"{url}: cannot fetch, no fsspec backend for {url.split('://')[0]}:// is installed "
                             f"({exc}); install it, or give local paths") from exc
        except ValueError as exc:  # an unknown protocol
            raise AudioError(f"{url}: cannot fetch ({exc})") from exc
        except (FileNotFoundError, OSError) as exc:
            raise AudioError(f"{url}: cannot fetch ({exc})") from exc
        tmp.flush()
        y, info = load_audio(tmp.name, sr_hz, **kw)
    return y, AudioInfo(url, info.source_sr_hz, info.channels, info.duration_s, info.sr_hz)
