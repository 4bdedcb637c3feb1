import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairminer.discover.text import VersionDetector, artist_key, fold, match_key, original_parts

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
    import time

    t = time.perf_counter()
    p = VersionDetector().parse(title)
    o = original_parts(title)
    assert time.perf_counter() - t < 0.5
    assert len(p.base) <= 1000 and len(o.base) <= 1000
    fold(title), match_key(title), artist_key(title)
