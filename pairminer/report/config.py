"""Options of the report stage. Light: imports neither numpy nor Dask, so the CLI and docs can read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ..config import StageConfig
from ..errors import ConfigError


@dataclass(frozen=True)
class ReportConfig(StageConfig):
    """Options of `pairminer report`.

    Attributes:
        top_n: Genres shown by name in the genre breakdown; the rest fold into "Other".
        genre_mode: "first" counts a multi-valued genre ("Pop; Dance") under its first value;
            "split" gives each of its k distinct values a 1/k share of the pair and its hours.
        genre_separators: Strings that separate several genres in one text value. The comma is not
            in the default because real genre names contain it ("Folk, World, & Country").
        examples_per_status: Example pairs shown per verify status (or of the candidates when verify
            has not run), drawn at random with `example_seed`.
        example_seed: Seed of the example draw, so that a rerun shows the same pairs.
        hist_bins: Bins of the histograms.
    """

    stage: ClassVar[str] = "report"
    top_n: int = 12
    genre_mode: Literal["first", "split"] = "first"
    genre_separators: tuple[str, ...] = (";", "|")
    examples_per_status: int = 8
    example_seed: int = 0
    hist_bins: int = 40

    def check(self) -> None:
        if self.top_n < 1:
            raise ConfigError(f"report.top_n must be at least 1 (got {self.top_n}); try --top-n 10")
        if self.examples_per_status < 0:
            raise ConfigError("report.examples_per_status must be 0 or more")
        if self.hist_bins < 2:
            raise ConfigError(f"report.hist_bins must be at least 2 (got {self.hist_bins})")
        if any(not s for s in self.genre_separators):
            raise ConfigError("report.genre_separators must not contain an empty string")
