"""Audio decoding and resampling shared by the audio stages (the decoders themselves: `decoders.py`).

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AudioError
from .decoders import (  # noqa: F401 - SOUNDFILE_EXTS, FFMPEG_FORMATS, _UNKNOWN_FRAMES, run_confined: re-exported
    SOUNDFILE_EXTS, FFMPEG_FORMATS, DECODE_TIMEOUT_S, MAX_URL_BYTES, _CAP_MARGIN_S, _UNKNOWN_FRAMES,
    run_confined, probe_duration_s, _decode_soundfile, _decode_soundfile_rates, _Fallback, _decode_ffmpeg,
    _decode_audioread)

log = logging.getLogger(__name__)


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
