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
