"""Realistic verify cases: (mix, version) file pairs with a known right answer, as labels ship them.

Built on `pairminer.synth.make_song`. Every case writes a mix and a version file and returns a
`Case` with the expected status. The traps the real-music audit named are all planted:

* vocal level from 0 dB (the voice as loud as the band) down to -25 dB;
* lossy codecs: MP3 (libmp3lame) or AAC at 128-320 kbit/s through ffmpeg, on either side;
* mastering differences: gain +-3 dB, a peak limiter, a gentle low/high shelf EQ (+-2 dB);
* fade-ins and fade-outs that differ, tails 1-5 s longer or shorter, acapellas trimmed by tens of seconds;
* leading silence (offsets) up to the duration window;
* decoys: a copy of the mix (mastered and encoded again), another song at the same tempo and key
  (its mix, its instrumental, its acapella).

Seeds: `CALIBRATION_SEED` sets the thresholds (benchmarks/calibrate_verify.py), `HELDOUT_SEED` is
only ever used to report (tests/verify/test_verify_realistic.py); the rule never sees it while being tuned.

    cases = write_cases(tmp_path, seed=HELDOUT_SEED, per_case=1, duration_s=45.0)
    candidates = candidates_table(cases)   # a candidates.parquet-shaped DataFrame
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .synth import make_song

CALIBRATION_SEED = 1
HELDOUT_SEED = 2

# case name -> (version kind, expected status). Order matters for seeding: append, never reorder.
CASES: dict[str, tuple[str, str]] = {
    "instrumental": ("instrumental", "verified"),
    "loud_voice": ("instrumental", "verified"),
    "quiet_voice": ("instrumental", "verified"),
    "codec": ("instrumental", "verified"),
    "master": ("instrumental", "verified"),
    "fade": ("instrumental", "verified"),
    "tail": ("instrumental", "verified"),
    "offset": ("instrumental", "verified"),
    "acapella": ("acapella", "verified"),
    "copy": ("instrumental", "too_similar"),
    "other_song": ("instrumental", "too_different"),
    "other_instrumental": ("instrumental", "too_different"),
    "other_acapella": ("acapella", "too_different"),
}


@dataclass
class Case:
    """One generated pair.

    Attributes:
        name: case name (a key of CASES).
        index: running number within the case.
        mix_path / version_path: the written files.
        version_kind: instrumental or acapella.
        expected: the right status (verified, too_similar, too_different).
        offset_s: true offset (version time = mix time + offset_s); NaN for unrelated audio.
        vocal_db: vocal level of the mix relative to the band (dB).
        mix_s / version_s: durations of the written files.
        vocals: the true vocal stem on the mix's timeline at `sr_hz` (for target checks), or None.
        sr_hz: rate of `vocals`.
        notes: what was done to the version.
    """

    name: str
    index: int
    mix_path: str
    version_path: str
    version_kind: str
    expected: str
    offset_s: float
    vocal_db: float
    mix_s: float
    version_s: float
    vocals: np.ndarray | None = None
    sr_hz: int = 44100
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- audio effects

def fade(y: np.ndarray, sr_hz: int, in_s: float = 0.0, out_s: float = 0.0) -> np.ndarray:
    """Linear-in-dB-ish (squared-sine) fade-in and fade-out of the given lengths."""
    y = np.array(y, np.float32)
    for length_s, head in ((in_s, True), (out_s, False)):
        n = min(len(y), int(length_s * sr_hz))
        if n <= 1:
            continue
        ramp = np.sin(np.linspace(0, np.pi / 2, n, dtype=np.float32)) ** 2
        if head:
            y[:n] *= ramp
        else:
            y[-n:] *= ramp[::-1]
    return y


def shelf_eq(y: np.ndarray, sr_hz: int, low_db: float, high_db: float) -> np.ndarray:
    """Gentle tilt EQ: +low_db below ~200 Hz and +high_db above ~4 kHz (first-order splits, zero-phase)."""
    from scipy.signal import butter, sosfiltfilt

    lo = sosfiltfilt(butter(1, 200.0, "lowpass", fs=sr_hz, output="sos"), y)
    hi = sosfiltfilt(butter(1, 4000.0, "highpass", fs=sr_hz, output="sos"), y)
    out = y + (10 ** (low_db / 20) - 1) * lo + (10 ** (high_db / 20) - 1) * hi
    return out.astype(np.float32)


def limiter(y: np.ndarray, sr_hz: int, ceiling: float = 0.7, release_s: float = 0.08) -> np.ndarray:
    """A peak limiter: instant attack on a 5 ms look-around peak envelope, exponential release."""
    from scipy.ndimage import maximum_filter1d
    from scipy.signal import lfilter

    env = maximum_filter1d(np.abs(y), size=max(1, int(0.005 * sr_hz)))
    gain = np.minimum(1.0, ceiling / np.maximum(env, 1e-9))
    a = np.exp(-1.0 / (release_s * sr_hz))
    # Smooth the gain upward only (release); dips pass at once (attack), so the ceiling holds.
    smooth = 1.0 - lfilter([1 - a], [1, -a], 1.0 - gain)
    return (y * np.minimum(gain, np.maximum(smooth, gain))).astype(np.float32)


def master(y: np.ndarray, sr_hz: int, rng: np.random.Generator, *, strength: float = 1.0) -> tuple[np.ndarray, str]:
    """A different master: gain +-3 dB, a limiter (half the time), a gentle shelf EQ (+-2 dB)."""
    gain_db = float(rng.uniform(-3, 3)) * strength
    low, high = (float(rng.uniform(-2, 2)) * strength for _ in range(2))
    out = shelf_eq(y, sr_hz, low, high)
    limited = rng.random() < 0.5
    if limited:
        peak = float(np.max(np.abs(out))) or 1.0
        out = limiter(out, sr_hz, ceiling=0.8 * peak)
    out = out * np.float32(10 ** (gain_db / 20))
    peak = float(np.max(np.abs(out)))
    if peak > 0.99:  # keep it inside full scale; a louder master is still the same master
        out = out * np.float32(0.99 / peak)
    return out.astype(np.float32), f"master gain {gain_db:+.1f} dB, EQ {low:+.1f}/{high:+.1f} dB, limiter {limited}"


def write_lossy(path: str | os.PathLike, y: np.ndarray, sr_hz: int, codec: str, kbps: int) -> None:
    """Encode mono `y` with ffmpeg: codec "mp3" (libmp3lame) or "aac" (.m4a). Raises RuntimeError without ffmpeg."""
    import soundfile as sf

    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg is needed to write lossy test audio")
    enc = {"mp3": ["-c:a", "libmp3lame"], "aac": ["-c:a", "aac"]}[codec]
    with tempfile.TemporaryDirectory() as td:
        wav = os.path.join(td, "in.wav")
        sf.write(wav, np.clip(y, -1, 1), sr_hz, subtype="PCM_16")
        subprocess.run([exe, "-nostdin", "-hide_banner", "-v", "error", "-y", "-i", wav, *enc, "-b:a", f"{kbps}k",
                        str(path)], check=True, capture_output=True)


def _write(path: Path, y: np.ndarray, sr_hz: int, lossy: tuple[str, int] | None) -> str:
    import soundfile as sf

    if lossy is None:
        p = path.with_suffix(".flac")
        sf.write(str(p), np.clip(y, -1, 1), sr_hz, format="FLAC", subtype="PCM_16")
    else:
        p = path.with_suffix(".mp3" if lossy[0] == "mp3" else ".m4a")
        write_lossy(p, y, sr_hz, *lossy)
    return str(p)


def _pad_front(y: np.ndarray, n: int) -> np.ndarray:
    """n > 0: n samples of silence before y; n < 0: drop the first -n samples."""
    return np.concatenate([np.zeros(n, np.float32), y]) if n >= 0 else y[-n:]


# ----------------------------------------------------------------------------- cases

def make_case(name: str, seed: int, index: int, folder: str | os.PathLike, *, duration_s: float = 60.0,
              sr_hz: int = 44100, window_s: float = 10.0, acapella_window_s: float = 60.0,
              keep_vocals: bool = False) -> Case:
    """Write one case of kind `name` (see CASES) into `folder` and return it.

    Args:
        name: case name.
        seed: the seed family (CALIBRATION_SEED or HELDOUT_SEED); with `index` it fixes everything.
        index: running number within the case.
        folder: where the two files go.
        duration_s: length of the mix.
        window_s: largest duration difference of an instrumental case (offsets and tails stay below it).
        acapella_window_s: the same for acapellas (trims of tens of seconds).
        keep_vocals: also return the true vocal stem on the mix's timeline.
    """
    kind, expected = CASES[name]
    case_no = list(CASES).index(name)
    rng = np.random.default_rng([seed, case_no, index])
    song_seed = int(rng.integers(1 << 30))
    vocal_db = {"loud_voice": float(rng.uniform(-3, 0)), "quiet_voice": float(rng.uniform(-25, -12))}.get(
        name, float(rng.uniform(-10, -3)))
    tail_room_s = 6.0
    s = make_song(song_seed, duration_s + tail_room_s, sr_hz=sr_hz, vocal_db=vocal_db)
    n_mix = int(duration_s * sr_hz)
    acc, voc = s.accompaniment, s.vocals
    mix_fade_s = float(rng.uniform(1.5, 4.0))
    mix = fade((acc + voc)[:n_mix], sr_hz, 0.0, mix_fade_s)
    notes: list[str] = [f"vocals {vocal_db:+.1f} dB"]
    offset_s = 0.0
    lossy_mix: tuple[str, int] | None = None
    lossy_ver: tuple[str, int] | None = None
    if kind == "acapella":
        stem = voc
    else:
        stem = acc
    ver = fade(stem[:n_mix], sr_hz, 0.0, mix_fade_s)  # by default the same edit as the mix

    if name in ("other_song", "other_instrumental", "other_acapella"):
        # Another song at the same tempo and in the same key: the hardest unrelated audio.
        tonic = int(np.random.default_rng(song_seed).integers(45, 57))
        o = make_song(song_seed + 7919, duration_s + tail_room_s, sr_hz=sr_hz, tempo_bpm=s.tempo_bpm,
                      tonic_midi=tonic, vocal_db=float(rng.uniform(-10, 0)))
        src = {"other_song": o.accompaniment + o.vocals, "other_instrumental": o.accompaniment,
               "other_acapella": o.vocals}[name]
        n_ver = n_mix + int(rng.uniform(-0.9, 0.9) * sr_hz)
        ver = fade(src[:n_ver], sr_hz, 0.0, float(rng.uniform(1.5, 4.0)))
        offset_s = float("nan")
        notes.append("another song, same tempo and key")
        if rng.random() < 0.5:
            lossy_ver = (str(rng.choice(["mp3", "aac"])), int(rng.choice([128, 192, 320])))
    elif name == "copy":
        ver, note = master(mix, sr_hz, rng)
        notes.append("copy of the mix, " + note)
        lossy_ver = (str(rng.choice(["mp3", "aac"])), int(rng.choice([128, 192, 256, 320])))
        shift = int(rng.uniform(-0.8, 0.8) * sr_hz)
        ver = _pad_front(ver, shift)
        offset_s = shift / sr_hz
    elif name == "codec":
        lossy_ver = (str(rng.choice(["mp3", "aac"])), int(rng.choice([128, 160, 192, 256, 320])))
        if rng.random() < 0.5:
            lossy_mix = (str(rng.choice(["mp3", "aac"])), int(rng.choice([128, 192, 320])))
        notes.append(f"version {lossy_ver}, mix {lossy_mix}")
    elif name == "master":
        ver, note = master(ver, sr_hz, rng)
        notes.append(note)
    elif name == "fade":
        fin = float(rng.uniform(0.5, 3.0))
        fout = float(rng.uniform(4.0, 8.0))
        early_s = float(rng.uniform(1.0, 4.0))  # the version fades out earlier and ends sooner
        n_ver = n_mix - int(early_s * sr_hz)
        ver = fade(stem[:n_ver], sr_hz, fin, fout)
        notes.append(f"fade-in {fin:.1f} s, fade-out {fout:.1f} s ending {early_s:.1f} s earlier")
    elif name == "tail":
        d = float(rng.uniform(1.0, min(5.0, window_s - 0.5))) * (1 if rng.random() < 0.5 else -1)
        n_ver = n_mix + int(d * sr_hz)
        ver = fade(stem[:n_ver], sr_hz, 0.0, float(rng.uniform(1.5, 4.0)))
        notes.append(f"tail {d:+.1f} s")
    elif name == "offset":
        d = float(rng.uniform(0.3, window_s - 0.5)) * (1 if rng.random() < 0.6 else -0.3)
        shift = int(d * sr_hz)
        ver = _pad_front(ver, shift)
        offset_s = shift / sr_hz
        notes.append(f"leading silence {d:+.2f} s")
    elif name == "acapella":
        cut_head = float(rng.uniform(0, min(30.0, acapella_window_s / 2, duration_s / 4)))
        cut_tail = float(rng.uniform(5.0, min(30.0, acapella_window_s / 2, duration_s / 4)))
        a, b = int(cut_head * sr_hz), n_mix - int(cut_tail * sr_hz)
        ver = fade(voc[a:b], sr_hz, 0.2, 0.5)
        offset_s = -a / sr_hz
        notes.append(f"acapella trimmed {cut_head:.1f} s at the head, {cut_tail:.1f} s at the tail")
        if rng.random() < 0.5:
            lossy_ver = ("mp3", int(rng.choice([128, 192, 320])))
    elif name in ("instrumental", "loud_voice", "quiet_voice"):
        g = float(rng.uniform(-2, 2))
        ver = ver * np.float32(10 ** (g / 20))
        if rng.random() < 0.3:
            lossy_ver = ("mp3", int(rng.choice([192, 320])))
        notes.append(f"gain {g:+.1f} dB")

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem_name = f"{name}_{seed}_{index:03d}"
    mix_path = _write(folder / f"{stem_name}_mix", mix, sr_hz, lossy_mix)
    ver_path = _write(folder / f"{stem_name}_{kind}", ver, sr_hz, lossy_ver)
    vocals = None
    if keep_vocals and kind != "acapella" and expected == "verified":
        vocals = voc[:n_mix].astype(np.float32)
    return Case(name=name, index=index, mix_path=mix_path, version_path=ver_path, version_kind=kind,
                expected=expected, offset_s=offset_s, vocal_db=vocal_db, mix_s=len(mix) / sr_hz,
                version_s=len(ver) / sr_hz, vocals=vocals, sr_hz=sr_hz, notes=notes)


def write_cases(folder: str | os.PathLike, *, seed: int, per_case: int = 2, duration_s: float = 60.0,
                names: tuple[str, ...] | None = None, **kw) -> list[Case]:
    """`per_case` cases of every kind in `names` (default: all of CASES) under `folder`."""
    return [make_case(name, seed, i, folder, duration_s=duration_s, **kw)
            for name in (names or tuple(CASES)) for i in range(per_case)]


def candidates_table(cases: list[Case]):
    """A candidates.parquet-shaped DataFrame for `cases` (durations measured from the written files)."""
    import pandas as pd

    from .audio import probe_duration_s

    rows = []
    for k, c in enumerate(cases):
        mix_s, ver_s = probe_duration_s(c.mix_path), probe_duration_s(c.version_path)
        title = f"Song {k}"
        rows.append({
            "pair_id": f"c{k}__v{k}", "mix_track_id": f"c{k}", "version_track_id": f"v{k}",
            "version_kind": c.version_kind, "artist": f"Artist {k}", "artist_key": f"artist {k}",
            "mix_title": title, "version_title": f"{title} ({c.version_kind.capitalize()})",
            "mix_match_title": title.lower(), "version_match_title": title.lower(), "genre": "Pop",
            "mix_duration_s": mix_s, "version_duration_s": ver_s, "duration_delta_s": ver_s - mix_s,
            "title_score": 100.0, "n_near_best": 1, "mix_audio_path": c.mix_path,
            "version_audio_path": c.version_path, "mix_row": 2 * k, "version_row": 2 * k + 1,
        })
    return pd.DataFrame(rows)
