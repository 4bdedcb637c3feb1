"""Options of the discover stage. Light: imports neither numpy nor Dask, so the CLI and docs can read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ..config import StageConfig, did_you_mean
from ..errors import ConfigError
from .text import DEFAULT_KEYWORDS, DEFAULT_KINDS, VersionDetector

SCORERS = ("ratio", "token_sort_ratio", "token_set_ratio", "partial_ratio", "WRatio")
OPTIONAL = ("genre", "audio_path", "artist_id", "album", "isrc")


@dataclass(frozen=True)
class DiscoverConfig(StageConfig):
    """Options of `pairminer discover` (the same keys as a workflow's `discover:` section).

    Attributes:
        kinds: version kinds to look for, in priority order (instrumental, acapella, karaoke, off-vocal).
        keywords: extra or replacement keyword lists per kind, e.g. {"instrumental": ["instru"]};
            a kind listed here uses exactly these words plus the defaults unless `replace_keywords`.
        replace_keywords: use `keywords` instead of the default lists for the kinds it names.
        max_delta: keep pairs whose durations differ by strictly less than this, in seconds (widened by
            the duration resolution: with whole-second durations a rounded delta of 1 s is kept at 1.0).
        duration_resolution: "auto" (whole seconds when at least 99% of the durations of a catalog of
            100+ rows are integral, else none) or the resolution in seconds (0 = exact durations).
        max_delta_acapella: the same for acapellas, which are often trimmed by tens of seconds (None: max_delta).
        min_score: minimum title similarity (0-100, rapidfuzz) to keep a pair.
        scorer: rapidfuzz.fuzz scorer used on the match titles.
        ambiguity_margin: originals within this many points of the best score count as near-best.
        duration_unit: unit of the catalog's duration column, "s" or "ms".
        columns: schema column -> catalog column, e.g. {"title": "track_name"}.
        audio_root: folder that relative audio paths resolve against (default: the catalog's folder).
        partition_rows: rows per Dask partition.
        max_block_comparisons: a version with more originals than this in its artist x duration block
            is compared only with originals of exactly its base title (the 64 nearest in duration);
            such capped versions are counted in the report.
        max_blocked_pairs: the most (version, original) pairs the block step may build in one run,
            counted before it starts from the durations of the large artists (a catalog of one artist
            grows these with its size squared); over it, discover stops with the artist to blame.
        near_miss_range_s: how far past the window a version's best same-artist original is looked
            for, in seconds, for near_misses.parquet.
    """

    stage: ClassVar[str] = "discover"

    kinds: tuple[str, ...] = DEFAULT_KINDS
    keywords: dict[str, list[str]] | None = None
    replace_keywords: bool = False
    max_delta: float = 1.0
    max_delta_acapella: float | None = None
    min_score: float = 90.0
    scorer: str = "ratio"
    ambiguity_margin: float = 2.0
    duration_unit: str = "s"
    columns: dict[str, str] | None = None
    audio_root: str | None = None
    partition_rows: int = 500_000
    duration_resolution: str = "auto"
    max_block_comparisons: int = 20_000
    max_blocked_pairs: int = 500_000_000
    near_miss_range_s: float = 10.0

    def check(self) -> None:
        if not self.kinds:
            raise ConfigError("discover.kinds is empty; give at least one kind, e.g. instrumental")
        for k in self.kinds:
            if k not in DEFAULT_KEYWORDS and not (self.keywords or {}).get(k):
                raise ConfigError(
                    f"discover.kinds: unknown kind {k!r}; known kinds are {', '.join(DEFAULT_KEYWORDS)}, "
                    "or give its words in discover.keywords"
                )
        for k in self.keywords or {}:  # a misspelt kind's words would be silently ignored
            if k not in self.kinds and k not in DEFAULT_KEYWORDS:
                raise ConfigError(f"discover.keywords: {did_you_mean('kind', k, (*self.kinds, *DEFAULT_KEYWORDS))} "
                                  "(or add it to discover.kinds)")
        if self.replace_keywords and not any((self.keywords or {}).get(k) for k in self.kinds):
            raise ConfigError("discover.replace_keywords is set but discover.keywords gives no words for the kinds "
                              "looked for; give the replacement words (e.g. --keyword instrumental=instru) or drop "
                              "replace_keywords")
        if not (0.001 <= self.max_delta <= 3600):
            raise ConfigError("discover.max_delta must be between 0.001 and 3600 seconds")
        if self.max_delta_acapella is not None and not (0.001 <= self.max_delta_acapella <= 3600):
            raise ConfigError("discover.max_delta_acapella must be between 0.001 and 3600 seconds")
        if not 0 <= self.min_score <= 100:
            raise ConfigError("discover.min_score must be between 0 and 100")
        if not 0 <= self.ambiguity_margin <= 100:
            raise ConfigError("discover.ambiguity_margin must be between 0 and 100 points")
        if self.scorer not in SCORERS:
            raise ConfigError(f"discover.scorer must be one of {', '.join(SCORERS)}")
        if self.duration_unit not in ("s", "ms"):
            raise ConfigError("discover.duration_unit must be s or ms")
        self.resolution_override()
        if not 1 <= self.max_block_comparisons <= 10_000_000:
            raise ConfigError("discover.max_block_comparisons must be between 1 and 10000000")
        if not 1 <= self.max_blocked_pairs <= 10**13:
            raise ConfigError("discover.max_blocked_pairs must be between 1 and 10000000000000")
        if not 0 <= self.near_miss_range_s <= 600:
            raise ConfigError("discover.near_miss_range_s must be between 0 and 600 seconds")
        if self.partition_rows < 1000:
            raise ConfigError("discover.partition_rows must be at least 1000")

    def resolution_override(self) -> float | None:
        """The duration resolution in seconds given by the user, or None for "auto"."""
        v = str(self.duration_resolution).strip().lower()
        if v == "auto":
            return None
        try:
            r = float(v)
        except ValueError:
            raise ConfigError(f"discover.duration_resolution must be auto or a number of seconds, not {v!r}") from None
        if not 0 <= r <= 60:  # also refuses nan and inf
            raise ConfigError("discover.duration_resolution must be between 0 and 60 seconds (or auto)")
        return r

    def delta_for(self, kind: str) -> float:
        """The duration window of a version kind (s)."""
        if kind == "acapella" and self.max_delta_acapella is not None:
            return float(self.max_delta_acapella)
        return float(self.max_delta)

    @property
    def widest_delta(self) -> float:
        """The widest window of the configured kinds: the width of the duration buckets."""
        return max(self.delta_for(k) for k in self.kinds)

    def detector(self) -> VersionDetector:
        words: dict[str, tuple[str, ...]] = {}
        for kind in self.kinds:
            extra = tuple((self.keywords or {}).get(kind) or ())
            base = () if (self.replace_keywords and extra) else DEFAULT_KEYWORDS.get(kind, ())
            words[kind] = tuple(dict.fromkeys(base + extra))
        return VersionDetector(kinds=tuple(self.kinds), keywords=words)
