"""The scorer unit: how a version's title is compared with an original's.

Everything discover knows about titles sits behind `TitleScorer`: the title model (`text.parse_title`:
base title + version marker + qualifiers), the rapidfuzz scorer on base titles, and the rule that
recording qualifiers must agree. Changing how titles match means changing this module only.

A pair's title score is `scorer(version base, original base)` (0-100). A pair is a match when the score
is at least `min_score`, the recording qualifiers of both sides are equal, the numbers in the two base
titles are the same ("Stage 2" is not "Stage 1", though they score 93) and the lengths the edit
qualifiers name do not conflict (TV size against full length or game size); other edit qualifiers may
differ (the duration window decides) and only break ties.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import SCORERS  # noqa: F401  (one home: the config lists the scorers)
import re

from .text import TitleParts, VersionDetector, original_parts, size_class, sizes_conflict


@dataclass(frozen=True)
class RapidfuzzScorer:
    """A rapidfuzz.fuzz scorer on base titles, with an exact length bound for `ratio`.

    Args:
        name: a rapidfuzz.fuzz function name (one of SCORERS).
        min_score: the score a match needs (0-100).
    """

    name: str = "ratio"
    min_score: float = 90.0

    def can_reach(self, len_a: np.ndarray, len_b: np.ndarray) -> np.ndarray:
        """False where two strings of these lengths cannot reach `min_score` (True for other scorers)."""
        if self.name != "ratio":
            return np.ones(np.broadcast(np.asarray(len_a), np.asarray(len_b)).shape, dtype=bool)
        return ratio_can_reach(len_a, len_b, self.min_score)

    def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Pairwise scores (float64, 0-100) of two equally long arrays of strings."""
        from rapidfuzz import fuzz, process

        if len(a) == 0:
            return np.zeros(0)
        return process.cpdist(a, b, scorer=getattr(fuzz, self.name), workers=1).astype(np.float64)


_DEFAULT: list[VersionDetector] = []


def _default_detector() -> VersionDetector:
    if not _DEFAULT:
        _DEFAULT.append(VersionDetector())
    return _DEFAULT[0]


def ratio_can_reach(len_a: np.ndarray, len_b: np.ndarray, min_score: float) -> np.ndarray:
    """False where two strings of these lengths cannot reach `min_score` with rapidfuzz's fuzz.ratio.

    ratio = 100 * (1 - indel / (la + lb)) and the indel distance is at least |la - lb|.
    """
    la, lb = np.asarray(len_a, dtype=np.float64), np.asarray(len_b, dtype=np.float64)
    return np.abs(la - lb) <= (1.0 - min_score / 100.0) * (la + lb) + 1e-9


_NUMBER_RE = re.compile(r"\d+")


def qualifiers_agree(score: np.ndarray, min_score: float, v_base: np.ndarray, o_base: np.ndarray,
                     v_edit: np.ndarray | None = None, o_edit: np.ndarray | None = None) -> np.ndarray:
    """False where a pair that reaches `min_score` has base titles with other numbers ("stage 2" vs
    "stage 1") or edit qualifiers naming conflicting lengths ("tv size" vs "full"). Only the few pairs
    above the score with different bases or two non-empty edit keys are looked at in Python."""
    ok = np.ones(len(score), dtype=bool)
    if len(score) == 0:
        return ok
    above = score >= min_score
    for i in np.flatnonzero(above & (score < 100.0)).tolist():
        a, b = v_base[i], o_base[i]
        if a != b and (_NUMBER_RE.findall(a) != _NUMBER_RE.findall(b)):
            ok[i] = False
    if v_edit is not None and o_edit is not None:
        ve, oe = np.asarray(v_edit, dtype=object), np.asarray(o_edit, dtype=object)
        both = above & (ve != "") & (oe != "")
        for i in np.flatnonzero(both).tolist():
            if sizes_conflict(ve[i], oe[i]):
                ok[i] = False
    return ok


def is_short(edit_key: str) -> bool:
    """True when edit qualifiers name a cut shorter than the full length (TV, game or movie size)."""
    return size_class(edit_key) in ("tv", "game", "movie")


@dataclass(frozen=True)
class TitleScorer:
    """The title model and the scorer together.

    Args:
        detector: finds version markers (the configured kinds and keywords; None: the defaults).
        scorer: compares base titles.
    """

    detector: VersionDetector | None = None
    scorer: RapidfuzzScorer = field(default_factory=RapidfuzzScorer)

    def version(self, title: str) -> TitleParts:
        """The title model of a catalog title, looking for version markers (kind "" = an original)."""
        return (self.detector or _default_detector()).parse(title)

    def original(self, title: str) -> TitleParts:
        """The title model of an original."""
        return original_parts(title)

    def compare(self, v_base: np.ndarray, v_rec: np.ndarray, o_base: np.ndarray, o_rec: np.ndarray,
                v_len: np.ndarray | None = None, o_len: np.ndarray | None = None,
                v_edit: np.ndarray | None = None, o_edit: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(score, qualifiers agree) for aligned arrays of version and original parts.

        "Qualifiers agree": the recording qualifiers are equal, the numbers of two different bases are the
        same, and (when the edit keys are given) the lengths they name do not conflict. Pairs the length
        bound rules out get score -1 and are not scored. Empty bases never match. `v_len`/`o_len` are the
        base lengths when the caller has them (computed here otherwise).
        """
        n = len(v_base)
        score = np.full(n, -1.0)
        if n == 0:
            return score, np.zeros(0, dtype=bool)
        lv = v_len if v_len is not None else np.fromiter((len(x) for x in v_base), dtype=np.int64, count=n)
        lo = o_len if o_len is not None else np.fromiter((len(x) for x in o_base), dtype=np.int64, count=n)
        todo = self.scorer.can_reach(lv, lo) & (lv > 0) & (lo > 0)
        if todo.any():
            score[todo] = self.scorer.score(v_base[todo], o_base[todo])
        rec_ok = np.asarray(v_rec, dtype=object) == np.asarray(o_rec, dtype=object)
        return score, rec_ok & qualifiers_agree(score, self.scorer.min_score, v_base, o_base, v_edit, o_edit)

    def is_match(self, score: np.ndarray, rec_ok: np.ndarray) -> np.ndarray:
        return (score >= self.scorer.min_score) & rec_ok
