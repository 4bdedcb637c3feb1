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
        clips_per_status: Pairs per listening group (verified, lowest-margin verified, too similar,
            too different) whose clips and spectrogram are embedded in report.html; 0 turns listening off.
        clip_s: Length of each embedded clip (s), cut from the mix's timeline where the vocal target
            is loudest.
        clip_bitrate_kbps: Bitrate of the Opus (or MP3) clips.
        max_audio_mb: Upper bound on the clips and spectrograms embedded in report.html (MiB); pairs
            that would go over it are left out and the page says how many.
        audio_root: Resolve relative audio paths against this folder.
        near_miss_rows: Rows listed per near-miss reason.
    """

    stage: ClassVar[str] = "report"
    top_n: int = 12
    genre_mode: Literal["first", "split"] = "first"
    genre_separators: tuple[str, ...] = (";", "|")
    examples_per_status: int = 8
    example_seed: int = 0
    hist_bins: int = 40
    clips_per_status: int = 2
    clip_s: float = 10.0
    clip_bitrate_kbps: int = 32
    max_audio_mb: float = 12.0
    audio_root: str | None = None
    near_miss_rows: int = 20

    def check(self) -> None:
        if self.top_n < 1:
            raise ConfigError(f"report.top_n must be at least 1 (got {self.top_n}); try --top-n 10")
        if self.examples_per_status < 0:
            raise ConfigError("report.examples_per_status must be 0 or more")
        if not 0 <= self.example_seed < 2**32:
            raise ConfigError(f"report.example_seed must be between 0 and 2**32 - 1 (got {self.example_seed})")
        if self.hist_bins < 2:
            raise ConfigError(f"report.hist_bins must be at least 2 (got {self.hist_bins})")
        if self.clips_per_status < 0:
            raise ConfigError(f"report.clips_per_status must be 0 or more (got {self.clips_per_status}); "
                              "--clips 0 turns listening off")
        if not 1 <= self.hist_bins <= 10_000:
            raise ConfigError(f"report.hist_bins: {self.hist_bins} must be between 1 and 10000 (default 40)")
        if not 0.5 <= self.clip_s <= 120:
            raise ConfigError(f"report.clip_s must be between 0.5 and 120 seconds (got {self.clip_s}); try --clip-s 10")
        if not 6 <= self.clip_bitrate_kbps <= 320:
            raise ConfigError(f"report.clip_bitrate_kbps must be between 6 and 320 (got {self.clip_bitrate_kbps})")
        if not self.max_audio_mb > 0 or self.max_audio_mb != self.max_audio_mb:
            raise ConfigError(f"report.max_audio_mb must be a positive number of MiB (got {self.max_audio_mb})")
        clip_mb = self.clip_s * self.clip_bitrate_kbps * 1000 / 8 / 2**20
        if self.clips_per_status > 0 and clip_mb > self.max_audio_mb:
            raise ConfigError(f"report.max_audio_mb ({self.max_audio_mb} MiB) cannot hold one clip of clip_s="
                              f"{self.clip_s} s at clip_bitrate_kbps={self.clip_bitrate_kbps} ({clip_mb:.3g} MiB); "
                              "raise --max-audio-mb, shorten --clip-s, or use --clips 0")
        if self.near_miss_rows < 0:
            raise ConfigError("report.near_miss_rows must be 0 or more")
        if any(not s for s in self.genre_separators):
            raise ConfigError("report.genre_separators must not contain an empty string")
