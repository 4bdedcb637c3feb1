"""The `targets` stage: verified pairs -> aligned STFT magnitude targets in shards + manifest.parquet.

For every row of verified.parquet with ``status == "verified"`` (`compute.py` has the math):
decode the mix and the version once (mono, soxr to `sr`), align the version to the sample, STFT
both, estimate the gain, and store |mix|, the instrumental and the vocal target as float16 frames
(frames, 3, n_fft // 2 + 1) in shards (`pairminer.shards.ShardWriter`).

`run_targets` is the audio pass (`pairminer.audiopass`) with one step, targets; after verify in the
same invocation the workflow runs both in one pass (one decode per file). Resumability and the
commit protocol are the session's (`session.py`): a rerun skips every pair in the manifest.

Memory: pairs are computed in Dask groups of about one shard's worth of frames, so the stage holds
at most ~2 x shard_mb of targets (one group of results and one shard buffer) plus the per-task
working set of the running workers.

Modules: `compute.py` (per-pair math, pure), `align.py` (sample alignment and gain), `session.py`
(the targets folder: manifest, shards, report), `step.py` (targets as a step of the audio pass).
"""

from __future__ import annotations

import os

from ..audiopass.source import READ_BATCH_ROWS, REQUIRED_COLUMNS
from .compute import (TargetsOutcome, check_mix_duration, compute_pair, compute_pair_audio, covered_frame_range,
                      estimate_frames)
from .config import TargetsConfig
from .session import REPORT_NAME, SPLIT_NAMES, TargetsResult, TargetsSession, assign_split


def run_targets(verified_path: str | os.PathLike, out_dir: str | os.PathLike, config: TargetsConfig | None = None, *,
                scheduler: str = "threads", progress: bool = True) -> TargetsResult:
    """Make STFT targets for every verified pair: shards/, manifest.parquet and targets-report.json in `out_dir`.

    Args:
        verified_path: verified.parquet from `pairminer verify` (local path or fsspec URL).
        out_dir: the targets folder (local). A rerun on the same folder skips pairs already in its manifest.
        config: stage options (defaults: TargetsConfig()).
        scheduler: Dask scheduler (threads, processes, synchronous or tcp://host:port).
        progress: show a progress bar.

    Returns:
        TargetsResult with the paths and counts.

    Raises:
        InputError: verified.parquet is missing or lacks columns.
        ConfigError: bad options, or out_dir holds targets made with other STFT parameters.
        OutputError: out_dir cannot be written.
    """
    from ..audiopass.run import run_pass

    return run_pass(str(verified_path), {"targets": str(out_dir)}, {"targets": config or TargetsConfig()},
                    scheduler=scheduler, progress=progress)["targets"]


__all__ = ["TargetsConfig", "TargetsResult", "TargetsSession", "TargetsOutcome", "run_targets", "compute_pair",
           "compute_pair_audio", "check_mix_duration", "covered_frame_range", "estimate_frames", "assign_split",
           "REPORT_NAME", "SPLIT_NAMES", "READ_BATCH_ROWS", "REQUIRED_COLUMNS"]
