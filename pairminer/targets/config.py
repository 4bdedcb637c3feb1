"""Options of the targets stage. Light: imports neither numpy nor Dask, so the CLI and docs can read it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from ..config import StageConfig
from ..errors import ConfigError


# Window names scipy.signal.get_window accepts without parameters (checked by a test); any other name is
# checked by scipy itself.
_PLAIN_WINDOWS = frozenset({"hann", "hamming", "blackman", "blackmanharris", "bartlett", "boxcar",
                            "triang", "flattop", "parzen", "bohman", "nuttall", "barthann", "cosine", "lanczos"})


@dataclass(frozen=True)
class TargetsConfig(StageConfig):
    """Options of `pairminer targets` (the `targets:` section of a workflow file).

    Attributes:
        sr: sample rate (Hz) the audio is resampled to before the STFT.
        n_fft: STFT size in samples; a frame has n_fft // 2 + 1 bins.
        hop: STFT hop in samples.
        window: STFT window name (as librosa/scipy spell it).
        shard_mb: size of a shard in MiB (a pair longer than that gets a shard of its own).
        audio_root: resolve relative audio paths against this folder and refuse paths outside it.
        search_window_s: the offset is refined within +-this of the fingerprint offset (s).
        splits: train, valid and test fractions (sum 1), assigned per artist.
        split_seed: changes which artists land in which split.
        min_frames: pairs with fewer STFT frames fail as too short.
        max_duration_s: mixes longer than this fail instead of being decoded (bounds memory).
        vocal_target: "waveform": where the pair cancels (the stems stage's alignment: lag, drift,
            polarity, matching filter), the instrumental and vocal channels are the magnitudes of the
            aligned waveform stems; elsewhere, and with "magnitude", the seed's rule max(|M| - g|I|, 0).
        min_cancellation_db: the cancellation a pair needs for the waveform targets (as stems').
        vocal_frame_db: a frame counts as having vocals (for vocal_frame_share) when the vocal target's
            energy is at least this many dB relative to the mix's in that frame.
    """

    stage: ClassVar[str] = "targets"

    sr: int = 8192
    n_fft: int = 1024
    hop: int = 768
    window: str = "hann"
    shard_mb: float = 256.0
    audio_root: str | None = None
    search_window_s: float = 0.5
    splits: tuple[float, ...] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    min_frames: int = 16
    max_duration_s: float = 1800.0
    vocal_frame_db: float = -15.0
    vocal_target: Literal["waveform", "magnitude"] = "waveform"
    min_cancellation_db: float = 18.1

    def check(self) -> None:
        if self.sr < 1000:
            raise ConfigError(f"targets.sr: {self.sr} Hz is too low; use at least 1000 (default 8192)")
        if self.n_fft < 16 or self.n_fft % 2:
            raise ConfigError(f"targets.n_fft: {self.n_fft} must be an even number >= 16 (default 1024)")
        if not 0 < self.hop <= self.n_fft:
            raise ConfigError(f"targets.hop: {self.hop} must be between 1 and n_fft ({self.n_fft})")
        if self.shard_mb <= 0:
            raise ConfigError(f"targets.shard_mb: {self.shard_mb} must be positive (default 256)")
        if self.search_window_s <= 0:
            raise ConfigError(f"targets.search_window_s: {self.search_window_s} must be positive (default 0.5)")
        if len(self.splits) != 3 or any(f < 0 for f in self.splits) or not math.isclose(sum(self.splits), 1.0,
                                                                                          abs_tol=1e-6):
            raise ConfigError(f"targets.splits: {list(self.splits)} must be three fractions (train, valid, test) "
                              "that are >= 0 and sum to 1, e.g. 0.8,0.1,0.1")
        if self.min_frames < 1:
            raise ConfigError(f"targets.min_frames: {self.min_frames} must be >= 1")
        if self.max_duration_s <= 0:
            raise ConfigError(f"targets.max_duration_s: {self.max_duration_s} must be positive")
        if self.window in _PLAIN_WINDOWS:
            return  # scipy.signal knows these; importing it costs ~0.5 s of every CLI start
        try:
            import scipy.signal

            scipy.signal.get_window(self.window, 16)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"targets.window: {self.window!r} is not a known window ({exc}); use e.g. hann") from exc

    def freshness_extra(self) -> dict:
        """Output-format facts for the workflow's freshness: the shard FORMAT_VERSION."""
        from ..shards import FORMAT_VERSION

        return {"shard_format_version": FORMAT_VERSION}

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1
