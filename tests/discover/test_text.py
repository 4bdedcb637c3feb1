import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairminer.discover.text import MAX_TITLE_CHARS, VersionDetector, artist_key, fold, match_key, original_parts

ALL_KINDS = ("instrumental", "acapella", "karaoke", "off-vocal")


@pytest.mark.parametrize("title", [
    "Song - Instrumental", "Song (Instrumental)", "Song [Instrumental Version]", "Song - Instrumental Mix",
    "Song (Instrumental) - Remastered 2009", "Song (Instrumentals)", "Song (Inst.)", "Song - Inst.",
    "SONG (INSTRUMENTAL)", "Song – Instrumental", "Song {Instrumental}", "Song (feat. Bob) [Instrumental]",
])
def test_instrumental_forms_strip_to_the_original_key(title):
    m = VersionDetector().analyse(title)
    assert m.kind == "instrumental"
    assert m.match_title == "song"


@pytest.mark.parametrize("title,kind,key", [
    ("Canción (Instrumental)", "instrumental", "cancion"),
    ("夜に駆ける (Instrumental)", "instrumental", "夜に駆ける"),
    ("Song (A Cappella)", "acapella", "song"),
    ("Song - Acappella", "acapella", "song"),
    ("Song (Acapella Version)", "acapella", "song"),
    ("Song (Karaoke Version)", "karaoke", "song"),
    ("曲名 (オフボーカル)", "off-vocal", "曲名"),
    ("Song (Off Vocal)", "off-vocal", "song"),
    ("Song -off vocal ver.-", "off-vocal", "song"),
])
def test_other_kinds_and_unicode(title, kind, key):
    m = VersionDetector(kinds=ALL_KINDS).analyse(title)
    assert (m.kind, m.match_title) == (kind, key)


@pytest.mark.parametrize("title", ["Institute", "Instant Love", "Song (Live)", "Capella Road", "Vocal Point",
                                   "Song - Radio Edit", "Constant"])
def test_originals_are_not_versions(title):
    assert VersionDetector(kinds=ALL_KINDS).analyse(title).kind == ""


def test_kinds_not_requested_are_originals():
    assert VersionDetector(kinds=("instrumental",)).analyse("Song (Acapella)").kind == ""


def test_custom_keywords():
    d = VersionDetector(kinds=("instrumental",), keywords={"instrumental": ("backing track",)})
    assert d.analyse("Song (Backing Track)").kind == "instrumental"
    assert d.analyse("Song (Backing Track)").match_title == "song"
    assert d.analyse("Song (Instrumental)").kind == ""


@pytest.mark.parametrize("a,b", [("Song - Remastered 2009", "Song"), ("Song (Remastered)", "Song"),
                                 ("Song (feat. X)", "Song"), ("Song feat. X", "Song"), ("Song [Explicit]", "Song")])
def test_neutral_decorations_do_not_change_the_key(a, b):
    assert match_key(a) == match_key(b)


def test_qualifiers_are_classed_not_kept_in_the_base():
    live, radio = original_parts("Song (Live)"), original_parts("Song - Radio Edit")
    assert live.base == radio.base == match_key("Song") == "song"
    assert live.recording == ("live",) and live.edit == ()
    assert radio.recording == () and radio.edit == ("radio",)


@pytest.mark.parametrize("credit,key", [
    ("Daft Punk feat. Pharrell Williams", "daft punk"), ("Daft Punk ft. Pharrell", "daft punk"),
    ("Daft Punk featuring Pharrell", "daft punk"), ("Daft Punk with Nile", "daft punk"),
    ("Daft Punk & Nile", "daft punk"), ("Daft Punk x Nile", "daft punk"), ("Daft Punk, Nile", "daft punk"),
    ("DAFT PUNK", "daft punk"), ("The Beatles", "beatles"), ("Beyoncé", "beyonce"), ("Beyonce", "beyonce"),
])
def test_artist_key_is_the_primary_artist(credit, key):
    assert artist_key(credit) == key


def test_artist_id_wins():
    assert artist_key("Whatever", "A123") == "id:A123"


def test_fold_controls_and_width():
    assert fold("Ｈｅｌｌｏ\x00 World\u200b!") == "hello world"
    assert fold("") == ""


_DECORATIONS = ["{t} (Instrumental)", "{t} - Instrumental", "{t} [Instrumental Version]", "{t} - Instrumental Mix",
                "{t} (Instrumental) - Remastered 2009", "{t} (Inst.)", "{t} (Instrumentals)"]
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
_word = st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzéüñ日本語"), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(_text)
def test_fold_never_raises_and_is_idempotent(s):
    once = fold(s)
    assert fold(once) == once
    assert match_key(s) == match_key(s)
    VersionDetector(kinds=ALL_KINDS).analyse(s)
    artist_key(s)


@settings(max_examples=300, deadline=None)
@given(st.lists(_word, min_size=1, max_size=4), st.sampled_from(_DECORATIONS))
def test_decorated_title_strips_back_to_the_original_key(words, form):
    title = " ".join(words)
    d = VersionDetector()
    if d.kind_of(title):  # a word that is itself a keyword makes the original a version
        return
    m = d.analyse(form.format(t=title))
    assert m.kind == "instrumental"
    assert m.match_title == match_key(title)


# ---- the title model (issue 12): every version form, qualifiers, marker words, symbols ----

@pytest.mark.parametrize("title,kind", [
    ("Song (Instrumentale)", "instrumental"), ("Song (Version instrumentale)", "instrumental"),
    ("Song (Versión Instrumental)", "instrumental"), ("Song (Karaoke versie)", "karaoke"),
    ("Song (Backing Track)", "karaoke"), ("Song (Minus One)", "karaoke"), ("Song (Original Karaoke)", "karaoke"),
    ("Song (インスト)", "instrumental"), ("Song (伴奏)", "instrumental"), ("Song (纯音乐)", "instrumental"),
    ("Song (off vocal ver.)", "off-vocal"), ("SONG Instrumental", "instrumental"),
    ("Song Instrumental Version", "instrumental"), ("Song(Instrumental)", "instrumental"),
    ("Song[Off Vocal]", "off-vocal"), ("Song（Instrumental）", "instrumental"), ("Song (カラオケ)", "karaoke"),
    ("Song -off vocal ver.-", "off-vocal"),
])
def test_every_version_form_is_found_with_its_base(title, kind):
    p = VersionDetector().parse(title)
    assert (p.kind, p.base, p.recording) == (kind, "song", ())


@pytest.mark.parametrize("version,original", [
    ("Song (Instrumental - Sped Up)", "Song (Sped Up)"),
    ("Song (X Remix) [Instrumental]", "Song (X Remix)"),
    ("Song (X Instrumental)", "Song (X Remix)"),
    ("Song (X Instrumental)", "Song (X Mix)"),
    ("Song (Extended Instrumental)", "Song (Extended Mix)"),
    ('Song (12" Instrumental)', 'Song (12" Mix)'),
    ("Song - Instrumental Radio Edit", "Song - Radio Edit"),
    ("Song (Live) [Instrumental]", "Song (Live)"),
    ("Song - Instrumental", "Song - Radio Edit"),          # edit on one side: the window decides
    ("Song (Instrumental)", "Song (feat. X)"),             # credit on one side
    ("Song (feat. X) [Instrumental]", "Song"),
    ("Song (Instrumental) - Remastered 2009", "Song"),
])
def test_qualifiers_carry_over(version, original):
    v, o = VersionDetector().parse(version), original_parts(original)
    assert v.kind == "instrumental"
    assert (v.base, v.recording) == (o.base, o.recording)


@pytest.mark.parametrize("version,original", [
    ("Song (Instrumental - Sped Up)", "Song"), ("Song (X Remix) [Instrumental]", "Song"),
    ("Song (Live) [Instrumental]", "Song"), ("Song (Acoustic Instrumental)", "Song"),
    ("Song (Instrumental)", "Song (Live)"), ("Song - Demo Instrumental", "Song"),
    ("Song (X Remix) [Instrumental]", "Song (Y Remix)"),
])
def test_recording_qualifiers_must_agree(version, original):
    v, o = VersionDetector().parse(version), original_parts(original)
    assert v.base == o.base and v.recording != o.recording


@pytest.mark.parametrize("title", ["Instrumental", "Karaoke", "Acapella", "Off Vocal", "放課後カラオケ", "カラオケ大好き",
                                   "Instrumental Love", "Karaoke Night", "Inst", "A Cappella", "(Instrumental)"])
def test_songs_named_after_a_marker_word_are_originals(title):
    assert VersionDetector().parse(title).kind == ""


@pytest.mark.parametrize("title,base", [("$$$", "$$$"), ("!!!", "!!!"), ("♡♡♡", "♡♡♡"), ("...", "...")])
def test_symbol_only_titles_keep_their_raw_characters(title, base):
    assert original_parts(title).base == base
    v = VersionDetector().parse(f"{title} - Instrumental")
    assert (v.kind, v.base) == ("instrumental", base)
    assert original_parts("$$$").base != original_parts("!!!").base


@pytest.mark.parametrize("a,b", [("≠ME", "ME"), ("=LOVE", "LOVE"), ("-", "&"), ("!!!", "???"), ("$", "¥"),
                                 ("+/-", "-/+")])
def test_symbol_artists_do_not_collapse(a, b):
    ka, kb = artist_key(a), artist_key(b)
    assert ka and kb and ka != kb


def test_punctuation_only_artists_have_distinct_non_empty_keys():
    keys = [artist_key(a) for a in ["-", "&", "!!!", "...", "???", "*"]]
    assert all(keys) and len(set(keys)) == len(keys)


@pytest.mark.parametrize("title", [
    "\u0301\u0302\u0303", "🔥🔥🔥", "\u200b\u200c\u200d", "\u202e\u202d\u2066", "\ufeff", "x" * 10_000,
    "(" * 5000 + ")" * 5000, "- " * 5000, "Song " + "(Instrumental) " * 2000, "🎵 (Instrumental)",
])
def test_bad_titles_never_raise_and_stay_bounded(title):
    # their parse time is benchmarks/bench_bounds.py's
    p = VersionDetector().parse(title)
    o = original_parts(title)
    assert len(p.base) <= MAX_TITLE_CHARS and len(o.base) <= MAX_TITLE_CHARS
    fold(title), match_key(title), artist_key(title)


# --- soundtrack catalogs: more ways to write a version, labels on the vocal track only, file names ---

@pytest.mark.parametrize("title,kind", [
    ("Song (Vocalless)", "off-vocal"), ("Song (Without Vocals)", "off-vocal"), ("Song (without vocal)", "off-vocal"),
    ("Song [No Vocal]", "off-vocal"), ("Song (Voiceless)", "off-vocal"), ("Song - Without Voice", "off-vocal"),
    ("Song (No Voice Ver.)", "off-vocal"), ("Song (no voice)", "off-vocal"),
    ("Song (OffVocal)", "off-vocal"), ("Song (Off Vo.)", "off-vocal"), ("Song - off vocal -", "off-vocal"),
    ("Song OffVocal", "off-vocal"), ("SongOffVocal", "off-vocal"), ("Song -Off Vo-", "off-vocal"),
    ("Song [OFF VOCAL Ver.]", "off-vocal"), ("Song ~off vocal~", "off-vocal"),
    ("Song Original Karaoke", "karaoke"), ("Song (Original Karaoke)", "karaoke"),
    ("Song (Instrumental Mix)area 3", "instrumental"), ("Song Inst", "instrumental"), ("Song(inst)", "instrumental"),
])
def test_soundtrack_latin_forms(title, kind):
    p = VersionDetector().parse(title)
    want = original_parts("Song area 3" if "area" in title else "Song")
    assert (p.kind, p.base, p.recording) == (kind, want.base, ())


@pytest.mark.parametrize("title,kind", [
    ("夢の約束 (ボーカルなし)", "off-vocal"), ("夢の約束 (歌なし)", "off-vocal"), ("夢の約束 (ボーカル無し)", "off-vocal"),
    ("夢の約束（ヴォーカルレス）", "off-vocal"), ("夢の約束 (无人声版)", "off-vocal"), ("夢の約束 (無人聲)", "off-vocal"),
    ("夢の約束 (去人声)", "off-vocal"), ("夢の約束 (歌無しver.)", "off-vocal"), ("夢の約束 ～オフボーカル～", "off-vocal"),
    ("夢の約束 カラオケver", "karaoke"), ("夢の約束(カラオケver)", "karaoke"), ("夢の約束 (カラオケバージョン)", "karaoke"),
    ("夢の約束 オリジナル・カラオケ", "karaoke"), ("夢の約束（オリジナル・カラオケ）", "karaoke"),
    ("夢の約束 インストver", "instrumental"), ("夢の約束 (インストver.)", "instrumental"), ("夢の約束inst", "instrumental"),
    ("夢の約束インストver", "instrumental"), ("夢の約束カラオケver", "karaoke"), ("Blue Skyカラオケ", "karaoke"),
])
def test_soundtrack_japanese_and_chinese_forms(title, kind):
    p = VersionDetector().parse(title)
    base = "blue sky" if title.startswith("Blue") else "夢の約束"
    assert (p.kind, p.base) == (kind, base)


@pytest.mark.parametrize("title", [
    "No Voice", "Voiceless", "Without Vocals", "Heart No Voice", "Song Without Vocals", "Dream Voiceless",
    "放課後カラオケ", "カラオケ大好き", "Offline", "Coffee Off", "Song (Voice Drama)", "Song -Voice Drama-",
    "Song (Drama Part)", "Songinst", "Constant", "Song (Vocal Mix)", "19 - 2000",
])
def test_soundtrack_look_alikes_are_originals(title):
    assert VersionDetector().parse(title).kind == ""


@pytest.mark.parametrize("original", [
    "Song (Full Chorus Ver.)", "Song (Full Ver.)", "Song (Fullsize)", "Song [Full Size]", "Song (Vocal Version)",
    "Song (Vocals)", "Song -OP ver-", "Song (Opening Theme)", "Song (ending theme)", "Song -ED ver.-",
    "Song (Insert Song)", "Song (TV Size)", "Song (Game Size)",
])
def test_labels_on_the_vocal_track_only_leave_the_recording_alone(original):
    o = original_parts(original)
    assert o.base == "song" and o.recording == ()


def test_piano_vocal_and_piano_inst_are_one_recording():
    v, o = VersionDetector().parse("Song (Piano inst ver.)"), original_parts("Song (Piano Vocal ver.)")
    assert v.kind == "instrumental" and (v.base, v.recording) == (o.base, o.recording) == ("song", ("piano",))


@pytest.mark.parametrize("a,b,conflict", [
    ("tv size", "full", True), ("tv size", "game size", True), ("tv size", "", False), ("full", "", False),
    ("tv size", "tv size", False), ("short", "tv size", False), ("radio", "full", False), ("movie size", "full", True),
])
def test_named_lengths_conflict(a, b, conflict):
    from pairminer.discover.text import sizes_conflict

    assert sizes_conflict(a, b) is conflict and sizes_conflict(b, a) is conflict


@pytest.mark.parametrize("version,original", [
    ("03 - Song (Original Karaoke).mp3", "01 - Song.mp3"), ("04. Song (Off Vocal).flac", "02. Song.flac"),
    ("12 Song (Instrumental).m4a", "11 Song.m4a"), ("1-04 Song (Karaoke).flac", "1-03 Song.flac"),
    ("05 - Song (Off Vocal).wav", "Song"), ("Song (Off Vocal)", "07 - Song.MP3"),
])
def test_file_names_lose_track_numbers_and_extensions(version, original):
    v, o = VersionDetector().parse(version), original_parts(original)
    assert v.kind and v.base == o.base == "song"


def test_track_numbers_stay_without_an_extension():
    from pairminer.discover.text import strip_file_name

    assert original_parts("19 - 2000").base == "19"  # a dash segment, as before: not a file name
    assert strip_file_name("7 Rings") == "7 Rings" and strip_file_name(".mp3") == ".mp3"
    assert strip_file_name("7 Rings.mp3") == "Rings" and strip_file_name("01 - 1979.flac") == "1979"
