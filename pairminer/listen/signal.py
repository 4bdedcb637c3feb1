"""The audio side of a listening test: decoding, loudness (ITU-R BS.1770), the low anchor, encoding.

Loudness is pyloudnorm's when it is installed; otherwise pairminer's own BS.1770-4 measure below
(K-weighting, 400 ms blocks with 75% overlap, the -70 LUFS absolute and -10 LU relative gates), which
is the same algorithm. `LOUDNESS_METHOD` says which one a test used; the key records it.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np

from ..errors import AudioError

RATE = 48000  # every excerpt is resampled to this (Opus' own rate)


def loudness_method() -> str:
    try:
        import pyloudnorm  # noqa: F401
    except ImportError:
        return "BS.1770-4 (pairminer's numpy implementation: K-weighting, 400 ms blocks, -70 LUFS / -10 LU gates)"
    return "BS.1770-4 (pyloudnorm)"


def load(path: str, sr: int = RATE) -> np.ndarray:
    """Decode `path` to float32 (samples, channels) at `sr` (AudioError with the reason otherwise)."""
    from ..audio import load_audio

    y, _ = load_audio(path, sr, mono=False, check_silence=False)
    y = np.asarray(y, dtype=np.float32)
    return y[:, None] if y.ndim == 1 else y


def _k_weighting(sr: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two biquads of BS.1770's K-weighting at `sr` (pre-filter shelf, then the RLB high-pass),
    designed from their analogue prototypes as pyloudnorm does (exact at 48 kHz)."""
    out = []
    for kind, g_db, q, fc in (("high_shelf", 4.0, 1 / np.sqrt(2), 1500.0), ("high_pass", 0.0, 0.5, 38.0)):
        a_lin = 10 ** (g_db / 40)
        w0 = 2 * np.pi * fc / sr
        alpha = np.sin(w0) / (2 * q)
        cw = np.cos(w0)
        if kind == "high_shelf":
            sa = 2 * np.sqrt(a_lin) * alpha
            b = [a_lin * ((a_lin + 1) + (a_lin - 1) * cw + sa), -2 * a_lin * ((a_lin - 1) + (a_lin + 1) * cw),
                 a_lin * ((a_lin + 1) + (a_lin - 1) * cw - sa)]
            a = [(a_lin + 1) - (a_lin - 1) * cw + sa, 2 * ((a_lin - 1) - (a_lin + 1) * cw),
                 (a_lin + 1) - (a_lin - 1) * cw - sa]
        else:
            b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
            a = [1 + alpha, -2 * cw, 1 - alpha]
        out.append((np.array(b) / a[0], np.array(a) / a[0]))
    return out


def loudness_lufs(y: np.ndarray, sr: int = RATE) -> float:
    """Integrated loudness of (samples, channels) in LUFS; -inf for silence. Left/right weigh 1.0 each."""
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if len(y) < int(0.4 * sr):
        ms = float(np.mean(np.sum(y ** 2, axis=1))) if len(y) else 0.0
        return -0.691 + 10 * np.log10(ms) if ms > 0 else float("-inf")
    try:
        import pyloudnorm

        val = float(pyloudnorm.Meter(sr).integrated_loudness(y if y.shape[1] > 1 else y[:, 0]))
        return val
    except ImportError:
        pass
    from scipy.signal import lfilter

    z = y
    for b, a in _k_weighting(sr):
        z = lfilter(b, a, z, axis=0)
    block, step = int(0.4 * sr), int(0.1 * sr)
    starts = np.arange(0, len(z) - block + 1, step)
    power = np.cumsum(np.concatenate([np.zeros((1, z.shape[1])), z ** 2]), axis=0)
    ms = (power[starts + block] - power[starts]) / block            # (blocks, channels)
    blk = np.sum(ms, axis=1)
    with np.errstate(divide="ignore"):
        lk = -0.691 + 10 * np.log10(blk)
    keep = lk > -70.0
    if not keep.any():
        return float("-inf")
    rel = -0.691 + 10 * np.log10(np.mean(blk[keep])) - 10.0
    keep &= lk > rel
    return float(-0.691 + 10 * np.log10(np.mean(blk[keep])))


def lowpass(y: np.ndarray, hz: float, sr: int = RATE) -> np.ndarray:
    """The low anchor: an 8th-order Butterworth low-pass at `hz`, zero phase."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(8, hz, btype="low", fs=sr, output="sos")
    return sosfiltfilt(sos, y, axis=0).astype(np.float32)


def codec() -> tuple[str, str, str]:
    """(ffmpeg encoder, container, MIME type): Opus in Ogg, else MP3, else ("wav", "wav", "audio/wav")."""
    from ..report.clips import audio_codec

    return audio_codec() or ("wav", "wav", "audio/wav")


def encode(y: np.ndarray, codec_: tuple[str, str, str], bitrate_kbps: int, sr: int = RATE) -> bytes:
    """(samples, channels) float32 -> the file's bytes (ffmpeg for Opus/MP3, soundfile for WAV)."""
    encoder, fmt, _ = codec_
    y = np.ascontiguousarray(np.clip(y, -1.0, 1.0), dtype=np.float32)
    if encoder == "wav":
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, y, sr, format="WAV", subtype="PCM_16")
        return buf.getvalue()
    kbps = bitrate_kbps if encoder == "libopus" else min(320, 2 * bitrate_kbps)
    cmd = [shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-f", "f32le", "-ar", str(sr), "-ac", str(y.shape[1]),
           "-i", "-", "-c:a", encoder, "-b:a", f"{kbps}k", "-fflags", "+bitexact", "-flags:a", "+bitexact",
           "-f", fmt, "-"]  # bitexact: no random Ogg serial number, so a test is reproducible
    try:
        proc = subprocess.run(cmd, input=y.tobytes(), capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise AudioError(f"ffmpeg cannot encode an excerpt ({exc})") from exc
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AudioError(f"ffmpeg cannot encode an excerpt ({err[-1] if err else 'exit ' + str(proc.returncode)})")
    return proc.stdout
