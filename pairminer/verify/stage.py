"""The verify stage: Chromaprint each candidate's audio once, align each pair, classify it.

    candidates.parquet -> verified.parquet, verify-report.json, similarity.png (+ fingerprint cache)

`run_verify` is the audio pass (`pairminer.audiopass`) with one step, verify. Per batch of
`batch_pairs` candidates (memory stays bounded for any number of pairs):

1. resolve the two audio paths of each pair (`--audio-root` rebases relative paths);
2. look every file up in the fingerprint cache (`cache.py`: keyed by path, size, mtime, a digest of
   its ends and `max_seconds`); the others are decoded and fingerprinted as Dask tasks (each file once
   per run) and appended to the cache as one atomically written Parquet part;
3. compare the pairs (Dask tasks over chunks of pairs): best item offset within
   |duration delta| + `offset_margin_s`, BER there, sub-item offset, overlap, residual share;
4. classify (`rules.classify_pair`): error (a file failed; `reason` names it and why) | too_different
   | too_similar | verified (docs/verify.md).

Modules: `cache.py` (the fingerprint cache), `rules.py` (compare and classify, pure), `session.py`
(the run's state and outputs), `step.py` (verify as a step of the audio pass), `plot.py`.
"""

from __future__ import annotations

import os

from .cache import CACHE_FORMAT, FingerprintCache, content_digest, file_key
from .config import VerifyConfig
from .rules import STATUSES, classify, classify_pair, compare_pairs, error_category, search_radius_s
from .session import VerifyResult, VerifySession


def run_verify(candidates_path: str | os.PathLike, out_dir: str | os.PathLike, config: VerifyConfig | None = None,
               *, scheduler: str = "threads", progress: bool = True) -> VerifyResult:
    """Verify every candidate pair by listening (Chromaprint) and write verified.parquet.

    Args:
        candidates_path: candidates.parquet from `pairminer discover` (local path or URL).
        out_dir: output folder (local or URL); gets verified.parquet, verify-report.json, similarity.png.
        config: stage options (defaults: `VerifyConfig()`).
        scheduler: threads | processes | synchronous | tcp://host:port.
        progress: show progress bars.

    Returns:
        VerifyResult with output paths and counts (verified + too_similar + too_different + error = candidates).
    """
    from ..audiopass.run import run_pass

    return run_pass(str(candidates_path), {"verify": str(out_dir)}, {"verify": config or VerifyConfig()},
                    scheduler=scheduler, progress=progress)["verify"]


__all__ = ["VerifyConfig", "VerifyResult", "VerifySession", "run_verify", "FingerprintCache", "compare_pairs",
           "classify", "classify_pair", "search_radius_s", "file_key", "content_digest", "error_category", "STATUSES",
           "CACHE_FORMAT"]
