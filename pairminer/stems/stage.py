"""The `stems` stage: every verified pair -> waveform stems (mixture, vocals, instrumental) for trainers.

    verified.parquet -> OUT/stems/{train,valid,test}/<pair>/{mixture,vocals,instrumental}.wav,
                        metadata.parquet, stems-report.json, README.md (dataset card), configs/

Per verified pair (the method: docs/stems.md):

1. decode the mix at its own rate and channels (`--sr` forces one) and the version at its own; bring
   the version to the mix's rate and layout (`align.conform`);
2. align for subtraction (`align.subtract_pair`): integer lag at the full rate around verify's
   offset, sub-sample refinement, polarity, clock drift (lags in windows along the song, corrected
   by resampling the version), a gain per channel and a regularised, smoothed matching filter;
3. subtract over the covered range only: vocals = mix - matched(instrumental) (the other way round
   for an acapella); a pair that does not cancel (`--min-cancellation-db`) gets spectral stems, with
   the reason;
4. write the pair's folder atomically, quantised so that the stems sum back to the mixture
   (`write.py`), and its metadata row (`session.py`).

`run_stems` is the audio pass (`pairminer.audiopass`) with one step, stems; after verify (and
targets) in one invocation, the workflow runs them in one pass, so each file is decoded once.
Modules: `align.py`, `lag.py`, `matchfilter.py`, `grade.py` (the signal processing, pure),
`write.py` (files), `session.py` (metadata, report), `step.py` (the step), `export.py` (the dataset
card and the trainers' configs).
"""

from __future__ import annotations

import os

from .config import StemsConfig
from .session import StemsOutcome, StemsResult, StemsSession


def run_stems(verified_path: str | os.PathLike, out_dir: str | os.PathLike, config: StemsConfig | None = None, *,
              scheduler: str = "threads", progress: bool = True) -> StemsResult:
    """Export every verified pair as waveform stems in `out_dir` (a rerun skips pairs already exported).

    Args:
        verified_path: verified.parquet from `pairminer verify` (local path or URL).
        out_dir: the stems root (local; a shared filesystem on a cluster: the workers write the folders).
        config: stage options (defaults: StemsConfig()).
        scheduler: Dask scheduler (threads, processes, synchronous or tcp://host:port).
        progress: show a progress bar.

    Returns:
        StemsResult with the paths and counts (verified_in = written + skipped_existing + failed).

    Raises:
        InputError: verified.parquet is missing or lacks columns.
        OutputError: out_dir cannot be written.
    """
    from ..audiopass.run import run_pass

    return run_pass(str(verified_path), {"stems": str(out_dir)}, {"stems": config or StemsConfig()},
                    scheduler=scheduler, progress=progress)["stems"]


__all__ = ["StemsConfig", "StemsResult", "StemsSession", "StemsOutcome", "run_stems"]
