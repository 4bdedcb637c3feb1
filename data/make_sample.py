"""Write the demo catalog data/sample/catalog.csv and its audio data/sample/audio/*.flac.

Deterministic: rerunning rewrites identical files. Run with the project's venv:

    .venv/bin/python data/make_sample.py

The audio is synthetic (pairminer.synth, no third-party audio): ~10 s mono songs at 22050 Hz,
band-limited to 5.5 kHz (Chromaprint listens below 5 kHz) so that data/ stays under ~4 MB.

What the catalog holds (the planted truth that `pairminer discover` then `verify` should find):

* 6 true (mix, instrumental) pairs in varied title forms and genres, one with a 0.35 s offset and
  a -2.5 dB gain change           -> discover pairs them, verify says `verified`;
* a mislabeled "instrumental" that is a copy of the mix            -> `too_similar`;
* an "instrumental" that is an unrelated song at the same tempo    -> `too_different`;
* a corrupt version file and a missing version file                -> `error`;
* metadata traps discover must NOT pair: durations 1.2-8 s apart, the same title by another
  artist, another song by the same artist, a "(Live)" original;
* ~30 ordinary originals (featured artists, accents, a CJK title) without audio.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pairminer.synth import make_song  # noqa: E402

SR_HZ = 22050
BAND_HZ = 5500
VOCAL_DB = -5.0
OUT = HERE / "sample"
AUDIO = OUT / "audio"

# (seed, artist, mix title, version title, version artist, genre, duration_s, offset_s, gain_db)
TRUE_PAIRS = [
    (11, "Neon Harbor", "Midnight Drive", "Midnight Drive (Instrumental)", None, "Synthpop", 10.4, 0.0, 0.0),
    (12, "Los Caminos", "Corazón de Papel", "Corazón de Papel - Instrumental", None, "Latin", 10.0, 0.0, 0.0),
    (13, "The Quiet Foxes", "Paper Lanterns", "Paper Lanterns [Instrumental Version]", None, "Indie Rock", 10.8, 0.0, 0.0),
    (14, "Mara Okafor feat. DJ Lume", "Golden Hour - Remastered 2009", "Golden Hour (Instrumental) - Remastered 2009",
     "Mara Okafor", "R&B", 9.8, 0.0, 0.0),
    (15, "Kite Theory", "Static Bloom", "Static Bloom (Inst.)", None, "Electronic", 10.2, 0.35, -2.5),
    (16, "Aurélie Fontaine", "Les Étoiles", "Les Étoiles (Instrumental)", None, "Chanson", 10.6, 0.0, 0.0),
]


def _lowpass(y: np.ndarray) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    return sosfiltfilt(butter(8, BAND_HZ, fs=SR_HZ, output="sos"), y).astype(np.float32)


def _write(name: str, y: np.ndarray) -> tuple[str, float]:
    import soundfile as sf

    path = AUDIO / name
    sf.write(str(path), np.clip(y, -1, 1), SR_HZ, format="FLAC", subtype="PCM_16", compression_level=1.0)
    return f"audio/{name}", round(len(y) / SR_HZ, 2)


def _slug(text: str) -> str:
    import unicodedata

    text = unicodedata.normalize("NFKD", text)
    keep = "".join(c.lower() if c.isascii() and c.isalnum() else "_" for c in text)
    return "_".join(p for p in keep.split("_") if p)


def build() -> list[dict]:
    AUDIO.mkdir(parents=True, exist_ok=True)
    for old in AUDIO.glob("*"):
        old.unlink()
    rows: list[dict] = []

    def add(artist, title, duration, genre, audio_path=""):
        rows.append({"track_id": f"T{len(rows) + 1:03d}", "artist": artist, "title": title,
                     "duration": f"{duration:.2f}", "genre": genre, "audio_path": audio_path})

    def song(seed, duration_s, tempo=None):
        s = make_song(seed, duration_s, sr_hz=SR_HZ, tempo_bpm=tempo)
        # The voice sits VOCAL_DB below the synth's default balance: a typical mix, not a vocal-forward one.
        mix = s.accompaniment + np.float32(10 ** (VOCAL_DB / 20)) * s.vocals
        return s, _lowpass(mix), _lowpass(s.accompaniment)

    # True pairs.
    for seed, artist, title, vtitle, vartist, genre, dur, offset_s, gain_db in TRUE_PAIRS:
        _, mix, inst = song(seed, dur)
        path, d = _write(f"{_slug(title)}.flac", mix)
        add(artist, title, d, genre, path)
        version = inst * np.float32(10 ** (gain_db / 20))
        if offset_s:  # the instrumental starts later: leading silence, so it is also longer
            version = np.concatenate([np.zeros(int(round(offset_s * SR_HZ)), np.float32), version])
        path, d = _write(f"{_slug(title)}_instrumental.flac", version)
        add(vartist or artist, vtitle, d, genre, path)

    # A mislabeled "instrumental": the mix itself.
    _, mix, _ = song(21, 10.0)
    path, d = _write("sunday_parade.flac", mix)
    add("Brass Avenue", "Sunday Parade", d, "Jazz", path)
    path, d = _write("sunday_parade_instrumental.flac", mix.copy())
    add("Brass Avenue", "Sunday Parade (Instrumental)", d, "Jazz", path)

    # An "instrumental" that is another song at the same tempo (same duration, matching metadata).
    s, mix, _ = song(22, 10.2)
    path, d = _write("river_song.flac", mix)
    add("Hollow Pines", "River Song", d, "Folk", path)
    _, other, _ = song(122, 10.2, tempo=s.tempo_bpm)
    path, d = _write("river_song_instrumental.flac", other)
    add("Hollow Pines", "River Song (Instrumental)", d, "Folk", path)
    add("Hollow Pines", "River Song (Live)", 10.6, "Folk")  # trap: a live original

    # A corrupt version file (a truncated FLAC) and a missing one.
    _, mix, inst = song(23, 9.6)
    path, d = _write("glass_heart.flac", mix)
    add("Velvet Static", "Glass Heart", d, "Rock", path)
    _write("glass_heart_instrumental.flac", inst)
    full = (AUDIO / "glass_heart_instrumental.flac").read_bytes()
    (AUDIO / "glass_heart_instrumental.flac").write_bytes(full[: len(full) // 3])
    add("Velvet Static", "Glass Heart - Instrumental", d, "Rock", "audio/glass_heart_instrumental.flac")
    _, mix, _ = song(24, 10.0)
    path, d = _write("open_roads.flac", mix)
    add("Northbound", "Open Roads", d, "Country", path)
    add("Northbound", "Open Roads (Instrumental)", d, "Country", "audio/open_roads_instrumental.flac")

    # Metadata traps (no audio): discover must not pair these.
    add("Neon Harbor", "City Lights", 201.30, "Synthpop")
    add("Neon Harbor", "City Lights (Instrumental)", 205.80, "Synthpop")  # 4.5 s apart
    add("Kite Theory", "Afterglow", 187.00, "Electronic")
    add("Kite Theory", "Afterglow (Instrumental)", 188.20, "Electronic")  # 1.2 s apart
    add("Brass Avenue", "Late Train", 240.00, "Jazz")
    add("Brass Avenue", "Late Train - Instrumental", 248.00, "Jazz")  # 8 s apart
    add("Moonlit Choir", "Paper Lanterns (Instrumental)", 10.80, "Indie Rock")  # same title, another artist
    add("Los Caminos", "Noche Azul", 214.50, "Latin")
    add("Los Caminos", "Luna Llena (Instrumental)", 214.70, "Latin")  # another song by the same artist

    ordinary = [
        ("Sora Mizuno", "夏の雨", 233.4, "J-Pop"), ("Björk Sæther", "Nordlys", 251.0, "Electronic"),
        ("DJ Lume feat. Mara Okafor", "Night Bus", 198.2, "House"), ("Zoë & The Comets", "Café Noir", 176.9, "Pop"),
        ("Los Caminos feat. Inés Duarte", "Mañana", 203.3, "Latin"), ("The Quiet Foxes", "Harbour Walls", 221.7, "Indie Rock"),
        ("Kite Theory x Neon Harbor", "Parallel", 244.1, "Electronic"), ("Mara Okafor", "Slow Burn", 209.6, "R&B"),
        ("Hollow Pines", "Cedar Smoke", 187.3, "Folk"), ("Velvet Static", "Broken Radio", 195.5, "Rock"),
        ("Northbound", "Dust and Gold", 232.0, "Country"), ("Aurélie Fontaine", "Rue de la Paix", 188.8, "Chanson"),
        ("Brass Avenue", "Blue Corner", 305.2, "Jazz"), ("Ōkami Sound", "東京タワー", 214.0, "J-Pop"),
        ("Miguel Ángel Ruiz", "Sin Ti", 199.1, "Latin"), ("Anna-Lena Krüger", "Grün", 223.8, "Pop"),
        ("The Paper Kites Tribute Band", "Electric Field", 256.4, "Indie Rock"),
        ("Saint Elm", "Orchard", 174.0, "Folk"), ("Ruby Vance feat. Coldwater", "Neon Rain", 201.9, "Pop"),
        ("Coldwater", "Tidal", 239.5, "Electronic"), ("Jonas Ek", "Vinter", 181.2, "Singer-Songwriter"),
        ("Priya Raman", "Monsoon Letters", 247.7, "Pop"), ("Lagos Collective", "Ìfẹ́", 262.3, "Afrobeats"),
        ("Seoul Lights", "별빛", 212.6, "K-Pop"), ("Ivan Petrov", "Белые ночи", 228.0, "Rock"),
        ("The Midnight Owls", "Streetlamp", 199.9, "Indie Rock"), ("Kaia & Friends", "Sunlit", 166.4, "Pop"),
        ("Marco Bellini", "Piazza", 215.3, "Jazz"), ("Nadia Haddad", "Sahara Wind", 244.6, "World"),
        ("Echo Valley", "Canyon Call", 236.1, "Country"), ("Static Youth", "Overdrive", 172.8, "Punk"),
    ]
    for artist, title, dur, genre in ordinary:
        add(artist, title, dur, genre)
    return rows


def main() -> None:
    rows = build()
    with open(OUT / "catalog.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["track_id", "artist", "title", "duration", "genre", "audio_path"],
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {len(rows)} catalog rows and {len(list(AUDIO.glob('*.flac')))} audio files "
          f"({size / 1e6:.2f} MB) to {OUT}")


if __name__ == "__main__":
    main()
