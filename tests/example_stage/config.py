"""Options of the tally stage. Light: imports neither numpy nor Dask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pairminer.config import StageConfig
from pairminer.errors import ConfigError


@dataclass(frozen=True)
class TallyConfig(StageConfig):
    """Options of `pairminer tally` (the `tally:` section of a workflow file).

    Attributes:
        by: the candidates' column to count by.
        min_score: count only pairs whose title score is at least this (0-100).
    """

    stage: ClassVar[str] = "tally"

    by: Literal["version_kind", "genre"] = "version_kind"
    min_score: float = 0.0

    def check(self) -> None:
        if not 0 <= self.min_score <= 100:
            raise ConfigError(f"tally.min_score: {self.min_score} must be between 0 and 100")
