"""A seeded soundtrack-like catalog with planted truth: game, anime and visual-novel soundtracks.

`make_soundtrack_catalog` builds what the team's soundtrack catalogs look like: the album title (or the
franchise) stands where the artist would be, durations are whole seconds, albums are mostly BGM with a
few vocal songs, the same song sits on a single, a vocal collection and the soundtrack (or is sung by
five characters on five singles), titles are sometimes file names, and versions are written in the
forms those catalogs use ("Off Vo.", "Vocalless", "カラオケver", "ボーカルなし", "Original Karaoke" bare,
"inst" glued to a Japanese title), while the vocal track alone carries labels such as "Full Chorus
Ver.", "(Vocals)", "-OP ver-". Traps that must not pair are planted beside them: TV size against full
length, a numbered sibling ("Stage 1" for "Stage 2 (Off Vocal)"), a B-side remix whose own album holds
the right mix, titles with "voice" words that are not versions.

Pair categories start with "st_", trap categories with "st_trap_"; `testing.category_report` reports
them. Truth is per category, as in `testing.make_catalog`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .testing import GeneratedCatalog, _SYLLABLES, _WORDS, _name

_JP_WORDS = ("夢", "空", "恋", "星", "君", "約束", "翼", "光", "未来", "物語", "桜", "風", "涙", "奇跡", "明日", "青春",
             "記憶", "花火", "願い", "季節", "扉", "旅", "声", "心", "虹", "月", "雪", "海", "嵐", "世界", "永遠", "絆")
_JP_LINKS = ("の", "と", "に", "へ", "を", "色の", "までの", "より")
_BGM_WORDS = ("Battle", "Town", "Field", "Dungeon", "Castle", "Boss", "Victory", "Memories", "Title", "Menu",
              "Prologue", "Epilogue", "Forest", "Ruins", "Sky", "Ocean", "Night", "Morning", "Event", "Theme")
_SINGERS = ("Kana", "Yui", "Mio", "Rin", "Aoi", "Hina", "Saki", "Nana", "Emi", "Riko", "Sora", "Miku")

# Version forms per pair category: (kind, form). "{t}" is the song title.
_PLAIN_FORMS = (("off-vocal", "{t} (Off Vocal)"), ("instrumental", "{t} (Instrumental)"),
                ("karaoke", "{t} (Karaoke)"), ("off-vocal", "{t} -off vocal ver.-"), ("off-vocal", "{t} (オフボーカル)"),
                ("instrumental", "{t} (Inst.)"), ("off-vocal", "{t} (off vocal ver.)"))
_ST_FORMS = {
    "st_without_vocals": (
        ("off-vocal", "{t} (Vocalless)"), ("off-vocal", "{t} (Without Vocals)"), ("off-vocal", "{t} (without vocal)"),
        ("off-vocal", "{t} [No Vocal]"), ("off-vocal", "{t} (Voiceless)"), ("off-vocal", "{t} - Without Voice"),
        ("off-vocal", "{t} (No Voice Ver.)"), ("off-vocal", "{t} (No Vocals)"), ("off-vocal", "{t} (vocalless ver.)"),
        ("off-vocal", "{t} (no voice)")),
    "st_off_vocal_forms": (
        ("off-vocal", "{t} (OffVocal)"), ("off-vocal", "{t} (Off Vo.)"), ("off-vocal", "{t} - off vocal -"),
        ("off-vocal", "{t} OffVocal"), ("off-vocal", "{t}OffVocal"), ("off-vocal", "{t} -Off Vo-"),
        ("off-vocal", "{t} [OFF VOCAL Ver.]"), ("off-vocal", "{t}(off vocal)"), ("off-vocal", "{t} ~off vocal~")),
    "st_cjk_without_vocals": (
        ("off-vocal", "{t} (ボーカルなし)"), ("off-vocal", "{t} (歌なし)"), ("off-vocal", "{t} (ボーカル無し)"),
        ("off-vocal", "{t}（ヴォーカルレス）"), ("off-vocal", "{t} (无人声版)"), ("off-vocal", "{t} (無人聲)"),
        ("off-vocal", "{t} (去人声)"), ("off-vocal", "{t} ～オフボーカル～"), ("off-vocal", "{t} (歌無しver.)")),
    "st_karaoke_forms": (
        ("karaoke", "{t} Original Karaoke"), ("karaoke", "{t} カラオケver"), ("karaoke", "{t}(カラオケver)"),
        ("karaoke", "{t} (カラオケバージョン)"), ("karaoke", "{t} オリジナル・カラオケ"),
        ("karaoke", "{t}（オリジナル・カラオケ）"), ("karaoke", "{t} (Original Karaoke)"), ("karaoke", "{t} -カラオケ-")),
    "st_inst_forms": (
        ("instrumental", "{t} インストver"), ("instrumental", "{t} (インストver.)"), ("instrumental", "{t} Inst"),
        ("instrumental", "{t}(inst)"), ("instrumental", "{t} (Instrumental Ver.)"), ("instrumental", "{t} -inst-"),
        ("instrumental", "{j}inst"), ("instrumental", "{j}インストver")),
}
# Labels that stand on the vocal track only (mix form, version form): the version says nothing of them.
_LABEL_FORMS = (("{t} (Full Chorus Ver.)", "{t} (Off Vocal)"), ("{t} (Full Ver.)", "{t} (Instrumental)"),
                ("{t} (Fullsize)", "{t} (Off Vocal)"), ("{t} [Full Size]", "{t} (Karaoke)"),
                ("{t} (Vocal Version)", "{t} (Instrumental)"), ("{t} (Vocals)", "{t} (Off Vocal)"),
                ("{t} (Piano Vocal ver.)", "{t} (Piano inst ver.)"), ("{t} -OP ver-", "{t} (Off Vocal)"),
                ("{t} (Opening Theme)", "{t} (Instrumental)"), ("{t} (ending theme)", "{t} (Off Vocal)"),
                ("{t} -ED ver.-", "{t} -off vocal-"), ("{t} (TV Size)", "{t} (TV Size) (Off Vocal)"),
                ("{t} (Game Size)", "{t} (Game Size) [Instrumental]"), ("{t} (Insert Song)", "{t} (Karaoke)"))
# File names: (mix form, version form); {n} and {m} are track numbers.
_FILE_FORMS = (("{n:02d} - {t}.mp3", "{m:02d} - {t} (Original Karaoke).mp3"),
               ("{n:02d}. {t}.flac", "{m:02d}. {t} (Off Vocal).flac"),
               ("{n:02d} {t}.m4a", "{m:02d} {t} (Instrumental).m4a"),
               ("{t}", "{m:02d} - {t} (Off Vocal).wav"),
               ("1-{n:02d} {t}.flac", "1-{m:02d} {t} (Karaoke).flac"),
               ("{n:02d} - {t}.mp3", "{t} (Off Vocal)"))
_VOICE_TRAPS = ("{t} (Voice Drama)", "{t} -Voice Drama-", "{t} (Drama Part)", "{t} (Voice Only Message)")

ST_PAIR_CATEGORIES = ("st_plain", "st_without_vocals", "st_off_vocal_forms", "st_cjk_without_vocals",
                      "st_karaoke_forms", "st_inst_forms", "st_inner_marker", "st_vocal_labels", "st_file_names",
                      "st_best_mix", "st_cross_album", "st_bside_remix", "st_sizes")
ST_TRAP_CATEGORIES = ("st_trap_size", "st_trap_numbered_sibling", "st_trap_bside_wrong_mix",
                      "st_trap_voice_words")
_SONG_CATEGORIES = ("st_plain", "st_without_vocals", "st_off_vocal_forms", "st_cjk_without_vocals",
                    "st_karaoke_forms", "st_inst_forms", "st_inner_marker", "st_vocal_labels", "st_file_names",
                    "st_sizes")


def make_soundtrack_catalog(n_rows: int, seed: int = 0, *, songs_per_album: float = 3.0,
                            franchise_share: float = 0.4) -> GeneratedCatalog:
    """A soundtrack-like catalog of about `n_rows` rows (whole-second durations) with planted truth.

    Args:
        n_rows: about this many rows (albums are added until the count is reached).
        seed: RNG seed; the same seed gives the same catalog.
        songs_per_album: mean number of vocal songs (with versions) per soundtrack album.
        franchise_share: share of franchises whose artist column is the franchise name (the rest put
            each album's title there).
    """
    rng = np.random.default_rng(seed)
    rows: list[tuple] = []  # track_id, artist, title, duration (true, s), genre, album
    truth: list[tuple] = []
    traps: list[tuple] = []
    ids = iter(f"s{i:09d}" for i in rng.permutation(np.arange(4 * n_rows + 100_000)))
    used_titles: set[str] = set()

    def add(artist: str, title: str, dur: float, album: str) -> str:
        tid = next(ids)
        rows.append((tid, artist, title, float(dur), "Soundtrack", album))
        return tid

    def near(d: float) -> float:  # a version's true duration: within 0.95 s of its mix
        return d + float(rng.uniform(-0.95, 0.95))

    def jp_title() -> str:
        for _ in range(50):
            a, b = rng.choice(len(_JP_WORDS), size=2, replace=False)
            t = _JP_WORDS[a] + _JP_LINKS[rng.integers(len(_JP_LINKS))] + _JP_WORDS[b]
            if rng.random() < 0.3:
                t += _JP_WORDS[rng.integers(len(_JP_WORDS))]
            if t not in used_titles:
                used_titles.add(t)
                return t
        t = t + _JP_WORDS[rng.integers(len(_JP_WORDS))] + str(len(used_titles))
        used_titles.add(t)
        return t

    def en_title() -> str:
        tag = _name(rng.integers(0, 40 ** 4, size=1), 4, _SYLLABLES)[0].split()[1]
        w = _WORDS[rng.integers(len(_WORDS))]
        t = f"{w.capitalize()} {tag}" if rng.random() < 0.5 else f"{tag} {w.capitalize()}"
        used_titles.add(t)
        return t

    def song_title() -> str:
        return jp_title() if rng.random() < 0.55 else en_title()

    def song_dur() -> float:
        return float(np.clip(rng.lognormal(np.log(250), 0.15), 170, 420))

    def tv_dur() -> float:
        return float(rng.uniform(86, 95))

    n_franchise = 0
    while len(rows) < n_rows:
        n_franchise += 1
        fname = _name(rng.integers(0, 40 ** 4, size=1), 4, _SYLLABLES)[0]
        fname = f"{fname.split()[0]} {rng.choice(['Quest', 'Chronicle', 'Stars', 'Academy', 'Idol Project', 'Fantasia'])}"
        franchise_mode = rng.random() < franchise_share

        def artist_of(album: str) -> str:
            return fname if franchise_mode else album

        # -- the soundtrack: BGM (same names repeated: "Battle" twice, "Stage 1".."Stage 3") and vocal songs
        ost = f"{fname} Original Soundtrack"
        a_ost = artist_of(ost)
        n_bgm = int(rng.integers(15, 45))
        for j in range(n_bgm):
            w = _BGM_WORDS[rng.integers(len(_BGM_WORDS))]
            title = w if rng.random() < 0.4 else f"{w} {rng.integers(1, 4)}" if rng.random() < 0.5 else f"{w} of {fname.split()[0]}"
            add(a_ost, title, rng.uniform(60, 240), ost)
        n_songs = int(rng.poisson(songs_per_album)) + 1
        for _ in range(n_songs):
            _plant_song(rng, add, near, song_title, song_dur, tv_dur, truth, traps, a_ost, ost, jp_title)
        # numbered siblings: "Stage 2 (Off Vocal)" beside "Stage 1" (the vocal "Stage 2" is on a single of
        # its own, another artist key when albums stand as artists)
        if rng.random() < 0.5:
            w = rng.choice(["Stage", "Chapter", "Episode", "Act", "Song", "Track"]) + " " + _WORDS[rng.integers(len(_WORDS))].capitalize()
            d = song_dur()
            k = int(rng.integers(1, 5))
            m1 = add(a_ost, f"{w} {k}", d, ost)
            v = add(a_ost, f"{w} {k + 1} (Off Vocal)", near(d), ost)
            traps.append((v, "st_trap_numbered_sibling", m1))
            if not franchise_mode:
                single = f"{w} {k + 1}"
                add(single, f"{w} {k + 1}", d + float(rng.uniform(-0.9, 0.9)), single)
        # a title with "voice" words that is not a version, beside its song, in the window
        if rng.random() < 0.3:
            t = song_title()
            d = song_dur()
            m = add(a_ost, t, d, ost)
            v = add(a_ost, _VOICE_TRAPS[rng.integers(len(_VOICE_TRAPS))].format(t=t), near(d), ost)
            traps.append((v, "st_trap_voice_words", m))

        # -- the same song on a single, a vocal collection and the soundtrack (franchise mode: one key)
        if franchise_mode:
            t = song_title()
            d = song_dur()
            albums = [f"{t} / {_SINGERS[rng.integers(len(_SINGERS))]}", f"{fname} Vocal Collection", ost]
            durs = [d + float(rng.uniform(-0.4, 0.4)) for _ in albums]  # one recording, as each album encodes it
            mixes = [add(fname, t, dd, al) for dd, al in zip(durs, albums)]
            k = int(rng.integers(len(albums)))
            kind, form = _PLAIN_FORMS[rng.integers(len(_PLAIN_FORMS))]
            v = add(fname, form.format(t=t), near(durs[k]), albums[k])
            truth.append((mixes[k], v, kind, "st_best_mix"))
        # a karaoke collection holds versions only: its version pairs across albums with the one
        # recording of its song (on a single of its own)
        if rng.random() < 0.6:
            t = song_title()
            d = song_dur()
            single = f"{t} / {_SINGERS[rng.integers(len(_SINGERS))]}"
            m = add(artist_of(single), t, d, single)
            kc = f"{fname} Karaoke Collection"
            kind, form = (("karaoke", "{t} (Karaoke)"), ("off-vocal", "{t} (Off Vocal)"),
                          ("karaoke", "{t} (Original Karaoke)"))[rng.integers(3)]
            if franchise_mode:
                v2 = add(fname, form.format(t=t), near(d), kc)
                truth.append((m, v2, kind, "st_cross_album"))
        # five singers' versions of one song of one length: one single each, "{t} / {singer}" as artist
        if rng.random() < 0.35:
            t = song_title()
            d = song_dur()
            singers = rng.choice(len(_SINGERS), size=5, replace=False)
            for s in singers.tolist():
                album = f"{t} / {_SINGERS[s]}"
                art = fname if franchise_mode else album
                dd = d + float(rng.uniform(-0.4, 0.4))
                m = add(art, t, dd, album)
                kind, form = _PLAIN_FORMS[rng.integers(len(_PLAIN_FORMS))]
                v = add(art, form.format(t=t), near(dd), album)
                truth.append((m, v, kind, "st_best_mix"))
        # a B-side remix single: its own album holds the remix (titled as the song), the soundtrack the
        # original, at a length within the window
        if franchise_mode and rng.random() < 0.5:
            t = song_title()
            d = song_dur()
            m_orig = add(fname, t, d, ost)
            remix_album = f"{t} (Remixes)"
            d_remix = d + float(rng.uniform(-0.9, 0.9))
            m_remix = add(fname, t, d_remix, remix_album)
            v = add(fname, f"{t} (Instrumental)", near(d_remix), remix_album)
            truth.append((m_remix, v, "instrumental", "st_bside_remix"))
            traps.append((v, "st_trap_bside_wrong_mix", m_orig))
            vo = add(fname, f"{t} (Off Vocal)", near(d), ost)
            truth.append((m_orig, vo, "off-vocal", "st_bside_remix"))
            traps.append((vo, "st_trap_bside_wrong_mix", m_remix))

    cat = pd.DataFrame(rows, columns=["track_id", "artist", "title", "duration", "genre", "album"])
    cat = cat.iloc[rng.permutation(len(cat))].reset_index(drop=True)
    cat["duration"] = np.maximum(np.round(cat["duration"].to_numpy()), 1.0)
    cat["audio_path"] = ""
    return GeneratedCatalog(
        catalog=cat,
        truth=pd.DataFrame(truth, columns=["mix_track_id", "version_track_id", "version_kind", "category"]),
        near_misses=pd.DataFrame(traps, columns=["version_track_id", "trap", "mix_track_id"]),
        duration_resolution_s=1.0,
    )


def _plant_song(rng, add, near, song_title, song_dur, tv_dur, truth, traps, artist, album, jp_title) -> None:
    """One vocal song of a soundtrack album and its version, in one of `_SONG_CATEGORIES`."""
    cat = _SONG_CATEGORIES[rng.integers(len(_SONG_CATEGORIES))]
    d = song_dur()
    if cat in _ST_FORMS:
        kind, form = _ST_FORMS[cat][rng.integers(len(_ST_FORMS[cat]))]
        t = jp_title() if "{j}" in form else song_title()
        m = add(artist, t, d, album)
        v = add(artist, form.format(t=t, j=t), near(d), album)
        truth.append((m, v, kind, cat))
    elif cat == "st_plain":
        t = song_title()
        kind, form = _PLAIN_FORMS[rng.integers(len(_PLAIN_FORMS))]
        m = add(artist, t, d, album)
        truth.append((m, add(artist, form.format(t=t), near(d), album), kind, cat))
    elif cat == "st_inner_marker":  # "Song (Instrumental Mix)area X" beside "Song area X"
        t = song_title()
        area = f"area {rng.integers(1, 10)}"
        m = add(artist, f"{t} {area}", d, album)
        word = rng.choice(["Instrumental Mix", "Off Vocal", "Instrumental", "Karaoke Ver."])
        kind = {"Instrumental Mix": "instrumental", "Off Vocal": "off-vocal", "Instrumental": "instrumental",
                "Karaoke Ver.": "karaoke"}[str(word)]
        truth.append((m, add(artist, f"{t} ({word}){area}", near(d), album), kind, cat))
    elif cat == "st_vocal_labels":
        t = song_title()
        mf, vf = _LABEL_FORMS[rng.integers(len(_LABEL_FORMS))]
        if "Size" in mf or "OP" in mf or "ED" in mf or "Opening" in mf or "ending" in mf:
            d = tv_dur()
        kind = ("off-vocal" if "vocal" in vf.lower() else "karaoke" if "Karaoke" in vf else "instrumental")
        m = add(artist, mf.format(t=t), d, album)
        truth.append((m, add(artist, vf.format(t=t), near(d), album), kind, cat))
    elif cat == "st_file_names":
        t = song_title()
        mf, vf = _FILE_FORMS[rng.integers(len(_FILE_FORMS))]
        n = int(rng.integers(1, 20))
        mm = n + int(rng.integers(1, 12))
        kind = ("karaoke" if "Karaoke" in vf else "off-vocal" if "Off Vocal" in vf else "instrumental")
        m = add(artist, mf.format(t=t, n=n), d, album)
        truth.append((m, add(artist, vf.format(t=t, m=mm), near(d), album), kind, cat))
    else:  # st_sizes: full and TV size, each with its off vocal; neither crosses to the other length
        t = song_title()
        dt = tv_dur()
        m_full = add(artist, t if rng.random() < 0.5 else f"{t} (Full Ver.)", d, album)
        m_tv = add(artist, f"{t} (TV Size)" if rng.random() < 0.5 else f"{t} -TV size-", dt, album)
        v_full = add(artist, f"{t} (Off Vocal)", near(d), album)
        v_tv_title = f"{t} (TV Size) (Off Vocal)" if rng.random() < 0.5 else f"{t} -TV size- (Instrumental)"
        v_tv = add(artist, v_tv_title, near(dt), album)
        truth.append((m_full, v_full, "off-vocal", cat))
        truth.append((m_tv, v_tv, "off-vocal" if v_tv_title.endswith("(Off Vocal)") else "instrumental", cat))
        traps.append((v_full, "st_trap_size", m_tv))
        traps.append((v_tv, "st_trap_size", m_full))
        # a game-size version whose game-size mix is not in the catalog: it must not take the TV size
        # (game size and TV size are different cuts) nor the full length
        if rng.random() < 0.5:
            vg = add(artist, f"{t} (Game Size) (Off Vocal)", dt + float(rng.uniform(-0.9, 0.9)), album)
            traps.append((vg, "st_trap_size", m_tv))
