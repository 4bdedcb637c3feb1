"""Catalog text printed on a terminal cannot drive it (issue 24, bug 12)."""

from __future__ import annotations

from pairminer.report.load import _text_table
from pairminer.termsafe import clean

EVIL = "Song\x1b]0;owned\x07\x1b[2J\x1b[8mhidden\u202eevil\x9b31m"


def test_control_characters_are_made_visible_and_text_is_kept():
    out = clean(EVIL)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0x202A <= ord(c) <= 0x202E for c in out)
    assert out.startswith("Song\\x1b]0;owned\\x07") and "\\u202e" in out and "hidden" in out
    assert clean("Ünïcödé 日本語 🎵") == "Ünïcödé 日本語 🎵"
    assert clean("a\nb") == "a\\nb" and clean("a\nb", newlines=True) == "a\nb"


def test_the_reports_terminal_tables_escape_catalog_text():
    table = _text_table(["genre", "pairs"], [[EVIL, "3"]], {1})
    assert "\x1b" not in table and "\u202e" not in table and "\\x1b[2J" in table
