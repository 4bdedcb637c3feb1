"""Seeded generators of realistic catalogs with planted truth, for tests and benchmarks.

`make_catalog` builds a catalog whose true (mix, version) pairs are known, with the traps discover must
avoid: heavy-tailed artist sizes and one huge "Various Artists" block, varied casing, featured artists,
"Remastered"/"Live"/"Radio Edit" suffixes, every version title form, and near misses that must not
pair (durations 1.2-8 s apart, the same title by another artist, another song by the same artist).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

_SYLLABLES = np.array([
    "ka", "lo", "mi", "ru", "sen", "ta", "vo", "ne", "bri", "dor", "fa", "gu", "hel", "jo", "ki", "lan",
    "mar", "no", "pe", "qui", "ro", "sa", "tor", "ul", "vin", "wes", "xa", "yo", "zen", "bel", "cor", "dan",
    "el", "fin", "gar", "ho", "is", "ja", "kem", "li",
])
_WORDS = np.array([
    "love", "night", "summer", "heart", "fire", "dream", "rain", "city", "dance", "gold", "blue", "moon",
    "river", "light", "shadow", "storm", "home", "road", "ocean", "star", "wild", "sky", "echo", "glass",
    "paper", "silver", "stone", "winter", "morning", "electric", "velvet", "desert", "neon", "ghost", "honey",
    "thunder", "mirror", "garden", "highway", "candle", "crystal", "midnight", "sugar", "diamond", "forever",
    "golden", "broken", "lonely", "secret", "sweet", "young", "dark", "bright", "slow", "lost", "free",
    "running", "falling", "burning", "dancing", "waiting", "calling", "shining", "drifting", "holding",
])
GENRES = np.array(["Pop", "Rap", "Dance & House", "Rock", "R&B", "Electronic", "Latin", "Country", "Jazz",
                   "Soundtrack", "K-Pop", "Metal", "Reggae", "Folk", "Classical"])
_GENRE_P = np.array([26.0, 21.3, 14.2, 9.0, 7.0, 5.5, 4.0, 3.0, 2.0, 2.0, 1.8, 1.5, 1.0, 1.0, 0.7])
_INSTRUMENTAL_FORMS = ("{t} - Instrumental", "{t} (Instrumental)", "{t} [Instrumental Version]",
                       "{t} - Instrumental Mix", "{t} (Instrumental) - Remastered 2009", "{t} (Instrumentals)",
                       "{t} (Inst.)", "{T} (INSTRUMENTAL)", "{t} (Instrumental Version)")
_OTHER_FORMS = {"acapella": ("{t} (Acapella)", "{t} - A Cappella", "{t} [Acappella Version]"),
                "karaoke": ("{t} (Karaoke Version)", "{t} - Karaoke"),
                "off-vocal": ("{t} (Off Vocal)", "{t} -off vocal ver.-", "{t} (オフボーカル)")}


@dataclass
class GeneratedCatalog:
    catalog: pd.DataFrame  # track_id, artist, title, duration, genre, audio_path
    truth: pd.DataFrame  # mix_track_id, version_track_id, version_kind
    near_misses: pd.DataFrame  # version_track_id, trap


def _name(idx: np.ndarray, n_syl: int, base: np.ndarray) -> list[str]:
    parts = []
    x = idx.copy()
    for _ in range(n_syl):
        parts.append(base[x % len(base)])
        x //= len(base)
    first = np.char.add(parts[0], parts[1]) if n_syl > 1 else parts[0]
    rest = parts[2]
    for p in parts[3:]:
        rest = np.char.add(rest, p)
    return [f"{a.capitalize()} {b.capitalize()}" for a, b in zip(first.tolist(), rest.tolist())]


def make_catalog(n_rows: int, seed: int = 0, *, va_tracks: int | None = None, version_rate: float = 0.01,
                 near_miss_rate: float = 0.004, other_kinds: bool = True,
                 max_artist_tracks: int = 5000, typo_rate: float = 0.05) -> GeneratedCatalog:
    """A catalog of about `n_rows` rows with planted (mix, version) pairs.

    Args:
        n_rows: total rows (originals + versions + near misses).
        seed: RNG seed; the same seed gives the same catalog.
        va_tracks: size of the "Various Artists" block (default: 2% of rows, at most 200,000).
        version_rate: share of rows that are true versions.
        near_miss_rate: share of rows that are versions which must NOT pair.
        other_kinds: also plant acapella, karaoke and off-vocal versions.
        max_artist_tracks: cap on the size of one artist's discography (Various Artists excepted).
        typo_rate: share of true versions whose title carries a one-character typo.
    """
    rng = np.random.default_rng(seed)
    n_versions = int(n_rows * version_rate)
    n_traps = int(n_rows * near_miss_rate)
    n_orig = n_rows - n_versions - n_traps
    va = min(200_000, max(0, int(n_rows * 0.02))) if va_tracks is None else va_tracks
    n_artists = max(20, n_orig // 25)
    artist_names = np.array(_name(rng.permutation(40 ** 4)[:n_artists], 4, _SYLLABLES), dtype=object)
    # Heavy-tailed artist sizes (Zipf-like, the largest discographies capped at `max_artist_tracks`),
    # plus the Various Artists block.
    w = 1.0 / np.arange(1, n_artists + 1) ** 1.05
    w = np.minimum(w / w.sum(), max_artist_tracks / max(n_orig, 1))
    art = rng.choice(n_artists, size=n_orig, p=w / w.sum())
    is_va = np.zeros(n_orig, dtype=bool)
    is_va[rng.choice(n_orig, size=min(va, n_orig), replace=False)] = True
    n_words = rng.integers(1, 4, size=n_orig)
    widx = rng.integers(0, len(_WORDS), size=(n_orig, 3))
    wtxt = _WORDS[widx]
    # A syllable word makes titles diverse enough that one artist rarely repeats a title.
    tag = np.array(_name(rng.integers(0, 40 ** 4, size=n_orig), 4, _SYLLABLES), dtype=object)
    base_titles = np.where(
        n_words == 1, np.char.add(np.char.add(tag.astype(str), " "), wtxt[:, 0]),
        np.where(n_words == 2, np.char.add(np.char.add(wtxt[:, 0], " "), tag.astype(str)),
                 np.char.add(np.char.add(np.char.add(wtxt[:, 0], " "), wtxt[:, 1]),
                             np.char.add(" ", tag.astype(str))))).astype(object)
    base_titles = np.array([t[:1].upper() + t[1:] for t in base_titles.tolist()], dtype=object)
    deco = rng.random(n_orig)
    suffix = np.where(deco < 0.03, " - Remastered 2009", np.where(deco < 0.05, " (Live)",
                      np.where(deco < 0.07, " - Radio Edit", "")))
    titles = np.char.add(base_titles.astype(str), suffix).astype(object)
    artist_col = np.where(is_va, "Various Artists", artist_names[art]).astype(object)
    feat = rng.random(n_orig)
    feat_idx = rng.integers(0, n_artists, size=n_orig)
    with_feat = (feat < 0.08) & ~is_va
    artist_col[with_feat] = [f"{a} feat. {b}" for a, b in zip(artist_col[with_feat], artist_names[feat_idx[with_feat]])]
    upper = (feat > 0.97) & ~is_va
    artist_col[upper] = [a.upper() for a in artist_col[upper]]
    dur = np.clip(rng.lognormal(np.log(215), 0.3, size=n_orig), 60, 900).round(3)
    genre = GENRES[rng.choice(len(GENRES), size=n_orig, p=_GENRE_P / _GENRE_P.sum())]
    orig = pd.DataFrame({"artist_idx": np.where(is_va, -1, art), "artist": artist_col, "title": titles,
                         "base_title": base_titles, "suffix": suffix, "duration": dur, "genre": genre})
    orig["track_id"] = [f"t{i:09d}" for i in rng.permutation(n_rows)[:n_orig]]
    free_ids = iter(f"t{i:09d}" for i in rng.permutation(np.arange(n_rows, 2 * n_rows))[: n_versions + n_traps])

    # Sources of versions: plain or remastered originals whose (artist, title) is unique.
    ok = (orig["suffix"].isin(["", " - Remastered 2009"])) & ~orig.duplicated(["artist_idx", "base_title"], keep=False)
    pool = np.flatnonzero(ok.to_numpy())
    src = rng.choice(pool, size=min(n_versions + n_traps, len(pool)), replace=False)
    vsrc, tsrc = src[:n_versions], src[n_versions:]
    kinds = np.full(len(vsrc), "instrumental", dtype=object)
    if other_kinds:
        r = rng.random(len(vsrc))
        kinds[r > 0.85] = "acapella"
        kinds[r > 0.93] = "karaoke"
        kinds[r > 0.97] = "off-vocal"
    rows, truth = [], []
    for s, kind in zip(vsrc.tolist(), kinds.tolist()):
        o = orig.iloc[s]
        forms = _INSTRUMENTAL_FORMS if kind == "instrumental" else _OTHER_FORMS[kind]
        form = forms[rng.integers(len(forms))]
        base = o["base_title"]
        if rng.random() < typo_rate:  # real catalogs misspell: one character dropped or swapped
            i = int(rng.integers(1, len(base) - 1))
            base = base[:i] + base[i + 1:] if rng.random() < 0.5 else base[:i - 1] + base[i] + base[i - 1] + base[i + 1:]
        title = form.format(t=base, T=base.upper())
        primary = o["artist"].split(" feat. ")[0]
        artist = primary if rng.random() < 0.9 else primary.lower()
        d = round(float(o["duration"] + rng.uniform(-0.95, 0.95)), 3)
        tid = next(free_ids)
        rows.append((tid, artist, title, max(d, 1.0), o["genre"]))
        truth.append((o["track_id"], tid, kind))
    traps = []
    kinds_t = rng.integers(0, 3, size=len(tsrc))
    for s, k in zip(tsrc.tolist(), kinds_t.tolist()):
        o = orig.iloc[s]
        primary = o["artist"].split(" feat. ")[0]
        tid = next(free_ids)
        if k == 0:  # durations 1.2-8 s apart
            d = o["duration"] + rng.choice([-1, 1]) * rng.uniform(1.2, 8.0)
            rows.append((tid, primary, f"{o['base_title']} (Instrumental)", round(max(d, 1.0), 3), o["genre"]))
            traps.append((tid, "duration_far"))
        elif k == 1:  # the same title by another artist
            other = artist_names[rng.integers(n_artists)]
            if other == primary:
                other = other + " Band"
            rows.append((tid, other, f"{o['base_title']} (Instrumental)",
                         round(float(o["duration"] + rng.uniform(-0.5, 0.5)), 3), o["genre"]))
            traps.append((tid, "other_artist"))
        else:  # another song by the same artist (a title that is not in the catalog)
            new_title = _name(rng.integers(0, 40 ** 4, size=1), 4, _SYLLABLES)[0]
            rows.append((tid, primary, f"{new_title} (Instrumental)",
                         round(float(o["duration"] + rng.uniform(-0.5, 0.5)), 3), o["genre"]))
            traps.append((tid, "other_song"))
    extra = pd.DataFrame(rows, columns=["track_id", "artist", "title", "duration", "genre"])
    cat = pd.concat([orig[["track_id", "artist", "title", "duration", "genre"]], extra], ignore_index=True)
    cat = cat.iloc[rng.permutation(len(cat))].reset_index(drop=True)
    cat["audio_path"] = ""
    return GeneratedCatalog(
        catalog=cat,
        truth=pd.DataFrame(truth, columns=["mix_track_id", "version_track_id", "version_kind"]),
        near_misses=pd.DataFrame(traps, columns=["version_track_id", "trap"]),
    )


def write_catalog_csv(df: pd.DataFrame, path: str) -> None:
    """Write a catalog as CSV with pyarrow (fast for millions of rows)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.Table.from_pandas(df, preserve_index=False), path)


def precision_recall(candidates: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float]:
    """Precision and recall of (mix_track_id, version_track_id) pairs against the planted truth."""
    got = set(zip(candidates["mix_track_id"], candidates["version_track_id"]))
    want = set(zip(truth["mix_track_id"], truth["version_track_id"]))
    tp = len(got & want)
    return (tp / len(got) if got else 1.0), (tp / len(want) if want else 1.0)


def candidate_row(i: int, mix: str | None, version: str | None, *, duration_s: float, delta_s: float = 0.0,
                  artist: str = "Artist", pair_id: str | None = None) -> dict:
    """One row of a candidates table (schemas/candidates) for pair `i` of a test corpus.

    Args:
        i: the pair's number: track ids m<i> and v<i>, catalog rows i and 100 + i.
        mix, version: the audio paths (None for a row without audio).
        duration_s: the mix's duration in seconds; the version's is `duration_s + delta_s`.
        artist: the artist of both tracks (its lower-case form is the artist key).
        pair_id: default "m<i>__v<i>".
    """
    return {
        "pair_id": pair_id or f"m{i}__v{i}", "mix_track_id": f"m{i}", "version_track_id": f"v{i}",
        "version_kind": "instrumental", "artist": artist, "artist_key": artist.lower(), "mix_title": "Song",
        "version_title": "Song (Instrumental)", "mix_match_title": "song", "version_match_title": "song",
        "genre": "Pop", "mix_duration_s": duration_s, "version_duration_s": duration_s + delta_s,
        "duration_delta_s": delta_s, "title_score": 100.0, "n_near_best": 1, "mix_audio_path": mix,
        "version_audio_path": version, "mix_row": i, "version_row": 100 + i,
    }
