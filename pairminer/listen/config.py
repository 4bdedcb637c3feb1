"""Options of `pairminer listen` (building a test) and `pairminer listen --collect` (aggregating it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from . import SOURCES


def _check_range(name: str, value, lo, hi) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"--{name} {value!r}: give a number between {lo} and {hi}")
    if not lo <= value <= hi:
        raise ConfigError(f"--{name} {value:g}: give a number between {lo} and {hi}")


@dataclass(frozen=True)
class ListenConfig:
    """Options of a listening test.

    Attributes:
        seed: seeds the sample of tracks, the excerpts, the order of the samples and the test id.
        tracks: how many tracks to sample (fewer when fewer qualify).
        excerpt_s: excerpt length in seconds (shorter when a track is shorter).
        sources: the sources to rate: vocals, instrumental or both.
        max_mb: size cap of the page in MiB; tracks that do not fit are left out and listed on the page.
        bitrate_kbps: Opus bitrate (MP3 gets twice this).
        target_lufs: loudness every excerpt is matched to (lowered per track when a peak would clip).
        anchor: add the low anchor (the mix, low-passed) to every trial.
        anchor_hz: the anchor's cut-off (ITU-R BS.1534's low anchor is 3.5 kHz).
        hidden_reference: add the reference source as a hidden sample when references are given.
        mixture_system: also rate the unprocessed mix as a system named "mixture".
    """

    seed: int = 0
    tracks: int = 8
    excerpt_s: float = 10.0
    sources: tuple[str, ...] = SOURCES
    max_mb: float = 25.0
    bitrate_kbps: int = 64
    target_lufs: float = -23.0
    anchor: bool = True
    anchor_hz: float = 3500.0
    hidden_reference: bool = True
    mixture_system: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"--seed {self.seed!r}: give a whole number >= 0")
        if isinstance(self.tracks, bool) or not isinstance(self.tracks, int) or not 1 <= self.tracks <= 500:
            raise ConfigError(f"--tracks {self.tracks!r}: give a whole number between 1 and 500")
        _check_range("excerpt-s", self.excerpt_s, 1.0, 60.0)
        _check_range("max-mb", self.max_mb, 0.1, 2000.0)
        _check_range("bitrate-kbps", self.bitrate_kbps, 16, 256)
        _check_range("target-lufs", self.target_lufs, -60.0, -6.0)
        _check_range("anchor-hz", self.anchor_hz, 500.0, 8000.0)
        srcs = tuple(self.sources)
        bad = [s for s in srcs if s not in SOURCES]
        if not srcs or bad or len(set(srcs)) != len(srcs):
            raise ConfigError(f"--source {','.join(srcs) or '(none)'}: choose vocals and/or instrumental, once each")
        object.__setattr__(self, "sources", srcs)


@dataclass(frozen=True)
class CollectConfig:
    """Options of `pairminer listen --collect`.

    Attributes:
        ref_min: a hidden-reference rating below this counts as low (MUSHRA: below 90 of 100).
        anchor_max: an anchor rating above this counts as high.
        screen_share: a rater with more than this share of low hidden-reference (or high anchor)
            ratings is dropped (ITU-R BS.1534-3 uses 15% of the items).
        bootstrap: resamples of the bootstrap interval.
        seed: seeds the bootstrap.
    """

    ref_min: int = 6
    anchor_max: int = 3
    screen_share: float = 0.15
    bootstrap: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        _check_range("ref-min", self.ref_min, 1, 7)
        _check_range("anchor-max", self.anchor_max, 1, 7)
        _check_range("screen-share", self.screen_share, 0.0, 1.0)
        _check_range("bootstrap", self.bootstrap, 100, 100000)
        if self.anchor_max >= self.ref_min:
            raise ConfigError(f"--anchor-max {self.anchor_max} must be below --ref-min {self.ref_min}")
