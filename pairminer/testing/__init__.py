"""Seeded generators of realistic catalogs with planted truth, for tests and benchmarks.

`make_catalog` builds a catalog whose true (mix, version) pairs are known, with the traps discover must
avoid: heavy-tailed artist sizes and one huge "Various Artists" block, varied casing, featured artists,
"Remastered"/"Live"/"Radio Edit" suffixes, every version title form, and near misses that must not
pair (durations 1.2-8 s apart, the same title by another artist, another song by the same artist).

Per package: `pairminer.testing.train` (a tiny targets folder and model), `.report` (seeded OUT folders,
headless Chromium), `.stages` (the registry checks every stage must pass). Tests import helpers from here
or take fixtures from tests/conftest.py, never from another test module.
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
# Version words in other languages and forms, as real catalogs write them (kind, form).
_MULTILINGUAL_FORMS = (
    ("instrumental", "{t} (Instrumentale)"), ("instrumental", "{t} (Version instrumentale)"),
    ("instrumental", "{t} (Versión Instrumental)"), ("karaoke", "{t} (Karaoke versie)"),
    ("karaoke", "{t} (Backing Track)"), ("karaoke", "{t} (Minus One)"), ("karaoke", "{t} (Original Karaoke)"),
    ("instrumental", "{t} (インスト)"), ("instrumental", "{t} (伴奏)"), ("instrumental", "{t} (纯音乐)"),
    ("off-vocal", "{t} (off vocal ver.)"), ("instrumental", "{t} (Instrumental Ver.)"),
    ("karaoke", "{t} (カラオケ)"), ("instrumental", "{t} (インストゥルメンタル)"),
    ("karaoke", "{t} [Karaoke Instrumental]"), ("instrumental", "{t} (Instrumental Versie)"),
)
_BARE_FORMS = (("instrumental", "{T} Instrumental"), ("instrumental", "{t} Instrumental Version"),
               ("acapella", "{t} Acapella"), ("karaoke", "{t} Karaoke Version"))
_GLUED_FORMS = (("instrumental", "{t}(Instrumental)"), ("off-vocal", "{t}[Off Vocal]"),
                ("instrumental", "{t}（Instrumental）"), ("acapella", "{t}(Acapella)"))
# Qualifiers that carry over: (original form, version form, sibling original that must NOT take the
# version, or None). The sibling is the plain song, planted close in duration half of the time.
_QUALIFIER_FORMS = (
    ("{t} (Sped Up)", "{t} (Instrumental - Sped Up)", "{t}"),
    ("{t} (Nova Remix)", "{t} (Nova Remix) [Instrumental]", "{t}"),
    ("{t} (Nova Remix)", "{t} (Nova Instrumental)", "{t}"),
    ("{t} (Extended Mix)", "{t} (Extended Instrumental)", None),
    ('{t} (12" Mix)', '{t} (12" Instrumental)', None),
    ("{t} - Radio Edit", "{t} - Instrumental Radio Edit", None),
    ("{t} (Live)", "{t} (Live) [Instrumental]", "{t}"),
    ("{t} (Acoustic)", "{t} (Acoustic Instrumental)", "{t}"),
    ("{t} (Slowed + Reverb)", "{t} (Slowed + Reverb) [Instrumental]", "{t}"),
    ("{t} - Demo", "{t} - Demo Instrumental", "{t}"),
)
# Edit qualifiers on one side only: the window decides.
_EDIT_FORMS = (("{t} - Radio Edit", "{t} - Instrumental"), ("{t} (Single Version)", "{t} (Instrumental)"),
               ("{t}", "{t} (Instrumental) [Radio Edit]"), ("{t} - Album Version", "{t} [Instrumental]"),
               ("{t} (7\" Version)", "{t} (Instrumental)"))
# Credits on one side only.
_CREDIT_FORMS = (("{t} (feat. {a})", "{t} (Instrumental)"), ("{t}", "{t} (feat. {a}) [Instrumental]"),
                 ("{t} (with {a})", "{t} - Instrumental"), ("{t} [feat. {a}]", "{t} (Inst.)"))
# Recording qualifiers that must match: a version whose recording is not in the catalog must not pair
# with the plain song (planted within the window).
_MISMATCH_FORMS = ("{t} (Live) [Instrumental]", "{t} (Instrumental - Sped Up)", "{t} (Nova Remix) [Instrumental]",
                   "{t} (Acoustic Instrumental)", "{t} - Demo Instrumental")
_SYMBOL_TITLES = ("$$$", "!!!", "???", "♡♡♡", "★", "...", "%%%", "+++", "#", "***", "&&&", "///", "@@@", "¿¡")
_MARKER_TITLES = ("Instrumental", "Karaoke", "Acapella", "Off Vocal", "放課後カラオケ", "カラオケ大好き",
                  "Instrumental Love", "Karaoke Night", "Inst", "A Cappella")
_SYMBOL_ARTISTS = (("≠ME", "ME"), ("=LOVE", "LOVE"), ("-", "&"), ("!!!", "???"), ("+/-", "-/+"), ("$", "¥"))
_SHORT_TITLES = ("Ba", "Lo", "Yo", "Mi", "Ne")

PAIR_CATEGORIES = ("plain", "typo", "other_kind", "multilingual", "bare_trailing", "glued", "qualifier_carry",
                   "edit_one_side", "credit_one_side", "symbol_title", "same_title_songs", "symbol_artist",
                   "marker_word_song")
TRAP_CATEGORIES = ("duration_far", "other_artist", "other_song", "recording_mismatch", "symbol_title_decoy",
                   "symbol_artist_decoy", "marker_word_title", "qualifier_sibling")


@dataclass
class GeneratedCatalog:
    """A generated catalog and its planted truth.

    Attributes:
        catalog: track_id, artist, title, duration, genre, audio_path.
        truth: mix_track_id, version_track_id, version_kind, category (one of PAIR_CATEGORIES).
        near_misses: version_track_id, trap (one of TRAP_CATEGORIES), mix_track_id (the original it
            must not pair with, or None): versions, or titles that look like them, that must not pair
            (or not with that original).
        duration_resolution_s: 0.0, or the resolution the durations were rounded to.
    """

    catalog: pd.DataFrame
    truth: pd.DataFrame
    near_misses: pd.DataFrame
    duration_resolution_s: float = 0.0


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


# Share of the true versions per category (the rest are "plain" / "other_kind" / "typo").
_CATEGORY_P = {"multilingual": 0.08, "bare_trailing": 0.05, "glued": 0.05, "qualifier_carry": 0.10,
               "edit_one_side": 0.10, "credit_one_side": 0.06}


def make_catalog(n_rows: int, seed: int = 0, *, va_tracks: int | None = None, version_rate: float = 0.01,
                 near_miss_rate: float = 0.004, other_kinds: bool = True,
                 max_artist_tracks: int = 5000, typo_rate: float = 0.05,
                 duration_resolution_s: float = 0.0, hard: bool = True) -> GeneratedCatalog:
    """A catalog of about `n_rows` rows with planted (mix, version) pairs and traps.

    Every trap of the real world that discover must handle is planted and labelled with a category
    (`PAIR_CATEGORIES` for true pairs, `TRAP_CATEGORIES` for non-pairs): heavy-tailed artist sizes and
    one huge "Various Artists" block, casing, featured artists, every version form (multilingual,
    glued, a bare trailing word), qualifiers that carry over ("Song (Sped Up)" and its
    "(Instrumental - Sped Up)") and recording qualifiers without their original, edit qualifiers on one
    side ("Song - Radio Edit" vs "Song - Instrumental"), one-sided credits, symbol-only titles,
    songs named after a marker word ("Instrumental", "放課後カラオケ"), several same-title songs by one
    artist, artists such as "≠ME" next to "ME", and durations 1.2-8 s apart.

    Args:
        n_rows: rows of plain originals + versions + traps (the planted extras add a few more).
        seed: RNG seed; the same seed gives the same catalog.
        va_tracks: size of the "Various Artists" block (default: 2% of rows, at most 200,000).
        version_rate: share of rows that are true versions.
        near_miss_rate: share of rows that are versions which must NOT pair.
        other_kinds: also plant acapella, karaoke and off-vocal versions.
        max_artist_tracks: cap on the size of one artist's discography (Various Artists excepted).
        typo_rate: share of plain true versions whose title carries a one-character typo.
        duration_resolution_s: round every duration to this resolution (1.0: a whole-seconds catalog).
        hard: plant the categories beyond plain/other_kind/typo and the three classic traps.
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
    next_id = iter(f"t{i:09d}" for i in rng.permutation(np.arange(n_rows, 3 * n_rows + 10_000)))
    rounded = duration_resolution_s > 0
    # A whole-seconds catalog cannot tell a 1.2 s delta from a 0.8 s one: its far traps start past the
    # widened window (max_delta + resolution).
    far_lo = 1.2 + (duration_resolution_s + 0.2 if rounded else 0.0)

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
    cats = np.full(len(vsrc), "plain", dtype=object)
    if hard:
        r = rng.random(len(vsrc))
        acc = 0.0
        for c, p in _CATEGORY_P.items():
            cats[(r >= acc) & (r < acc + p)] = c
            acc += p
    rows, truth, traps = [], [], []
    extra_orig = []  # (track_id, artist, title, duration, genre)

    def near(d0: float) -> float:
        return round(float(d0 + rng.uniform(-0.95, 0.95)), 3)

    for s, kind, cat in zip(vsrc.tolist(), kinds.tolist(), cats.tolist()):
        o = orig.iloc[s]
        base = o["base_title"]
        primary = o["artist"].split(" feat. ")[0]
        artist = primary if rng.random() < 0.9 else primary.lower()
        tid = next(next_id)
        mix_id = o["track_id"]
        if cat == "plain":
            forms = _INSTRUMENTAL_FORMS if kind == "instrumental" else _OTHER_FORMS[kind]
            if kind != "instrumental":
                cat = "other_kind"
            if rng.random() < typo_rate:  # real catalogs misspell: one character dropped or swapped
                i = int(rng.integers(1, len(base) - 1))
                drop = rng.random() < 0.5
                base = base[:i] + base[i + 1:] if drop else base[:i - 1] + base[i] + base[i - 1] + base[i + 1:]
                cat = "typo"
            title = forms[rng.integers(len(forms))].format(t=base, T=base.upper())
        elif cat in ("multilingual", "bare_trailing", "glued"):
            table = {"multilingual": _MULTILINGUAL_FORMS, "bare_trailing": _BARE_FORMS, "glued": _GLUED_FORMS}[cat]
            kind, form = table[rng.integers(len(table))]
            title = form.format(t=base, T=base.upper())
        elif cat == "qualifier_carry":
            of, vf, sib = _QUALIFIER_FORMS[rng.integers(len(_QUALIFIER_FORMS))]
            orig.iat[s, orig.columns.get_loc("title")] = of.format(t=base)
            kind, title = "instrumental", vf.format(t=base)
            if sib is not None:  # the plain song, close in duration half of the time
                close = rng.random() < 0.5
                d_sib = near(o["duration"]) if close else round(float(o["duration"] + rng.uniform(20, 60)), 3)
                sid = next(next_id)
                extra_orig.append((sid, primary, sib.format(t=base), d_sib, o["genre"]))
                traps.append((tid, "qualifier_sibling", sid))
        elif cat == "edit_one_side":
            of, vf = _EDIT_FORMS[rng.integers(len(_EDIT_FORMS))]
            orig.iat[s, orig.columns.get_loc("title")] = of.format(t=base)
            kind, title = "instrumental", vf.format(t=base)
        else:  # credit_one_side
            of, vf = _CREDIT_FORMS[rng.integers(len(_CREDIT_FORMS))]
            guest = str(artist_names[rng.integers(n_artists)])
            orig.iat[s, orig.columns.get_loc("title")] = of.format(t=base, a=guest)
            kind, title = "instrumental", vf.format(t=base, a=guest)
        rows.append((tid, artist, title, max(near(o["duration"]), 1.0), o["genre"]))
        truth.append((mix_id, tid, kind, cat))

    kinds_t = rng.integers(0, 4 if hard else 3, size=len(tsrc))
    for s, k in zip(tsrc.tolist(), kinds_t.tolist()):
        o = orig.iloc[s]
        primary = o["artist"].split(" feat. ")[0]
        tid = next(next_id)
        if k == 0:  # durations 1.2-8 s apart
            d = o["duration"] + rng.choice([-1, 1]) * rng.uniform(far_lo, 8.0)
            rows.append((tid, primary, f"{o['base_title']} (Instrumental)", round(max(d, 1.0), 3), o["genre"]))
            traps.append((tid, "duration_far", o["track_id"]))
        elif k == 1:  # the same title by another artist
            other = artist_names[rng.integers(n_artists)]
            if other == primary:
                other = other + " Band"
            rows.append((tid, other, f"{o['base_title']} (Instrumental)", near(o["duration"]), o["genre"]))
            traps.append((tid, "other_artist", o["track_id"]))
        elif k == 2:  # another song by the same artist (a title that is not in the catalog)
            new_title = _name(rng.integers(0, 40 ** 4, size=1), 4, _SYLLABLES)[0]
            rows.append((tid, primary, f"{new_title} (Instrumental)", near(o["duration"]), o["genre"]))
            traps.append((tid, "other_song", o["track_id"]))
        else:  # a live / remixed / sped-up version whose recording is not in the catalog
            form = _MISMATCH_FORMS[rng.integers(len(_MISMATCH_FORMS))]
            rows.append((tid, primary, form.format(t=o["base_title"]), near(o["duration"]), o["genre"]))
            traps.append((tid, "recording_mismatch", o["track_id"]))

    if hard:
        n_special = max(10, n_versions // 20)
        _plant_specials(rng, n_special, next_id, rows, extra_orig, truth, traps, far_lo)
    extra = pd.DataFrame(rows + extra_orig, columns=["track_id", "artist", "title", "duration", "genre"])
    cat = pd.concat([orig[["track_id", "artist", "title", "duration", "genre"]], extra], ignore_index=True)
    cat = cat.iloc[rng.permutation(len(cat))].reset_index(drop=True)
    if rounded:
        cat["duration"] = np.maximum(np.round(cat["duration"].to_numpy() / duration_resolution_s), 1) \
            * duration_resolution_s
    cat["audio_path"] = ""
    return GeneratedCatalog(
        catalog=cat,
        truth=pd.DataFrame(truth, columns=["mix_track_id", "version_track_id", "version_kind", "category"]),
        near_misses=pd.DataFrame(traps, columns=["version_track_id", "trap", "mix_track_id"]),
        duration_resolution_s=float(duration_resolution_s),
    )


def _plant_specials(rng, n: int, next_id, rows: list, extra_orig: list, truth: list, traps: list,
                    far_lo: float) -> None:
    """Small artists built around one trap each: symbol titles and artists, marker-word songs, same-title songs."""
    genre = "Pop"
    for i in range(n):
        tag = f"{i:05d}"
        d0 = round(float(rng.uniform(150, 300)), 3)

        def add_orig(artist: str, title: str, d: float) -> str:
            tid = next(next_id)
            extra_orig.append((tid, artist, title, round(d, 3), genre))
            return tid

        def add_version(artist: str, title: str, d: float) -> str:
            tid = next(next_id)
            rows.append((tid, artist, title, round(d, 3), genre))
            return tid

        jitter = lambda: float(rng.uniform(-0.95, 0.95))  # noqa: E731
        # symbol-only titles: "$$$" and its instrumental pair; "!!!" (Instrumental) must not take "$$$"
        artist = f"Symbolic {tag}"
        sym, other = rng.choice(len(_SYMBOL_TITLES), size=2, replace=False)
        m = add_orig(artist, _SYMBOL_TITLES[sym], d0)
        truth.append((m, add_version(artist, f"{_SYMBOL_TITLES[sym]} - Instrumental", d0 + jitter()),
                      "instrumental", "symbol_title"))
        v = add_version(artist, f"{_SYMBOL_TITLES[other]} (Instrumental)", d0 + jitter())
        traps.append((v, "symbol_title_decoy", m))
        # songs named after a marker word are originals, and have versions of their own
        artist = f"Marker {tag}"
        word = _MARKER_TITLES[i % len(_MARKER_TITLES)]
        m = add_orig(artist, word, d0 + 40)
        traps.append((m, "marker_word_title", None))
        truth.append((m, add_version(artist, f"{word} (Instrumental)", d0 + 40 + jitter()), "instrumental",
                      "marker_word_song"))
        # several songs with the same short title by one artist, at different durations
        artist = f"Shorty {tag}"
        short = _SHORT_TITLES[i % len(_SHORT_TITLES)]
        durs = d0 + np.cumsum(rng.uniform(far_lo + 2.0, 40.0, size=3))
        ids = [add_orig(artist, short, float(d)) for d in durs]
        k = int(rng.integers(3))
        v = add_version(artist, f"{short} (Instrumental)", float(durs[k]) + jitter())
        truth.append((ids[k], v, "instrumental", "same_title_songs"))
        # artists made of symbols: "≠ME" is not "ME", "-" is not "&"
        a, b = _SYMBOL_ARTISTS[i % len(_SYMBOL_ARTISTS)]
        title = f"Koi {tag}"
        m_a = add_orig(a, title, d0 + 80)
        truth.append((m_a, add_version(a, f"{title} (Instrumental)", d0 + 80 + jitter()), "instrumental",
                      "symbol_artist"))
        m_b = add_orig(b, f"Ai {tag}", d0 + 120)
        v = add_version(a, f"Ai {tag} (Instrumental)", d0 + 120 + jitter())
        traps.append((v, "symbol_artist_decoy", m_b))


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


def category_report(candidates: pd.DataFrame, g: GeneratedCatalog) -> pd.DataFrame:
    """Recall and precision of discover's candidates per planted category.

    Returns one row per category: `kind` ("pair" or "trap"), `planted`, `found` (true pairs found),
    `recall`, `claimed` (candidates whose version belongs to the category), `correct` (of those, true
    pairs), `precision`, and for traps `false_pairs` (candidates the trap forbids).
    """
    got = set(zip(candidates["mix_track_id"], candidates["version_track_id"]))
    by_version = dict(zip(candidates["version_track_id"], candidates["mix_track_id"]))
    want = set(zip(g.truth["mix_track_id"], g.truth["version_track_id"]))
    rows = []
    for cat, t in g.truth.groupby("category", sort=True):
        pairs = set(zip(t["mix_track_id"], t["version_track_id"]))
        claimed = [(by_version[v], v) for v in t["version_track_id"] if v in by_version]
        correct = sum(p in want for p in claimed)
        rows.append({"category": cat, "kind": "pair", "planted": len(pairs), "found": len(pairs & got),
                     "recall": len(pairs & got) / len(pairs), "claimed": len(claimed), "correct": correct,
                     "precision": correct / len(claimed) if claimed else 1.0, "false_pairs": len(claimed) - correct})
    for cat, t in g.near_misses.groupby("trap", sort=True):
        bad = 0
        for v, m in zip(t["version_track_id"], t["mix_track_id"]):
            if v in by_version and (m is None or pd.isna(m) or by_version[v] == m) and (by_version[v], v) not in want:
                bad += 1
        rows.append({"category": cat, "kind": "trap", "planted": len(t), "found": 0, "recall": float("nan"),
                     "claimed": bad, "correct": 0, "precision": 0.0 if bad else 1.0, "false_pairs": bad})
    return pd.DataFrame(rows)


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
