"""Catalog text on a terminal: control characters made visible, so a title cannot drive the terminal.

A catalog is untrusted input. An ESC (or any C0/C1 control character, DEL, or a bidirectional
override) in a title printed raw can set the window title, clear the screen, hide text or reorder
what the reader sees. `clean` replaces each such character with its escape (``\\x1b``, ``\\u202e``);
everything printable, including non-Latin scripts and emoji, is kept as it is.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, C1 controls, and the bidi embeddings/overrides/isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def clean(text: object, *, newlines: bool = False) -> str:
    """`text` as a string safe to print on a terminal (newlines escaped too unless `newlines`)."""
    s = "" if text is None else str(text)
    out = _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), s)
    if not newlines:
        out = out.replace("\n", "\\n").replace("\t", "\\t")
    return out
