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
        min_ber: below this BER the version is the mix's own master (too_similar).
        max_ber: above this BER the two are different recordings (too_different).
        min_overlap_s: a shorter overlap at the best offset is too_different.
        offset_margin_s: offsets are searched within |duration delta| + this margin.
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
    max_ber: float = 0.35
    min_overlap_s: float = 6.0
    offset_margin_s: float = 3.0
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
                              f"max_ber={self.max_ber}; the defaults are 0.10 and 0.35")
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise ConfigError(f"verify: max_seconds ({self.max_seconds}) is below min_seconds ({self.min_seconds}); "
                              "raise --max-seconds or leave it unset for whole tracks")
        for name in ("min_overlap_s", "offset_margin_s", "min_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"verify: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_pairs", "pairs_per_task"):
            if getattr(self, name) < 1:
                raise ConfigError(f"verify: {name} must be >= 1, got {getattr(self, name)}")
