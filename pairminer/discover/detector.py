"""The version detector: which keyword kinds a title carries, where they are written (the keyword tables'
compiled patterns). `pairminer.discover.text.parse_title` uses it; `text` re-exports it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from .text import (DEFAULT_KEYWORDS, DEFAULT_KINDS, TitleParts, VersionMatch, _DECORATION_ONLY_FOLDED,
                    _FEAT_IN_TITLE_RE, _INNER_GROUP_RE, _MAX_RAW_CHARS, _TRAILERS, fold,
                    original_parts, parse_title)


@dataclass(frozen=True)
class VersionDetector:
    """Finds version markers in titles; the title model (`parse_title`) uses it.

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
        trailer = "|".join(re.escape(t) for t in _TRAILERS)
        # A marker inside a decoration: the keyword with the form words around it ("version instrumentale",
        # "karaoke versie", "off vocal ver").
        # Form words may be glued to the keyword ("カラオケver", "カラオケバージョン", "无人声版").
        patterns = {
            kind: re.compile(rf"(?:^| )(?:(?:{trailer}) )*(?:" + "|".join(re.escape(w) for w in ws)
                             + rf")(?: ?(?:{trailer}))*(?= |$)")
            for kind, ws in folded.items()
        }
        object.__setattr__(self, "_patterns", patterns)
        object.__setattr__(self, "_any", re.compile("|".join(f"(?:{p.pattern})" for p in patterns.values())))
        # A bare marker at the end: the shortest base before the longest marker ("song original karaoke" is
        # "song" + "original karaoke"); words that are also ordinary title words do not count here.
        bare = {kind: [w for w in ws if w not in _DECORATION_ONLY_FOLDED] for kind, ws in folded.items()}
        trailing = {
            kind: re.compile(r"^(.*?\S) (?:" + "|".join(re.escape(w) for w in ws) + rf")(?: ?(?:{trailer}))*$")
            for kind, ws in bare.items() if ws
        }
        object.__setattr__(self, "_trailing", trailing)
        last = {w.split()[-1] for ws in bare.values() for w in ws}
        last |= {w + t for w in last for t in _TRAILERS} | set(_TRAILERS)
        object.__setattr__(self, "_last_tokens", frozenset(last))
        # Glued to the title: a Latin marker after a non-Latin character ("夜に駆けるinst"), a Japanese or
        # Chinese marker after a Latin one ("Songカラオケ"), a Japanese/Chinese marker with its form word
        # glued to a Japanese title ("曲名インストver"); a bare CJK marker glued to CJK text is a word
        # ("放課後カラオケ"). On the raw title: "SongOffVocal" (a capital after a lower-case letter).
        glued = {}
        for kind, ws in bare.items():
            latin = [re.escape(w) for w in ws if w.isascii()]
            cjk = [re.escape(w) for w in ws if not w.isascii() and " " not in w]
            alts = []
            if latin:
                alts.append(rf"^(.*[^\x00-\x7f])(?:{'|'.join(latin)})(?: ?(?:{trailer}))*$")
            if cjk:
                alts.append(rf"^(.*[a-z0-9])(?:{'|'.join(cjk)})(?: ?(?:{trailer}))*$")
                alts.append(rf"^(.*\S)(?:{'|'.join(cjk)})(?: ?(?:{trailer}))+$")
            if alts:
                glued[kind] = [re.compile(a) for a in alts]
        object.__setattr__(self, "_glued", glued)
        camel = {kind: re.compile(r"^(.*[a-z])(?:" + "|".join(
            "".join(p.capitalize() for p in w.split()) for w in ws if w.isascii() and len(w) >= 4) + r")$")
            for kind, ws in bare.items() if any(w.isascii() and len(w) >= 4 for w in ws)}
        object.__setattr__(self, "_camel", camel)
        object.__setattr__(self, "_cache", {})

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

    def take_marker(self, folded: str) -> tuple[str, str]:
        """(kind, the decoration without its markers) for one folded decoration; ("", folded) if none."""
        for kind in self.kinds:
            if self._patterns[kind].search(folded):  # type: ignore[attr-defined]
                rest = self._any.sub(" ", folded)  # type: ignore[attr-defined]
                return kind, " ".join(rest.split())
        return "", folded

    def take_trailing_marker(self, folded: str) -> tuple[str, str]:
        """(kind, base) for a folded title ending with a bare marker after something ("song instrumental")."""
        if folded.rpartition(" ")[2] not in self._last_tokens:  # type: ignore[attr-defined]
            return "", folded
        for kind in self.kinds:
            m = self._trailing[kind].match(folded)  # type: ignore[attr-defined]
            if m:
                return kind, m.group(1)
        return "", folded

    def take_glued_marker(self, raw_head: str, folded: str) -> tuple[str, str]:
        """(kind, base) for a marker glued to the title ("夜に駆けるinst", "曲名カラオケver", "SongOffVocal")."""
        if not folded:
            return "", folded
        last = folded.rpartition(" ")[2]
        if not last.isascii():
            for kind in self.kinds:
                for rx in self._glued.get(kind, ()):  # type: ignore[attr-defined]
                    m = rx.match(folded)
                    if m and fold(m.group(1)):
                        return kind, fold(m.group(1))
        elif raw_head.rstrip()[-1:].isalpha():
            head = raw_head.rstrip()
            for kind in self.kinds:
                rx = self._camel.get(kind)  # type: ignore[attr-defined]
                m = rx.match(head) if rx is not None else None
                if m and fold(m.group(1)):
                    return kind, fold(_FEAT_IN_TITLE_RE.sub(" ", m.group(1))) or fold(m.group(1))
        return "", folded

    def take_inner_group(self, raw_head: str) -> tuple[str, str, str]:
        """(kind, base, the group's other words) for a marker in a bracket group that is not at the end
        ("Song (Instrumental Mix)area 3": base "song area 3"); ("", "", "") if none."""
        for m in reversed(list(_INNER_GROUP_RE.finditer(raw_head[:_MAX_RAW_CHARS]))):
            if m.start() == 0:
                continue
            k, rest = self.take_marker(fold(m.group(0)))
            if k:
                base = fold(raw_head[: m.start()] + " " + raw_head[m.end():])
                if base:
                    return k, base, rest
        return "", "", ""

    def parse(self, title: str) -> TitleParts:
        cache = self._cache  # type: ignore[attr-defined]
        got = cache.get(title)
        if got is None:
            if len(cache) > 1 << 17:
                cache.clear()
            got = cache[title] = parse_title(title, self)
        return got

    def kind_of(self, title: str) -> str:
        """The version kind found in `title`, or "" for an original."""
        return self.parse(title or "").kind

    def analyse(self, title: str) -> VersionMatch:
        """Kind, base title and qualifier keys of a raw title. Never raises."""
        p = self.parse(title or "")
        if not p.kind:
            o = original_parts(title or "")
            return VersionMatch("", o.base, o.recording_key, o.edit_key)
        return VersionMatch(p.kind, p.base, p.recording_key, p.edit_key)
