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
from dataclasses import dataclass
from typing import Iterable

# Default version keywords per kind, as written by people; they are folded like titles before use.
DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "instrumental": ("instrumental", "instrumentals", "inst", "instr", "instrumentale", "instrumentaal",
                     "instrumentalversion", "インスト", "インストゥルメンタル", "伴奏", "纯音乐", "純音樂", "純音楽",
                     "伴奏版", "경음악", "inst ver", "纯伴奏", "純伴奏"),
    "acapella": ("acapella", "a cappella", "acappella", "a capella", "accapella", "acapela", "a capela",
                 "アカペラ", "清唱", "vocals only", "vocal only"),
    "karaoke": ("karaoke", "backing track", "minus one", "カラオケ", "卡拉ok", "伴唱", "노래방", "original karaoke",
                "オリジナル カラオケ", "オリジナルカラオケ"),
    "off-vocal": ("off vocal", "offvocal", "オフボーカル", "オフ ボーカル", "オフヴォーカル", "off vo", "vocalless",
                  "vocal less", "without vocal", "without vocals", "no vocal", "no vocals", "voiceless",
                  "without voice", "no voice", "ボーカルなし", "ボーカル無し", "ヴォーカルなし", "ヴォーカル無し", "歌なし",
                  "歌無し", "ボーカルレス", "ヴォーカルレス", "无人声", "無人聲", "去人声", "去人聲"),
}
# Keywords that are also ordinary words of a title ("No Voice", "Voiceless"): a marker only inside a
# decoration ("Song (No Voice)", "Song - Without Vocals"), never as a bare word at the end of a title.
DECORATION_ONLY_KEYWORDS = frozenset({"without vocal", "without vocals", "no vocal", "no vocals", "voiceless",
                                      "without voice", "no voice", "vocal less"})
DEFAULT_KINDS: tuple[str, ...] = ("instrumental", "acapella", "karaoke", "off-vocal")

# Words that often trail a version keyword inside its decoration ("Instrumental Version", "Inst. Mix").
_TRAILERS = ("version", "versie", "versao", "versione", "ver", "mix", "track", "only", "take", "バージョン",
             "ヴァージョン", "版")

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


_DECORATION_ONLY_FOLDED: frozenset[str] = frozenset()  # filled below, once `fold` exists


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


_DECORATION_ONLY_FOLDED = frozenset(fold(w) for w in DECORATION_ONLY_KEYWORDS)

# ---------------------------------------------------------------------------------------------
# The title model: base title + version marker + qualifiers (neutral / edit / recording).

MAX_TITLE_CHARS = 1000  # base titles are cut to this many characters (decorations are read at the end first)
_MAX_RAW_CHARS = 100_000

NEUTRAL, EDIT, RECORDING = "neutral", "edit", "recording"

# Qualifiers that do not change the recording: credits, remasters, explicit/clean, bonus, soundtrack.
_NEUTRAL_RE = re.compile(
    r"^(?:(?:\d{4} )?(?:digital(?:ly)? )?re ?master(?:ed)?(?: version| edition)?(?: \d{4})?(?: version)?"
    r"|(?:\d{4} )?(?:digital )?remaster"
    r"|(?:feat|ft|featuring|with|prod|prod by|produced by|starring) .+|explicit(?: version)?|clean(?: version)?"
    r"|original|original version|from .+|bonus(?: track)?|bonus track version|deluxe(?: edition| version)?"
    r"|official(?: audio| video)?|audio|explicit content|album|single|new version|remasterizado|remasterisé"
    # labels that stand on the vocal track only: a version says nothing of them
    r"|(?:with )?vocals?(?: (?:version|ver|mix))?|ボーカル(?: ?(?:バージョン|ver))?"
    r"|(?:tv |anime |game )?(?:op|ed|opening|ending)(?: theme| song)?(?: (?:version|ver))?"
    r"|(?:insert|theme|image|character) song|main theme|主題歌|挿入歌|イメージソング|キャラクターソング"
    r"|(?:オープニング|エンディング)(?: ?テーマ)?)$"
)
# Edit qualifiers: the same recording cut or versioned differently; allowed on one side alone.
_EDIT_PHRASE_RE = re.compile(
    r"(?:^| )(?:(?:radio|single|album|tv|short|long|full|clean|dj|club|original|ep|lp|mono|stereo|game|movie"
    r"|anime) (?:edit|version|ver|mix|cut|size)|extended(?: (?:version|mix|edit|cut))?"
    r"|full(?: chorus| length| size)(?: (?:version|ver|edit))?|fullsize(?: (?:version|ver))?"
    r"|(?:7|12)(?: inch)?(?: (?:version|mix|edit))?"
    r"|edit|short|tv size|radio|mono|stereo)(?= |$)"
)
# Words that name the form of a qualifier, not its content ("Nova Remix" = "Nova Mix" = "Nova").
_FORM_WORDS = frozenset({"remix", "rmx", "mix", "version", "ver", "versie", "edit", "rework", "bootleg", "vip",
                         "vocal", "vocals"})  # "Piano Vocal ver." is the "Piano" recording, as "Piano inst ver."
_SYNONYMS = {"speed up": "sped up", "sped": "sped up", "slowed down": "slowed", "slow": "slowed",
             "reverb": "reverb", "acoustic version": "acoustic", "unplugged": "acoustic"}

_OPENERS = "([{<（【「〔『"
_CLOSERS = ")]}>）】」〕』"
_LAST_GROUP_RE = re.compile(f"[{re.escape(_OPENERS)}][^{re.escape(_OPENERS + _CLOSERS)}]*[{re.escape(_CLOSERS)}]$")
_SEP_RE = re.compile(r"\s+[-–—~]\s+|\s*[–—]\s*")
_LAST_SEP_RE = re.compile(r"(?s).*(\s+[-–—~]\s+|\s*[–—]\s*)")  # greedy: the last separator
_HAS_SEP_CHARS = re.compile(r"[-–—~]")
_MAYBE_DECORATED_CHARS = frozenset(_OPENERS + _CLOSERS + "-–—~")
# Titles that are file names: "03 - Song (Off Vocal).mp3", "1-03 Song.flac". The extension and the
# leading track number (only when there is an extension) are not part of the title.
AUDIO_EXTENSIONS = ("mp3", "flac", "wav", "m4a", "aac", "ogg", "oga", "opus", "wma", "aif", "aiff", "ape", "alac",
                    "mp4", "wv", "dsf", "tta")
_FILE_EXT_RE = re.compile(r"\.(?:" + "|".join(AUDIO_EXTENSIONS) + r")\s*$", re.IGNORECASE)
_TRACK_NO_RE = re.compile(r"^\s*(?:\d{1,2}[-.])?\d{1,3}(?:\s*[-–—._)]\s*|\s+)(?=\S)")
# A non-trailing bracket group ("Song (Instrumental Mix)area 3"): searched for a marker when no other is found.
_INNER_GROUP_RE = re.compile(f"[{re.escape(_OPENERS)}][^{re.escape(_OPENERS + _CLOSERS)}]*[{re.escape(_CLOSERS)}]")
_SIZE_CLASSES = (("tv", re.compile(r"\b(?:tv|short)\b")), ("game", re.compile(r"\bgame\b")),
                 ("movie", re.compile(r"\bmovie\b")), ("full", re.compile(r"\bfull")))


def strip_file_name(title: str) -> str:
    """A title without the extension and the leading track number of a file name ("03 - Song.mp3" ->
    "Song"); other titles unchanged. The number goes only with an extension ("19 - 2000" is a title)."""
    m = _FILE_EXT_RE.search(title)
    if m is None or m.start() == 0:
        return title
    head = title[: m.start()]
    stripped = _TRACK_NO_RE.sub("", head, count=1)
    return stripped if stripped.strip() else head


@functools.lru_cache(maxsize=4096)
def size_class(edit_key: str) -> str:
    """The length a title's edit qualifiers name: "tv" (TV size, short), "game", "movie", "full", or ""."""
    if not edit_key:
        return ""
    for name, rx in _SIZE_CLASSES:
        if rx.search(edit_key):
            return name
    return ""


def sizes_conflict(a: str, b: str) -> bool:
    """True when two edit keys name different lengths (TV size against full length, game size against
    TV size); a side that names none never conflicts (the duration window decides)."""
    if not a or not b:
        return False
    ca, cb = size_class(a), size_class(b)
    return bool(ca and cb and ca != cb)


@dataclass(frozen=True)
class TitleParts:
    """A title split by the title model.

    Attributes:
        base: folded base title (the raw characters, case-folded, when the fold is empty: "$$$").
        kind: the version kind of the marker, "" for an original.
        recording: canonical recording qualifiers, sorted ("live", "nova", "sped up"); both sides of a
            pair must have the same.
        edit: canonical edit qualifiers, sorted ("extended", "radio edit"); may differ.
    """

    base: str
    kind: str = ""
    recording: tuple[str, ...] = ()
    edit: tuple[str, ...] = ()

    @property
    def recording_key(self) -> str:
        return "|".join(self.recording)

    @property
    def edit_key(self) -> str:
        return "|".join(self.edit)


@dataclass(frozen=True)
class VersionMatch:
    kind: str  # "" for an original
    match_title: str  # the base title
    recording_key: str = ""
    edit_key: str = ""


def raw_key(s: str) -> str:
    """The raw characters of a string that folds to nothing ("$$$", "!!!", "♡"): NFKC, case folded,
    control and format characters removed, whitespace collapsed."""
    s = _CONTROL_RE.sub(" ", s or "")
    s = "".join(ch for ch in s if unicodedata.category(ch) not in ("Cf", "Cc", "Zl", "Zp")) if not s.isascii() else s
    s = unicodedata.normalize("NFKC", s).casefold()
    return " ".join(s.split())


def _key_or_raw(s: str) -> str:
    return fold(s) or raw_key(s)


def classify_qualifier(q: str) -> list[tuple[str, str]]:
    """Class and canonical form of the qualifiers in one folded decoration (no version marker in it).

    >>> classify_qualifier("nova remix radio edit")
    [('edit', 'radio edit'), ('recording', 'nova')]
    """
    q = q.strip()
    if not q:
        return []
    if _NEUTRAL_RE.match(q):
        return [(NEUTRAL, q)]
    out: list[tuple[str, str]] = []
    for m in _EDIT_PHRASE_RE.finditer(q):
        words = [w for w in m.group(0).split() if w not in _FORM_WORDS]
        out.append((EDIT, " ".join(words) or m.group(0).strip()))
    rest = _EDIT_PHRASE_RE.sub(" ", q).strip() if out else q
    if rest and not _NEUTRAL_RE.match(rest):
        words = [w for w in rest.split() if w not in _FORM_WORDS]
        if words:
            canon = " ".join(words)
            out.append((RECORDING, _SYNONYMS.get(canon, canon)))
        elif any(w in ("remix", "rmx", "rework", "bootleg", "vip") for w in rest.split()):
            out.append((RECORDING, "remix"))
        else:
            out.append((EDIT, rest))
    return out


def _peel(title: str) -> tuple[str, list[str]]:
    """Split a raw title into what precedes its trailing decorations and those decorations (raw, outermost
    last): bracket groups (glued or spaced) and dash segments, peeled from the end. Linear in the length."""
    rest, decos = title.rstrip(), []
    for _ in range(8):
        if not rest:
            break
        last = rest[-1]
        if last in _CLOSERS:
            m = _LAST_GROUP_RE.search(rest)
            i = m.start() if m else -1
            if i > 0:
                head = rest[:i].rstrip()
                if fold(head) or raw_key(head):
                    decos.append(rest[i + 1:-1])
                    rest = head
                    continue
            break
        if last in "-~" and len(rest) > 2:  # "Song -off vocal ver.-", "Song ~Instrumental~"
            i = max(rest.rfind("-", 0, len(rest) - 1), rest.rfind("~", 0, len(rest) - 1))
            head = rest[:i].rstrip() if i > 0 else ""
            if head and (fold(head) or raw_key(head)) and rest[i + 1:-1].strip():
                decos.append(rest[i + 1:-1])
                rest = head
                continue
        m = _LAST_SEP_RE.match(rest) if _HAS_SEP_CHARS.search(rest) else None
        if m is not None and m.start(1) > 0 and m.end(1) < len(rest):
            head = rest[: m.start(1)]
            if fold(head) or raw_key(head):
                decos.append(rest[m.end(1):])
                rest = head.rstrip()
                continue
        break
    return rest, decos


def parse_title(title: str, detector: "VersionDetector | None" = None) -> TitleParts:
    """The title model of one raw title. Never raises; the result's `base` is empty only for a title
    with no characters at all.

    A version marker counts only where a version is written: a trailing bracket group or dash segment
    ("Song (Instrumental)", "Song(Instrumental)", "Song - Karaoke Version", "Song -off vocal ver.-"), or
    a bare marker at the end of a title with something before it ("SONG Instrumental"). A title that is
    a marker word ("Instrumental", "放課後カラオケ") is an original.
    """
    raw = _CONTROL_RE.sub(" ", (title or "")[:_MAX_RAW_CHARS])
    if not raw.isascii():
        raw = unicodedata.normalize("NFKC", raw)
    if "." in raw:
        raw = strip_file_name(raw)
    head, decos = _peel(raw) if not _MAYBE_DECORATED_CHARS.isdisjoint(raw) else (raw, [])
    kind = ""
    recording: list[str] = []
    edit: list[str] = []
    for d in decos:
        f = fold(d)
        if not f:
            continue
        if detector is not None:
            k, f = detector.take_marker(f)
            if k and not kind:
                kind = k
        for cls, canon in classify_qualifier(f):
            if cls == RECORDING:
                recording.append(canon)
            elif cls == EDIT:
                edit.append(canon)
    base_f = fold(_FEAT_IN_TITLE_RE.sub(" ", head)) or fold(head)
    if detector is not None and not kind:
        k, rest = detector.take_trailing_marker(base_f)
        if not k:
            k, rest = detector.take_glued_marker(head, base_f)
        if not k and not _MAYBE_DECORATED_CHARS.isdisjoint(head):
            k, rest, inner = detector.take_inner_group(head)
            for cls, canon in classify_qualifier(inner) if k else ():
                if cls == RECORDING:
                    recording.append(canon)
                elif cls == EDIT:
                    edit.append(canon)
        if k:
            kind, base_f = k, rest
    base = (base_f or raw_key(head))[:MAX_TITLE_CHARS]
    if not base:  # the whole title was decoration: model it as a plain title
        return TitleParts(_key_or_raw(raw)[:MAX_TITLE_CHARS])
    return TitleParts(base, kind, tuple(sorted(set(recording))), tuple(sorted(set(edit))))


@functools.lru_cache(maxsize=1 << 18)
def original_parts(title: str) -> TitleParts:
    """The title model of an original (no version marker is looked for)."""
    return parse_title(title, None)


def match_key(title: str) -> str:
    """The base title of an original; what two titles are scored on."""
    return original_parts(title).base


# Symbols that make an artist name ("≠ME" is not "ME", "=LOVE" is not "LOVE"): kept in artist keys.
# ASCII ones are listed for the Arrow path (discover.stage); "+" and "/" split credits, so are not here.
ARTIST_ASCII_SYMBOLS = "$<=>|~^#*@%"
_ARTIST_SYMBOL_CATS = ("Sm", "Sc", "So")


def _fold_artist(s: str) -> str:
    """`fold`, but symbol characters (math, currency, other symbols) are kept as part of the name."""
    if s.isascii():
        low = s.lower()
        return " ".join(re.sub(r"[^a-z0-9" + re.escape(ARTIST_ASCII_SYMBOLS) + r"]+", " ", low).split())
    s = unicodedata.normalize("NFKC", _CONTROL_RE.sub(" ", s)).casefold()
    out = []
    for ch in s:
        if not ch.isascii() and unicodedata.category(ch) in _ARTIST_SYMBOL_CATS:
            out.append(ch)  # before accent folding: NFKD would turn "≠" into "=" + a combining mark
            continue
        ch = _strip_accents(ch) if not ch.isascii() else ch
        if ch.isalnum() or (ch and ch in ARTIST_ASCII_SYMBOLS):
            out.append(ch)
        elif ch and unicodedata.category(ch[0]).startswith("M") and out:
            out.append(ch)  # marks that belong to the letter before (Devanagari vowel signs, Japanese)
        else:
            out.append(" ")
    return unicodedata.normalize("NFKC", " ".join("".join(out).split())).casefold()


@functools.lru_cache(maxsize=1 << 18)
def artist_key(artist: str, artist_id: str | None = None) -> str:
    """Blocking key of an artist credit: `id:<artist_id>` when given, else the folded primary artist.

    The primary artist is the credit before "feat.", "ft.", "featuring", "with", "x", "vs", "&", ",".
    A leading "the " is dropped. Symbols are part of a name ("≠ME", "=LOVE", "$uicideboy$"). A credit
    that folds to nothing ("-", "&", "!!!") keys on its raw characters, so two such artists never share
    an empty key. Never raises.
    """
    if artist_id:
        return "id:" + str(artist_id).strip()
    raw = _CONTROL_RE.sub(" ", artist or "")
    raw = unicodedata.normalize("NFKC", raw)
    primary = _ARTIST_SPLIT_RE.split(raw, maxsplit=1)[0]
    key = _LEADING_THE_RE.sub("", _fold_artist(primary))
    return key or _fold_artist(raw) or raw_key(raw)


def fold_many(values: Iterable[str]) -> list[str]:
    return [fold(v) for v in values]



def __getattr__(name: str):
    """`VersionDetector` lives in `detector.py` (it uses this module's tables); it is still importable here."""
    if name == "VersionDetector":
        from .detector import VersionDetector

        return VersionDetector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
