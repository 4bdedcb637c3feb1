"""Title and artist normalisation, version keyword detection and stripping.

Everything here is pure Python over single strings (plus a vectorised pre-filter in `prefilter_mask`) so
it is easy to test and safe to call from Dask workers. Outputs of pairminer keep the original text;
these normalised forms are only used for matching.

Normal form (`fold`): Unicode NFKC, case folding, Latin/Greek/Cyrillic accents removed (the combining
marks U+0300-U+036F after NFKD, so Japanese voiced marks are kept), every run of characters that are
not letters or digits collapsed to one space, trimmed.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Mapping

# Default version keywords per kind, as written by people; they are folded like titles before use.
DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "instrumental": ("instrumental", "instrumentals", "inst", "instr"),
    "acapella": ("acapella", "a cappella", "acappella", "a capella", "accapella", "acapela", "a capela"),
    "karaoke": ("karaoke",),
    "off-vocal": ("off vocal", "offvocal", "オフボーカル", "オフ ボーカル"),
}
DEFAULT_KINDS: tuple[str, ...] = ("instrumental",)

# Words that often trail a version keyword inside its decoration ("Instrumental Version", "Inst. Mix").
_TRAILERS = ("version", "ver", "mix", "edit", "track", "only", "take")

# Decorations that do not change the recording, removed from both sides before scoring.
_NEUTRAL_DECORATION = re.compile(
    r"^(?:(?:\d{4} )?(?:digital(?:ly)? )?re ?master(?:ed)?(?: version)?(?: \d{4})?(?: version)?"
    r"|(?:feat|ft|featuring|with) .+|explicit(?: version)?|clean(?: version)?|album version|single version"
    r"|original version|from .+ soundtrack|bonus track)$"
)

_BRACKETS = {"(": ")", "[": "]", "{": "}", "（": "）", "【": "】", "「": "」", "〔": "〕", "『": "』"}
_OPEN = "".join(re.escape(c) for c in _BRACKETS)
_GROUP_RE = re.compile(
    "|".join(rf"{re.escape(o)}[^{re.escape(o)}{re.escape(c)}]*{re.escape(c)}" for o, c in _BRACKETS.items())
)
_DASH_SPLIT_RE = re.compile(r"\s+[-–—~]\s+|\s*[–—]\s*|\s+-(?=\S)|(?<=\S)-\s+")
_FEAT_IN_TITLE_RE = re.compile(r"\s(?:feat\.?|ft\.?|featuring)\s.*$", re.IGNORECASE)
_NON_WORD_RE = re.compile(r"[\W_]+", re.UNICODE)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_ARTIST_SPLIT_RE = re.compile(
    r"\s+(?:feat\.?|ft\.?|featuring|with|x|vs\.?|versus)\s+|\s*[&,;/+]\s*|\s*\((?:feat|ft)\.?\s",
    re.IGNORECASE,
)
_LEADING_THE_RE = re.compile(r"^the ")


def _strip_accents(s: str) -> str:
    decomposed = unicodedata.normalize("NFKD", s)
    stripped = "".join(ch for ch in decomposed if not ("\u0300" <= ch <= "\u036f"))
    return unicodedata.normalize("NFC", stripped)


@functools.lru_cache(maxsize=1 << 18)
def fold(s: str) -> str:
    """The normal form used for matching. Never raises on any str; idempotent.

    >>> fold("  Canción  (Instrumental)! ")
    'cancion instrumental'
    """
    if not s:
        return ""
    if s.isascii():
        # ASCII fast path: NFKC and accent folding change nothing, casefold is lower().
        return _NON_WORD_RE.sub(" ", s.lower()).strip()
    s = _CONTROL_RE.sub(" ", s)
    s = unicodedata.normalize("NFKC", s).casefold()
    s = _strip_accents(s)
    s = _NON_WORD_RE.sub(" ", s).strip()
    # A second NFKC+casefold pass makes the function idempotent for the rare characters whose case
    # folding produces a non-normalised sequence.
    return unicodedata.normalize("NFKC", s).casefold().strip()


@dataclass(frozen=True)
class VersionMatch:
    kind: str  # "" for an original
    match_title: str  # folded title with version (and neutral) decorations stripped


@dataclass(frozen=True)
class VersionDetector:
    """Finds version keywords in titles and strips their decoration.

    Args:
        kinds: the kinds looked for, in priority order (the first that matches wins).
        keywords: kind -> keyword phrases; missing kinds use `DEFAULT_KEYWORDS`.
    """

    kinds: tuple[str, ...] = DEFAULT_KINDS
    keywords: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_KEYWORDS))

    def __post_init__(self) -> None:
        folded: dict[str, tuple[str, ...]] = {}
        for kind in self.kinds:
            words = self.keywords.get(kind) or DEFAULT_KEYWORDS.get(kind)
            if not words:
                raise ValueError(f"no keywords for version kind {kind!r}")
            folded[kind] = tuple(sorted({fold(w) for w in words if fold(w)}, key=len, reverse=True))
        object.__setattr__(self, "_folded", folded)
        patterns = {
            kind: re.compile(r"(?:^| )(?:" + "|".join(re.escape(w) for w in ws) + r")(?= |$)")
            for kind, ws in folded.items()
        }
        object.__setattr__(self, "_patterns", patterns)
        trailer = "|".join(_TRAILERS)
        strip_patterns = {
            kind: re.compile(
                r"(?:^| )(?:" + "|".join(re.escape(w) for w in ws) + rf")(?: (?:{trailer}))*(?= |$)"
            )
            for kind, ws in folded.items()
        }
        object.__setattr__(self, "_strip_patterns", strip_patterns)

    def prefilter_tokens(self) -> list[str]:
        """ASCII tokens such that any ASCII title with a keyword contains one of them (lower-cased).

        Folding an ASCII string only lower-cases it and turns punctuation into spaces, so every
        alphanumeric token of a folded keyword appears verbatim in the lower-cased raw title.
        """
        tokens = set()
        for ws in self._folded.values():  # type: ignore[attr-defined]
            for w in ws:
                ascii_tokens = [t for t in w.split() if t.isascii()]
                if ascii_tokens:
                    tokens.add(max(ascii_tokens, key=len))
        return sorted(tokens)

    def kind_of(self, title: str) -> str:
        """The version kind found in `title`, or "" for an original."""
        f = fold(title)
        for kind in self.kinds:
            if self._patterns[kind].search(f):  # type: ignore[attr-defined]
                return kind
        return ""

    def _has_kind(self, text: str, kind: str) -> bool:
        return bool(self._patterns[kind].search(fold(text)))  # type: ignore[attr-defined]

    def analyse(self, title: str) -> VersionMatch:
        """Kind and match title of a raw title. Never raises; `match_title` is folded."""
        kind = self.kind_of(title or "")
        if not kind:
            return VersionMatch("", match_key(title or ""))
        return VersionMatch(kind, match_key(self.strip(title, kind)))

    def strip(self, title: str, kind: str) -> str:
        """Remove the decoration that carries the `kind` keyword from a raw title."""
        out = title
        # 1) a bracket group holding the keyword: "Song (Instrumental)", "Song [Instrumental Version]"
        for g in _GROUP_RE.findall(out):
            if self._has_kind(g[1:-1], kind):
                out = out.replace(g, " ", 1)
        if self._has_kind(out, kind):
            # 2) a dash segment holding it: "Song - Instrumental Mix"
            parts = _DASH_SPLIT_RE.split(out)
            if len(parts) > 1:
                kept = [p for p in parts if not self._has_kind(p, kind)]
                if kept:
                    out = " - ".join(kept)
        if self._has_kind(out, kind):
            # 3) the bare keyword and its trailing words: "Song Instrumental", "Inst. Song"
            out = self._strip_patterns[kind].sub(" ", fold(out))  # type: ignore[attr-defined]
        return out


_MAYBE_DECORATED = re.compile(r"[-–—~(\[{（【「〔『]|\s(?:feat|ft|featuring)\b", re.IGNORECASE)


def _strip_neutral(title: str) -> str:
    """Remove decorations that do not change the recording: remasters, featured artists, explicit..."""
    if not _MAYBE_DECORATED.search(title):
        return title
    out = title
    for g in _GROUP_RE.findall(out):
        if _NEUTRAL_DECORATION.match(fold(g[1:-1])):
            out = out.replace(g, " ", 1)
    parts = _DASH_SPLIT_RE.split(out)
    if len(parts) > 1:
        kept = [parts[0]] + [p for p in parts[1:] if not _NEUTRAL_DECORATION.match(fold(p))]
        out = " - ".join(kept)
    return _FEAT_IN_TITLE_RE.sub(" ", out)


@functools.lru_cache(maxsize=1 << 18)
def match_key(title: str) -> str:
    """Folded title with neutral decorations removed; what two titles are scored on."""
    key = fold(_strip_neutral(title))
    # If stripping ate everything (a title that *is* a decoration), fall back to the plain fold.
    return key or fold(title)


@functools.lru_cache(maxsize=1 << 18)
def artist_key(artist: str, artist_id: str | None = None) -> str:
    """Blocking key of an artist credit: `id:<artist_id>` when given, else the folded primary artist.

    The primary artist is the credit before "feat.", "ft.", "featuring", "with", "x", "vs", "&", ",".
    A leading "the " is dropped. Never raises.
    """
    if artist_id:
        return "id:" + str(artist_id).strip()
    raw = _CONTROL_RE.sub(" ", artist or "")
    raw = unicodedata.normalize("NFKC", raw)
    primary = _ARTIST_SPLIT_RE.split(raw, maxsplit=1)[0]
    key = _LEADING_THE_RE.sub("", fold(primary))
    return key or fold(raw)


def fold_many(values: Iterable[str]) -> list[str]:
    return [fold(v) for v in values]
