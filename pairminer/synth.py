"""Seeded synthetic songs for tests, benchmarks and the demo data: no third-party audio.

A song is a mix of two stems at 44.1 kHz by default:

* ``accompaniment``: chords (additive pads or stabs with random voicings), a bass line following the
  chord roots, and drums (kick, snare, hi-hats with fresh noise per hit and humanised velocities);
* ``vocals``: a voice-like melody: phrases of legato notes with portamento, vibrato that fades in
  after each onset, slow pitch drift, a harmonic source shaped by vowel formants (F1-F3, changing
  per note) and short breath/consonant noise at phrase and note onsets.

Everything is vectorised numpy (harmonics by the Chebyshev recurrence rather than one `sin` each);
the tonal parts are synthesised at half the rate and upsampled with soxr. A 20 s song takes well
under a second; a 3.5 min song a few seconds at most.

Example::

    stems = make_song(seed=3, duration_s=12.0)
    write_audio("mix.flac", stems.mix, stems.sr_hz)
    write_audio("inst.flac", shift_and_gain(stems.accompaniment, stems.sr_hz, 0.25, -3.0), stems.sr_hz)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Peak of the mix after normalisation (leaves headroom for a +1 dB gain change without clipping).
MIX_PEAK = 0.89

# Diatonic triads of a major scale, as semitone offsets from the tonic (I ii iii IV V vi).
_TRIADS = {
    1: (0, 4, 7), 2: (2, 5, 9), 3: (4, 7, 11), 4: (5, 9, 12), 5: (7, 11, 14), 6: (9, 12, 16),
}
_PROGRESSIONS = ((1, 5, 6, 4), (6, 4, 1, 5), (1, 6, 4, 5), (1, 4, 5, 4), (2, 5, 1, 6), (4, 1, 5, 6))
_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
# Vowel formants (F1, F2, F3) in Hz and bandwidths, a rough average voice.
_VOWELS = np.array([
    [800, 1200, 2500],   # a
    [400, 2000, 2600],   # e
    [300, 2300, 3000],   # i
    [500, 900, 2450],    # o
    [350, 800, 2300],    # u
], dtype=np.float64)
_FORMANT_BW_HZ = np.array([90.0, 120.0, 170.0])
_FORMANT_GAIN = np.array([1.0, 0.55, 0.3])


@dataclass(frozen=True)
class Stems:
    """A synthetic song.

    Attributes:
        vocals: mono float32, shape (samples,).
        accompaniment: mono float32, shape (samples,), same length as `vocals`.
        sr_hz: sample rate of both stems.
        tempo_bpm: tempo in beats per minute.
    """

    vocals: np.ndarray
    accompaniment: np.ndarray
    sr_hz: int
    tempo_bpm: float

    @property
    def mix(self) -> np.ndarray:
        """vocals + accompaniment, float32, peak about `MIX_PEAK` (0.89)."""
        return (self.vocals + self.accompaniment).astype(np.float32)

    @property
    def duration_s(self) -> float:
        return len(self.vocals) / self.sr_hz


def _midi_hz(m: np.ndarray | float) -> np.ndarray | float:
    return 440.0 * 2.0 ** ((np.asarray(m, dtype=np.float64) - 69.0) / 12.0)


def _phase(f_hz: np.ndarray, sr_hz: int, phase0: float = 0.0) -> np.ndarray:
    """Running phase (radians, wrapped) of an instantaneous-frequency track."""
    ph = np.cumsum(f_hz / sr_hz, dtype=np.float64)
    return (2 * np.pi * (ph - np.floor(ph)) + phase0).astype(np.float32)


def _harmonics(theta: np.ndarray, amps: np.ndarray | list, hop: int | None = None) -> np.ndarray:
    """sum_k amps[k-1] * sin(k * theta) by the Chebyshev recurrence (one sin and one cos in all).

    `amps` is a list of scalars, or an array (K, n_ctrl) of control-rate amplitudes, each held
    over `hop` samples.
    """
    s_prev = np.zeros_like(theta)
    s_cur = np.sin(theta)
    two_c = 2.0 * np.cos(theta)
    out = np.zeros_like(theta)
    idx = None if hop is None else np.minimum(np.arange(len(theta)) // hop, np.shape(amps)[1] - 1)
    for k in range(len(amps)):
        a = amps[k]
        if idx is not None:
            out += a[idx].astype(np.float32) * s_cur
        elif a:
            out += np.float32(a) * s_cur
        s_prev, s_cur = s_cur, two_c * s_cur - s_prev
    return out


def _note_env(n: int, sr_hz: int, attack_s: float, decay_s: float, release_s: float) -> np.ndarray:
    t = np.arange(n, dtype=np.float32) / sr_hz
    env = np.minimum(t / attack_s, 1.0) * np.exp(-t / decay_s)
    rel = max(1, min(n, int(release_s * sr_hz)))
    env[-rel:] *= np.linspace(1.0, 0.0, rel, dtype=np.float32)
    return env


def _chords_and_bass(rng: np.random.Generator, n: int, sr: int, beat_n: float, bars: int, tonic: int):
    """Chord pad/stabs and bass, at rate `sr`. Returns (chords, bass, per-bar chord roots in midi)."""
    prog_a = _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]
    prog_b = _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]
    form = [prog_a, prog_a, prog_b, prog_a]
    degrees = [form[(b // 4) % 4][b % 4] for b in range(bars)]
    bar_n = 4 * beat_n
    stabs = rng.random() < 0.5
    rolloff = rng.uniform(0.8, 1.6)
    chord_amps = [1.0 / k**rolloff for k in range(1, 7)]
    chords = np.zeros(n, np.float32)
    n_voices = 4
    voice_f = np.zeros((n_voices, n))
    roots = []
    for b, deg in enumerate(degrees):
        s, e = int(b * bar_n), min(n, int((b + 1) * bar_n))
        if s >= n:
            break
        triad = np.array(_TRIADS[deg]) + tonic + 12
        inv = rng.integers(3)
        triad = np.sort(np.where(np.arange(3) < inv, triad + 12, triad))
        notes = np.append(triad, triad[0] + 12)
        voice_f[:, s:e] = _midi_hz(notes)[:, None]
        roots.append(tonic + _TRIADS[deg][0] - 12)
    env = np.zeros(n, np.float32)
    hits = [(int(i * beat_n), int(beat_n * (0.9 if stabs else 3.9))) for i in range(0, int(n / beat_n) + 1,
                                                                                      1 if stabs else 4)]
    for s, length in hits:
        if s >= n:
            break
        ln = min(length, n - s)
        env[s:s + ln] = _note_env(ln, sr, 0.01 if stabs else 0.08, 0.4 if stabs else 3.0, 0.05) * rng.uniform(0.8, 1.0)
    for v in range(n_voices):
        chords += _harmonics(_phase(voice_f[v], sr, rng.uniform(0, 6.28)), chord_amps)
    chords *= env * 0.12

    # Bass: chord root on each beat, sometimes the fifth or octave on the off-beats.
    eighth = beat_n / 2
    n_notes = int(np.ceil(n / eighth))
    bass_f = np.zeros(n)
    bass_env = np.zeros(n, np.float32)
    pattern = rng.random(8) < 0.5
    for i in range(n_notes):
        s = int(i * eighth)
        e = min(n, int((i + 1) * eighth))
        bar = min(int(s // bar_n), len(roots) - 1)
        on_beat = i % 2 == 0
        if not on_beat and not pattern[i % 8]:
            bass_f[s:e] = bass_f[s - 1] if s else 0.0
            continue
        note = roots[bar] + (0 if on_beat else int(rng.choice([7, 12, 0])))
        bass_f[s:e] = _midi_hz(note)
        bass_env[s:e] = _note_env(e - s, sr, 0.005, 0.35, 0.02) * rng.uniform(0.85, 1.0)
    bass = _harmonics(_phase(bass_f, sr), [1.0, 0.5, 0.3, 0.18, 0.1, 0.05]) * bass_env * 0.35
    return chords, bass, roots


def _drums(rng: np.random.Generator, n: int, sr: int, beat_n: float) -> np.ndarray:
    """Kick on 1 and 3 (plus random extras), snare on 2 and 4, eighth-note hi-hats; fresh noise per hit."""
    from scipy.signal import butter, sosfilt

    out = np.zeros(n, np.float32)
    t = np.arange(int(0.35 * sr), dtype=np.float32) / sr
    kick = np.sin(2 * np.pi * np.cumsum(45 + 110 * np.exp(-t / 0.025)) / sr) * np.exp(-t / 0.12)
    ts = t[: int(0.25 * sr)]
    snare_tone = np.sin(2 * np.pi * 185 * ts) * np.exp(-ts / 0.05)
    snare_env = np.exp(-ts / 0.07)
    hat_len = int(0.08 * sr)
    hat_env = np.exp(-t[:hat_len] / rng.uniform(0.015, 0.035))
    noise = rng.standard_normal(n + sr).astype(np.float32)
    hp = sosfilt(butter(2, min(7000, 0.45 * sr), "highpass", fs=sr, output="sos"), noise).astype(np.float32)
    bp = sosfilt(butter(2, [1500, min(6000, 0.45 * sr)], "bandpass", fs=sr, output="sos"), noise).astype(np.float32)
    n_beats = int(np.ceil(n / beat_n))
    extra_kick = rng.random(8) < 0.3

    def add(s: int, sample: np.ndarray, gain: float) -> None:
        if 0 <= s < n:
            ln = min(len(sample), n - s)
            out[s:s + ln] += gain * sample[:ln]

    for b in range(n_beats):
        s = int(b * beat_n + rng.normal(0, 0.002) * sr)
        vel = rng.uniform(0.8, 1.0)
        if b % 2 == 0:
            add(s, kick, 0.8 * vel)
        else:
            ln = min(len(ts), n - max(s, 0))
            if ln > 0 and s >= 0:
                add(s, snare_tone + 1.2 * bp[s:s + len(ts)] * snare_env, 0.35 * vel)
        if extra_kick[b % 8]:
            add(int((b + 0.5) * beat_n), kick, 0.55 * vel)
        for h in (0.0, 0.5):
            hs = int((b + h) * beat_n + rng.normal(0, 0.002) * sr)
            if 0 <= hs < n:
                add(hs, hp[hs:hs + hat_len] * hat_env, rng.uniform(0.12, 0.22) * (1.0 if h == 0 else 0.7))
    return out


def _vocals(rng: np.random.Generator, n: int, sr: int, beat_n: float, bars: int, tonic: int,
            intro_bars: int) -> np.ndarray:
    """A sung melody at rate `sr`: phrases of 3 bars with a bar of rest, legato notes in the scale."""
    from scipy.signal import lfilter

    bar_n = 4 * beat_n
    target = np.full(n, np.nan)
    vowel = np.zeros(n, np.int64)
    gate = np.zeros(n, np.float32)
    onsets = []
    degree = int(rng.integers(0, 5))
    voice_base = tonic + 12 if tonic < 50 else tonic
    for phrase_start in range(intro_bars, bars, 4):
        pos = phrase_start * 4.0
        end = min(phrase_start + 3, bars) * 4.0
        first = True
        while pos < end:
            length = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
            length = min(length, end - pos)
            degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3]), 0, 7))
            midi = voice_base + 12 * (degree // 7) + _MAJOR[degree % 7]  # D3..C#5 overall
            s, e = int(pos * beat_n), min(n, int((pos + length) * beat_n))
            if s >= n:
                break
            target[s:e] = midi
            vowel[s:e] = rng.integers(len(_VOWELS))
            gate[s:e] = 1.0
            onsets.append((s, first))
            first = False
            pos += length
    if not onsets:
        return np.zeros(n, np.float32)
    # Between phrases hold the last pitch (the gate is closed), so portamento starts from it.
    filled = target.copy()
    valid = ~np.isnan(filled)
    idx = np.where(valid, np.arange(n), 0)
    np.maximum.accumulate(idx, out=idx)
    filled = np.where(valid, filled, filled[idx])
    filled[np.isnan(filled)] = voice_base
    # Portamento: one-pole glide (~25 ms) on the pitch in semitones.
    a = np.exp(-1.0 / (0.025 * sr))
    pitch = lfilter([1 - a], [1, -a], filled, zi=[filled[0] * a])[0]
    # Vibrato fades in ~0.2 s after each note onset; slow random drift of a few cents.
    since_onset = np.zeros(n)
    starts = np.zeros(n, bool)
    starts[[s for s, _ in onsets]] = True
    last = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    since_onset = (np.arange(n) - last) / sr
    depth = 0.45 * np.clip((since_onset - 0.15) / 0.3, 0.0, 1.0)
    rate_hz = rng.uniform(5.0, 6.2)
    drift = lfilter([0.002], [1, -0.998], rng.standard_normal(n) * 2.0)
    pitch = pitch + depth * np.sin(2 * np.pi * rate_hz * np.arange(n) / sr) + drift * 0.1
    f0 = _midi_hz(pitch)

    # Harmonic amplitudes at control rate from the formant envelope of the current vowel.
    hop = 16
    ctrl = np.arange(0, n, hop)
    f0_c = f0[ctrl]
    fmt = _VOWELS[vowel[ctrl]]  # (n_ctrl, 3)
    b = np.exp(-1.0 / (0.03 * sr / hop))
    fmt = lfilter([1 - b], [1, -b], fmt, axis=0, zi=fmt[:1] * b)[0]  # smooth vowel transitions
    n_harm = int(min(40, np.floor(0.45 * sr / f0.min())))
    k = np.arange(1, n_harm + 1)[:, None]
    fk = k * f0_c[None, :]  # (K, n_ctrl)
    resp = np.zeros_like(fk)
    for i in range(3):
        resp += _FORMANT_GAIN[i] / (1.0 + ((fk - fmt[None, :, i]) / (_FORMANT_BW_HZ[i] / 2)) ** 2)
    amps = (0.04 + resp) / k**0.7
    amps[fk > 0.45 * sr] = 0.0
    voiced = _harmonics(_phase(f0, sr), amps.astype(np.float32), hop=hop)

    # Amplitude: note gate smoothed (attack ~30 ms, release ~60 ms) with a gentle per-note swell.
    g = lfilter([1 - np.exp(-1 / (0.03 * sr))], [1, -np.exp(-1 / (0.03 * sr))], gate).astype(np.float32)
    swell = (0.85 + 0.15 * np.sin(np.pi * np.clip(since_onset / 0.8, 0, 1))).astype(np.float32)
    y = voiced * g * swell
    # Breath and consonant noise at onsets: a short band-limited burst.
    from scipy.signal import butter, sosfilt

    burst_len = int(0.04 * sr)
    noise = rng.standard_normal(n).astype(np.float32)
    noise = sosfilt(butter(2, [2000, min(0.45 * sr, 7000)], "bandpass", fs=sr, output="sos"), noise).astype(np.float32)
    burst_env = np.exp(-np.arange(burst_len) / (0.012 * sr)).astype(np.float32)
    for s, phrase_first in onsets:
        if rng.random() < (0.9 if phrase_first else 0.35):
            ln = min(burst_len, n - s)
            y[s:s + ln] += 0.15 * noise[s:s + ln] * burst_env[:ln]
    return y


def make_song(seed: int, duration_s: float = 20.0, sr_hz: int = 44100, tempo_bpm: float | None = None, *,
              tonic_midi: int | None = None, vocal_db: float | None = None) -> Stems:
    """Generate a seeded song as vocals + accompaniment stems.

    Args:
        seed: the same seed gives the same song, sample for sample.
        duration_s: length of the song in seconds.
        sr_hz: output sample rate (44100 by default).
        tempo_bpm: tempo; None draws one from 80-140 bpm.
        tonic_midi: key (midi note of the tonic, 45-56); None draws one. Same tempo and key make the
            hardest "other song" decoys.
        vocal_db: vocal RMS relative to the accompaniment's, dB (0 = the voice as loud as the band);
            None draws 0 to +3 dB (vocal-forward pop).

    Returns:
        Stems with mono float32 `vocals` and `accompaniment` of shape (round(duration_s * sr_hz),),
        scaled so that the mix peaks at about 0.89.
    """
    import soxr

    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    rng = np.random.default_rng(seed)
    tempo = float(tempo_bpm) if tempo_bpm is not None else float(rng.uniform(80, 140))
    n = int(round(duration_s * sr_hz))
    # Tonal parts at half the rate (harmonics stay far below its Nyquist), then upsampled.
    sr_int = sr_hz // 2 if sr_hz >= 32000 else sr_hz
    n_int = int(np.ceil(n * sr_int / sr_hz)) + 16
    beat_int = 60.0 / tempo * sr_int
    bars = int(np.ceil(n_int / (4 * beat_int)))
    tonic = int(rng.integers(45, 57))  # A2..G#3
    if tonic_midi is not None:
        tonic = int(tonic_midi)
    intro_bars = 1 if duration_s < 30 else 2
    rng_acc, rng_voc, rng_drm = (np.random.default_rng([seed, i]) for i in (1, 2, 3))
    chords, bass, _ = _chords_and_bass(rng_acc, n_int, sr_int, beat_int, bars, tonic)
    voc = _vocals(rng_voc, n_int, sr_int, beat_int, bars, tonic, intro_bars)
    tonal = chords + bass
    if sr_int != sr_hz:
        tonal = soxr.resample(tonal, sr_int, sr_hz, quality="LQ")
        voc = soxr.resample(voc, sr_int, sr_hz, quality="LQ")
    tonal, voc = _fit(tonal, n), _fit(voc, n)
    drums = _drums(rng_drm, n, sr_hz, 60.0 / tempo * sr_hz)
    acc = tonal + drums
    # Vocals sit about 0-3 dB above the accompaniment by RMS, as in a pop mix.
    acc_rms = float(np.sqrt(np.mean(acc**2))) or 1.0
    voc_rms = float(np.sqrt(np.mean(voc**2))) or 1.0
    level_db = rng.uniform(0.0, 3.0) if vocal_db is None else float(vocal_db)
    voc = voc * (acc_rms / voc_rms * 10 ** (level_db / 20))
    peak = float(np.max(np.abs(acc + voc))) or 1.0
    scale = MIX_PEAK / peak
    return Stems(vocals=(voc * scale).astype(np.float32), accompaniment=(acc * scale).astype(np.float32),
                 sr_hz=sr_hz, tempo_bpm=tempo)


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y, np.float32)
    return y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))


def shift_and_gain(y: np.ndarray, sr_hz: int, offset_s: float, gain_db: float) -> np.ndarray:
    """Delay (or advance) `y` by `offset_s` and scale it by `gain_db`, keeping its length.

    Args:
        y: mono signal, shape (samples,).
        sr_hz: its sample rate.
        offset_s: positive: the content starts later (zeros are padded at the start, the end is cut);
            negative: it starts earlier (the start is cut, zeros padded at the end). Rounded to a sample.
        gain_db: gain in dB (negative attenuates).

    Returns:
        float32 array of the same shape as `y`.
    """
    y = np.asarray(y, np.float32)
    shift = int(round(offset_s * sr_hz))
    out = np.zeros_like(y)
    if shift >= 0:
        if shift < len(y):
            out[shift:] = y[: len(y) - shift]
    elif -shift < len(y):
        out[: len(y) + shift] = y[-shift:]
    return (out * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def write_audio(path: str | os.PathLike, y: np.ndarray, sr_hz: int, stereo: bool = False) -> None:
    """Write mono `y` (float, shape (samples,)) as 16-bit FLAC or WAV (by extension) with soundfile.

    With `stereo=True` the right channel is a slightly decorrelated copy (a 0.3 ms echo at -20 dB),
    so the two channels differ but their mean is still essentially `y`. Samples are clipped to [-1, 1].
    """
    import soundfile as sf

    y = np.clip(np.asarray(y, np.float32), -1.0, 1.0)
    if stereo:
        d = max(1, int(round(0.0003 * sr_hz)))
        right = y.copy()
        right[d:] = 0.9 * y[d:] + 0.1 * y[:-d]
        y = np.stack([y, right], axis=1)
    path = Path(path)
    fmt = {".flac": "FLAC", ".wav": "WAV"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: write_audio writes .flac or .wav; use one of those extensions")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr_hz, format=fmt, subtype="PCM_16")
