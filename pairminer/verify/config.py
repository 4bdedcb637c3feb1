"""Options of the verify stage. Light: imports neither numpy nor Dask, so the CLI and docs can read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ..config import StageConfig
from ..errors import ConfigError


@dataclass(frozen=True)
class VerifyConfig(StageConfig):
    """Options of `pairminer verify` (also the `verify:` section of a workflow file).

    Attributes:
        min_ber: below this BER (and an excess share under max_copy_excess_share) the version is the mix itself (too_similar).
        max_ber: above this BER the two are different recordings (too_different).
        max_ber_acapella: the max_ber of acapellas (a voice alone shares fewer fingerprint bits with its mix).
        peak_check_ber: pairs with a BER above this also need min_peak_ratio (the ambiguous zone).
        min_peak_ratio: below this GCC-PHAT envelope peak ratio there is no sharp alignment (too_different).
        min_peak_ratio_acapella: the min_peak_ratio of acapellas (0: not used; a voice's envelope matches its mix weakly).
        max_copy_excess_share: a low-BER version with a smaller share of cells where the mix pokes out of it is a copy.
        min_overlap_s: a shorter overlap at the best offset is too_different.
        min_overlap_share: an overlap below this share of the shorter track is too_different.
        offset_margin_s: offsets are searched within |duration delta| + this margin.
        max_offset_s: the offset search never goes beyond +-this (bounds time and memory on wide windows).
        max_duration_s: files longer than this (read from the header, before decoding) are errors.
        max_seconds: fingerprint at most this much of each file (None: the whole track).
        min_seconds: shorter decoded files are errors (Chromaprint needs a few seconds).
        audio_root: rebase relative audio paths on this folder or URL (None: the candidates' folder).
        cache_dir: fingerprint cache folder (None: <out>/fingerprint-cache).
        no_cache: neither read nor keep cached fingerprints (each file is still decoded once).
        batch_pairs: candidates per batch; bounds memory.
        pairs_per_task: pairs compared per Dask task.
    """

    stage: ClassVar[str] = "verify"

    min_ber: float = 0.10
    max_ber: float = 0.41
    max_ber_acapella: float = 0.44
    peak_check_ber: float = 0.30
    min_peak_ratio: float = 4.0
    min_peak_ratio_acapella: float = 0.0
    max_copy_excess_share: float = 0.0005
    min_overlap_s: float = 6.0
    min_overlap_share: float = 0.5
    offset_margin_s: float = 3.0
    max_offset_s: float = 120.0
    max_duration_s: float = 7200.0
    max_seconds: float | None = None
    min_seconds: float = 5.0
    audio_root: str | None = None
    cache_dir: str | None = None
    no_cache: bool = False
    batch_pairs: int = 2000
    pairs_per_task: int = 200

    def check(self) -> None:
        if not 0.0 <= self.min_ber < self.max_ber <= 1.0:
            raise ConfigError(f"verify: need 0 <= min_ber < max_ber <= 1, got min_ber={self.min_ber}, "
                              f"max_ber={self.max_ber}; the defaults are 0.10 and 0.41")
        if not self.min_ber < self.max_ber_acapella <= 1.0:
            raise ConfigError(f"verify: need min_ber < max_ber_acapella <= 1, got {self.max_ber_acapella}")
        for name in ("min_peak_ratio", "min_peak_ratio_acapella", "max_copy_excess_share", "peak_check_ber"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"verify: {name} must be >= 0, got {getattr(self, name)}")
        if not self.max_copy_excess_share <= 1:
            raise ConfigError(f"verify: max_copy_excess_share is a share, within [0, 1], "
                              f"got {self.max_copy_excess_share}")
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ConfigError(f"verify: max_seconds ({self.max_seconds}) is below min_seconds ({self.min_seconds}); "
                              "raise --max-seconds or leave it unset for whole tracks")
        if not 0.0 <= self.min_overlap_share <= 1.0:
            raise ConfigError(f"verify: min_overlap_share must be within [0, 1], got {self.min_overlap_share}")
        for name in ("max_offset_s", "max_duration_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"verify: {name} must be > 0, got {getattr(self, name)}")
        for name in ("min_overlap_s", "offset_margin_s", "min_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"verify: {name} must be >= 0, got {getattr(self, name)}")
        if not self.min_seconds < self.max_duration_s:
            raise ConfigError(f"verify: min_seconds ({self.min_seconds}) must be below max_duration_s "
                              f"({self.max_duration_s}), or every file is an error")
        if self.max_seconds is not None and self.min_overlap_s > self.max_seconds:
            raise ConfigError(f"verify: min_overlap_s ({self.min_overlap_s}) is above max_seconds "
                              f"({self.max_seconds}), so no pair could overlap enough; raise --max-seconds or lower "
                              "--min-overlap-s")
        for name in ("batch_pairs", "pairs_per_task"):
            if getattr(self, name) < 1:
                raise ConfigError(f"verify: {name} must be >= 1, got {getattr(self, name)}")
