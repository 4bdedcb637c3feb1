"""Options of the stems stage. Light: imports neither numpy nor Dask, so the CLI and docs can read it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from ..config import StageConfig
from ..errors import ConfigError

SUBTYPES = ("PCM_16", "PCM_24", "FLOAT")


@dataclass(frozen=True)
class StemsConfig(StageConfig):
    """Options of `pairminer stems`.

    Attributes:
        sr: write the stems at this rate (Hz); default: the mix's own rate (a version at another rate is
            resampled to the mix's).
        format: file format of the stems: wav (what MUSDB18-HQ, demucs and MSST read by default) or flac.
        subtype: sample format: PCM_16 (as MUSDB18-HQ), PCM_24 or FLOAT. With PCM the instrumental and the
            mixture are rounded and the vocals are their integer difference, so the stems sum back to the
            mixture exactly (docs/stems.md).
        min_cancellation_db: a pair whose aligned difference drops by less than this where the voice is
            absent is not subtracted as waveforms but falls back to a spectral mask (method "spectral").
        fallback: what to do with a pair that does not cancel: "spectral" writes mask-based stems and
            says so in metadata.parquet; "skip" leaves it out (listed with its reason in the report).
        search_window_s: the lag is searched within +-this of verify's fingerprint offset (s).
        max_drift_ppm: clock drift beyond this is not corrected (the pair falls back).
        audio_root: resolve relative audio paths against this folder and refuse paths outside it.
        splits: train, valid and test fractions (sum 1), assigned per artist (as targets assigns them).
        split_seed: changes which artists land in which split (keep it equal to targets').
        max_duration_s: mixes longer than this fail instead of being decoded (bounds memory).
        min_seconds: pairs whose covered range is shorter than this fail as too short.
    """

    stage: ClassVar[str] = "stems"

    sr: int | None = None
    format: Literal["wav", "flac"] = "wav"
    subtype: Literal["PCM_16", "PCM_24", "FLOAT"] = "PCM_16"
    min_cancellation_db: float = 18.1
    fallback: Literal["spectral", "skip"] = "spectral"
    search_window_s: float = 0.5
    max_drift_ppm: float = 500.0
    audio_root: str | None = None
    splits: tuple[float, ...] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    max_duration_s: float = 1200.0
    min_seconds: float = 5.0

    def check(self) -> None:
        if self.sr is not None and not 8000 <= self.sr <= 384000:
            raise ConfigError(f"stems.sr: {self.sr} Hz must be between 8000 and 384000 (or unset: the mix's rate)")
        if self.format == "flac" and self.subtype == "FLOAT":
            raise ConfigError("stems.subtype: FLAC cannot hold FLOAT samples; use --subtype PCM_24, or --format wav")
        if self.search_window_s <= 0:
            raise ConfigError(f"stems.search_window_s: {self.search_window_s} must be positive (default 0.5)")
        if self.max_drift_ppm <= 0:
            raise ConfigError(f"stems.max_drift_ppm: {self.max_drift_ppm} must be positive (default 500)")
        if len(self.splits) != 3 or any(f < 0 for f in self.splits) or not math.isclose(sum(self.splits), 1.0,
                                                                                          abs_tol=1e-6):
            raise ConfigError(f"stems.splits: {list(self.splits)} must be three fractions (train, valid, test) "
                              "that are >= 0 and sum to 1, e.g. 0.8,0.1,0.1")
        if self.max_duration_s <= 0:
            raise ConfigError(f"stems.max_duration_s: {self.max_duration_s} must be positive")
        if not 0 < self.min_seconds < self.max_duration_s:
            raise ConfigError(f"stems.min_seconds: {self.min_seconds} must be positive and below max_duration_s "
                              f"({self.max_duration_s:g})")

    def freshness_extra(self) -> dict:
        """Output-format facts for the workflow's freshness: the stems FORMAT_VERSION."""
        return {"stems_format_version": FORMAT_VERSION}


FORMAT_VERSION = 1
"""Version of the stems' contents (the alignment method): bump it when the same input would give other stems."""
