"""Seeded (mix, version) pairs with their TRUE stems, planting the faults real deliveries have.

Built on `pairminer.synth.make_song` (mono vocals and accompaniment), made stereo: the voice is panned
and gets its own short stereo reverb, the accompaniment's mid/high band gets different short delays
per channel (the bass stays centred). Songs last 32 s by default with vocal-free passages (a
two-bar intro, a bar of rest after every three-bar phrase).

Faults, each alone (`FAULTS`) and together (``combo``): an offset, a gain, a fractional lag (through
48 kHz with a lag counted in 48 kHz samples), inverted polarity, 20-100 ppm clock drift, a separate EQ
(causal RBJ biquads: low shelf, bell, high shelf), a separate limiter (a stereo-linked look-ahead peak
limiter with a bus compressor, run on vocals + accompaniment for the mix and on the accompaniment
alone for the version, so the mix's gain depends on the voice), both sides lossy (ffmpeg libmp3lame or
AAC at 192-320 kbit/s), another fade or tail, and a trimmed acapella. Bad cases (`BAD`): a different
mix (a re-performed take: a slow random time warp of a few ms, another EQ and stereo image), a mono
version of a stereo mix, a 48 kHz version, a 6-channel version, a clipped version, a version shorter or
longer than the mix.

The true stems are the sources as heard in the mix: ``mix = vocals + accompaniment`` before any codec
(a limiter's gain, applied to the sum, is applied to both stems).

    pair = make_pair("drift", seed=1, index=0)
    stems = subtract_pair(pair.mix, conform(pair.version, pair.version_sr, pair.version.shape[1], pair.sr, 2),
                          pair.sr, pair.kind, coarse_offset_s=pair.coarse_offset_s)
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

import numpy as np

from .synth import make_song
from .synth_cases import fade

FAULTS = ("same_master", "fractional", "polarity", "drift", "eq", "limiter", "lossy", "fade", "tail", "acapella",
          "combo")
BAD = ("different_mix", "mono", "sr48", "ch6", "clipped", "shorter", "longer")
_COMBO_POOL = ("fractional", "polarity", "drift", "eq", "limiter", "lossy", "fade")


@dataclass
class StemPair:
    """One generated pair.

    Attributes:
        name: fault category (a FAULTS or BAD entry).
        mix: (samples, 2) float32 at `sr`.
        version: (samples, channels) float32 at `version_sr` (channels 1, 2 or 6).
        kind: "instrumental" or "acapella".
        vocals / accompaniment: true stems on the mix's timeline, (samples, 2) float32.
        sr / version_sr: rates.
        lag_samples: true lag at mix sample 0 (version[n + d] sounds with mix[n]), in version samples at `sr`.
        coarse_offset_s: what a fingerprint would report (the lag rounded to ~10 ms).
        drift_ppm: planted drift (positive: the version runs slow).
        polarity: -1 when the version is inverted.
        expect: "waveform", "spectral" or "error" (what the pair should lead to).
        notes: what was done.
    """

    name: str
    mix: np.ndarray
    version: np.ndarray
    kind: str
    vocals: np.ndarray
    accompaniment: np.ndarray
    sr: int
    version_sr: int
    lag_samples: float = 0.0
    coarse_offset_s: float = 0.0
    drift_ppm: float = 0.0
    polarity: int = 1
    expect: str = "waveform"
    notes: list[str] = field(default_factory=list)


def _delay(x: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([np.zeros(n, np.float32), x[: len(x) - n]]) if n > 0 else x


def stereo_song(seed: int, duration_s: float, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(vocals, accompaniment), each (samples, 2) float32: a `make_song` song spread over two channels."""
    from scipy.signal import butter, fftconvolve, sosfilt

    s = make_song(seed, duration_s, sr_hz=sr, vocal_db=float(rng.uniform(-6, 2)))
    pan = rng.uniform(-0.35, 0.35)
    th = (pan + 1) * np.pi / 4
    voc = np.stack([s.vocals * np.cos(th), s.vocals * np.sin(th)], axis=1) * np.sqrt(2)
    ir_n = int(0.35 * sr)
    t = np.arange(ir_n) / sr
    for c in range(2):
        ir = rng.standard_normal(ir_n) * np.exp(-t / 0.08)
        ir *= 10 ** (-14 / 20) / np.sqrt(np.sum(ir ** 2))
        voc[:, c] += fftconvolve(s.vocals, ir)[: len(s.vocals)]
    hp = sosfilt(butter(2, 300.0, "highpass", fs=sr, output="sos"), s.accompaniment).astype(np.float32)
    lo = s.accompaniment - hp
    acc = np.empty((len(lo), 2), np.float32)
    for c in range(2):
        d = int(rng.uniform(0.004, 0.021) * sr)
        acc[:, c] = lo + 0.8 * hp + 0.45 * _delay(hp, d) * (1 if c == 0 else -1) ** rng.integers(2)
    peak = float(np.max(np.abs(voc + acc))) or 1.0
    return (voc * (0.89 / peak)).astype(np.float32), (acc * (0.89 / peak)).astype(np.float32)


def biquad_eq(x: np.ndarray, sr: int, low_db: float, bell_db: float, bell_hz: float, high_db: float) -> np.ndarray:
    """Causal (minimum-phase) RBJ-cookbook EQ: low shelf 150 Hz, bell (Q 1), high shelf 8 kHz; x (samples, ch)."""
    from scipy.signal import sosfilt

    def shelf(f0: float, gain_db: float, high: bool) -> np.ndarray:
        a = 10 ** (gain_db / 40)
        w = 2 * np.pi * f0 / sr
        al = np.sin(w) / 2 * np.sqrt(2)
        c, sq = np.cos(w), 2 * np.sqrt(a) * al
        s = -1 if high else 1
        b = [a * ((a + 1) - s * (a - 1) * c + sq), s * 2 * a * ((a - 1) - s * (a + 1) * c), a * ((a + 1) - s * (a - 1) * c - sq)]
        d = [(a + 1) + s * (a - 1) * c + sq, -s * 2 * ((a - 1) + s * (a + 1) * c), (a + 1) + s * (a - 1) * c - sq]
        return np.array(b + d) / d[0]

    def bell(f0: float, gain_db: float, q: float = 1.0) -> np.ndarray:
        a = 10 ** (gain_db / 40)
        w = 2 * np.pi * f0 / sr
        al = np.sin(w) / (2 * q)
        b = [1 + al * a, -2 * np.cos(w), 1 - al * a]
        d = [1 + al / a, -2 * np.cos(w), 1 - al / a]
        return np.array(b + d) / d[0]

    sos = np.stack([shelf(150.0, low_db, False), bell(bell_hz, bell_db), shelf(8000.0, high_db, True)])
    return sosfilt(sos, x, axis=0).astype(np.float32)


def limiter_gain(x: np.ndarray, sr: int, ceiling: float, release_s: float = 0.12, lookahead_s: float = 0.005,
                 comp_ratio: float = 2.0, comp_thresh_db: float = -18.0) -> np.ndarray:
    """Gain track (samples,) of a stereo-linked bus compressor + look-ahead peak limiter.

    Compressor: RMS detector (50 ms), `comp_ratio` above `comp_thresh_db` (dB re full scale), gain
    smoothed over ~80 ms. Limiter: the gain reduction needed to keep ``|x|`` under `ceiling` is held over
    the look-ahead, released linearly in dB (6 dB per `release_s`), and ramped in over the look-ahead by
    a moving average, so the ceiling holds at every peak.
    """
    from scipy.ndimage import maximum_filter1d, uniform_filter1d
    from scipy.signal import lfilter

    mono_pow = np.mean(x.astype(np.float64) ** 2, axis=1)
    a = np.exp(-1 / (0.05 * sr))
    rms_db = 10 * np.log10(lfilter([1 - a], [1, -a], mono_pow) + 1e-12)
    comp_gr = np.maximum(0.0, rms_db - comp_thresh_db) * (1 - 1 / comp_ratio)
    b = np.exp(-1 / (0.08 * sr))
    comp_gr = lfilter([1 - b], [1, -b], comp_gr)
    g_comp = 10 ** (-comp_gr / 20)
    peak = np.max(np.abs(x), axis=1) * g_comp
    need = np.maximum(0.0, 20 * np.log10(np.maximum(peak, 1e-12) / ceiling))
    la = max(1, int(lookahead_s * sr))
    held = maximum_filter1d(need, size=la, origin=-(la // 2))  # max over [n, n + la)
    step = 6.0 / (release_s * sr)
    k = np.arange(len(held)) * step
    released = np.maximum.accumulate(held + k) - k
    smooth = uniform_filter1d(released, size=la, origin=(la - 1) // 2)  # mean over (n - la, n]
    gr = np.maximum(smooth, held * 0)  # dB of reduction >= 0
    return (g_comp * 10 ** (-gr / 20)).astype(np.float32)


def lossy(x: np.ndarray, sr: int, codec: str, kbps: int) -> np.ndarray:
    """Encode and decode through ffmpeg (libmp3lame or aac), the codec delay removed (x: (samples, ch))."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg is needed for the lossy cases")
    ch = x.shape[1]
    enc = {"mp3": ["-c:a", "libmp3lame", "-f", "mp3"], "aac": ["-c:a", "aac", "-f", "adts"]}[codec]
    pcm = np.clip(x, -1, 1).astype("<f4").tobytes()
    coded = subprocess.run([exe, "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(sr), "-ac", str(ch), "-i", "pipe:",
                            *enc, "-b:a", f"{kbps}k", "pipe:"], input=pcm, capture_output=True, check=True).stdout
    out = subprocess.run([exe, "-nostdin", "-v", "error", "-i", "pipe:", "-f", "f32le", "-ar", str(sr), "-ac", str(ch),
                          "pipe:"], input=coded, capture_output=True, check=True).stdout
    y = np.frombuffer(out, "<f4").reshape(-1, ch)
    # Codec delay (priming samples): find it by cross-correlation and take it out.
    ref, dec = x[: 4 * sr].mean(axis=1), y[: 4 * sr + 4096].mean(axis=1)
    from scipy.signal import correlate

    cc = correlate(dec[: len(ref) + 4096], ref, mode="valid", method="fft")
    d = int(np.argmax(cc))
    y = y[d:d + len(x)]
    return np.pad(y, ((0, len(x) - len(y)), (0, 0))).astype(np.float32)


def _resample(x: np.ndarray, a: float, b: float) -> np.ndarray:
    import soxr

    return soxr.resample(x, a, b, quality="VHQ").astype(np.float32)


def make_pair(name: str, seed: int, index: int, *, duration_s: float = 32.0, sr: int = 44100) -> StemPair:
    """Generate one pair of category `name` (a FAULTS or BAD entry); (seed, name, index) fixes everything.

    Args:
        name: category.
        seed: seed family (1: calibration, 2: held-out report).
        index: running number within the category.
        duration_s: mix length (s), at least 30 s recommended.
        sr: mix rate.

    Returns:
        StemPair.
    """
    cats = FAULTS + BAD
    rng = np.random.default_rng([seed, cats.index(name), index, 7])
    faults = {name}
    if name == "combo":
        k = int(rng.integers(3, 5))
        faults = set(rng.choice(_COMBO_POOL, size=k, replace=False).tolist())
    voc, acc = stereo_song(int(rng.integers(1 << 30)), duration_s + 12.0, sr, rng)
    n_mix = int(duration_s * sr)
    notes: list[str] = sorted(faults)
    mix = voc + acc
    ver = acc.copy() if name != "acapella" else voc.copy()
    kind = "acapella" if name == "acapella" else "instrumental"
    expect = "waveform"
    if "limiter" in faults:
        ceiling = float(np.max(np.abs(mix))) * 10 ** (-rng.uniform(4, 8) / 20)
        rel = float(rng.uniform(0.06, 0.25))
        g_mix = limiter_gain(mix, sr, ceiling, rel)
        voc, acc = voc * g_mix[:, None], acc * g_mix[:, None]
        mix = voc + acc
        makeup = float(np.max(np.abs(mix)) / max(np.max(np.abs(ver)), 1e-9)) * 10 ** (rng.uniform(0, 2) / 20)
        ver = ver * makeup
        ver = ver * limiter_gain(ver, sr, ceiling * 10 ** (rng.uniform(-0.5, 0.5) / 20), rel * rng.uniform(0.7, 1.4))[:, None]
        notes.append(f"limiter ceiling {20 * np.log10(ceiling):.1f} dBFS, release {rel * 1e3:.0f} ms")
    # The mix's own edit: a fade-out at the end of the song.
    mix_fade = float(rng.uniform(1.5, 4.0))
    env = fade(np.ones(n_mix, np.float32), sr, 0.0, mix_fade)[:, None]
    voc, acc = voc[:n_mix] * env, acc[:n_mix] * env
    mix = voc + acc
    n_ver = n_mix
    ver_env = env
    if "fade" in faults:
        early = float(rng.uniform(1.0, 4.0))
        n_ver = n_mix - int(early * sr)
        ver_env = fade(np.ones(n_ver, np.float32), sr, float(rng.uniform(0.5, 3.0)), float(rng.uniform(4.0, 8.0)))[:, None]
        notes.append(f"version fades differently, ends {early:.1f} s early")
    elif name == "tail":
        d = float(rng.uniform(1.0, 5.0)) * (1 if rng.random() < 0.5 else -1)
        n_ver = n_mix + int(d * sr)
        ver_env = fade(np.ones(n_ver, np.float32), sr, 0.0, float(rng.uniform(1.5, 4.0)))[:, None]
        notes.append(f"tail {d:+.1f} s")
    elif name == "shorter":
        n_ver = n_mix - int(rng.uniform(8.0, 14.0) * sr)
        ver_env = np.ones((n_ver, 1), np.float32)
    elif name == "longer":
        n_ver = n_mix + int(rng.uniform(4.0, 9.0) * sr)
        ver_env = fade(np.ones(n_ver, np.float32), sr, 0.0, 3.0)[:, None]
    ver = ver[:n_ver] * ver_env
    head = 0
    if name == "acapella":
        # Acapellas are cut where the voice rests: the quietest 0.4 s near a random point.
        e = np.convolve(np.mean(voc ** 2, axis=1)[::441], np.ones(40), "same")
        h0, t0 = int(rng.uniform(3.0, 10.0) * 100), int(rng.uniform(3.0, 8.0) * 100)
        head = (h0 - 150 + int(np.argmin(e[h0 - 150:h0 + 150]))) * 441
        te = n_ver // 441 - t0
        tail = n_ver - (te - 150 + int(np.argmin(e[te - 150:te + 150]))) * 441
        ver = ver[head:n_ver - tail] * fade(np.ones(n_ver - tail - head, np.float32), sr, 0.2, 0.5)[:, None]
        notes.append(f"acapella trimmed {head / sr:.1f} s head, {tail / sr:.1f} s tail")
    if name == "different_mix":
        # A re-performed take: a slow random time warp (a few ms), another EQ and stereo image.
        from scipy.ndimage import gaussian_filter1d

        walk = gaussian_filter1d(rng.standard_normal(len(ver) // 1000 + 2), 8)
        walk = walk / (np.max(np.abs(walk)) + 1e-12) * rng.uniform(0.002, 0.006) * sr
        pos = np.arange(len(ver)) + np.interp(np.arange(len(ver)), np.arange(len(walk)) * 1000, walk)
        ver = np.stack([np.interp(pos, np.arange(len(ver)), ver[:, c]) for c in range(2)], axis=1).astype(np.float32)
        ver = biquad_eq(ver[:, ::-1].copy(), sr, 2.0, -3.0, 2500.0, 2.5)
        expect = "spectral"
        notes.append("re-performed take (time warp, EQ, channels swapped)")
    if "eq" in faults:
        p = [float(rng.uniform(1, 3) * rng.choice([-1, 1])) for _ in range(3)]
        ver = biquad_eq(ver, sr, p[0], p[1], float(rng.uniform(800, 4000)), p[2])
        notes.append(f"EQ {p[0]:+.1f}/{p[1]:+.1f}/{p[2]:+.1f} dB")
    gain_db = float(rng.uniform(-3, 3))
    ver = ver * np.float32(10 ** (gain_db / 20))
    polarity = -1 if "polarity" in faults else 1
    ver = ver * polarity
    if name == "clipped":
        ver = np.clip(ver * 10 ** (rng.uniform(5, 9) / 20), -0.99, 0.99)
        notes.append("version driven into clipping")
    drift = 0.0
    if "drift" in faults:
        drift = float(rng.uniform(20, 100) * rng.choice([-1, 1]))
        ver = _resample(ver, sr, sr * (1 + drift * 1e-6))
    # Leading silence: the version starts `lead` samples later (or earlier when negative).
    lead = int(rng.uniform(-0.3, 1.5) * sr) if name != "acapella" else 0
    lag = float(lead - head * (1 + drift * 1e-6))
    if "fractional" in faults:
        up = _resample(ver, sr, 48000)
        d48 = int(rng.integers(1, 4000))
        up = np.concatenate([np.zeros((d48, up.shape[1]), np.float32), up])
        ver = _resample(up, 48000, sr)
        lag += d48 * sr / 48000
        notes.append(f"through 48 kHz, lag {d48} samples at 48 kHz")
    if lead >= 0:
        ver = np.concatenate([np.zeros((lead, ver.shape[1]), np.float32), ver])
    else:
        ver = ver[-lead:]
    version_sr = sr
    if "lossy" in faults:
        cm, cv = (str(rng.choice(["mp3", "aac"])) for _ in range(2))
        km, kv = (int(rng.choice([192, 256, 320])) for _ in range(2))
        mix = lossy(mix, sr, cm, km)
        ver = lossy(ver, sr, cv, kv)
        notes.append(f"mix {cm} {km}k, version {cv} {kv}k")
    if name == "mono":
        ver = ver.mean(axis=1, keepdims=True)
    elif name == "sr48":
        ver, version_sr = _resample(ver, sr, 48000), 48000
    elif name == "ch6":
        ver = np.concatenate([ver, ver.mean(axis=1, keepdims=True), np.zeros_like(ver[:, :1]), 0.3 * ver], axis=1)
        expect = "error"
    notes.append(f"gain {gain_db:+.1f} dB")
    coarse = round(lag / sr, 2) + float(rng.uniform(-0.01, 0.01))
    return StemPair(name=name, mix=mix.astype(np.float32), version=np.ascontiguousarray(ver, np.float32), kind=kind,
                    vocals=voc.astype(np.float32), accompaniment=acc.astype(np.float32), sr=sr, version_sr=version_sr,
                    lag_samples=lag, coarse_offset_s=coarse, drift_ppm=drift, polarity=polarity, expect=expect,
                    notes=notes)
