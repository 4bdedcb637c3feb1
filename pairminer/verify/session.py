"""The verify stage's session: its candidates, fingerprint cache, per-file state, counts and outputs.

`pairminer.verify.step.VerifyClient` drives it from the audio pass (`pairminer.audiopass`): rows come
from `batches`, files are looked up with `lookup`, each batch's records go to `batch_done`, and
`finish` writes verified.parquet, similarity.png and verify-report.json.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import AudioError, ConfigError
from ..runinfo import Timings, versions
from ..storage import TableWriter, ensure_dir, is_url, join, open_parquet, remove_file, remove_stale_temps, write_json
from .cache import FingerprintCache, file_key
from .config import VerifyConfig
from .fingerprint import Fingerprint
from .plot import BER_BINS, plot_similarity
from .rules import _FLOAT_RESULTS, RESULT_COLUMNS, STATUSES, error_category

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyResult:
    """Paths and counts of a verify run. `n_decoded` + `n_cached` + `n_file_errors` = `n_files`."""

    verified_path: str
    report_path: str
    plot_path: str | None
    cache_dir: str | None
    n_candidates: int
    n_verified: int
    n_too_similar: int
    n_too_different: int
    n_error: int
    n_files: int
    n_decoded: int
    n_cached: int
    n_file_errors: int

    def summary(self) -> str:
        return (f"verify: {self.n_candidates} candidates -> {self.n_verified} verified, {self.n_too_similar} too "
                f"similar, {self.n_too_different} too different, {self.n_error} errors "
                f"({self.n_decoded} files decoded, {self.n_cached} from cache)\n  wrote {self.verified_path}")



class VerifySession:
    """One verify run: its candidates, fingerprint cache, per-file state, counts and outputs.

    The audio pass (`pairminer.audiopass`, through `pairminer.verify.step.VerifyClient`) calls
    `batches`, `lookup` per batch, `batch_done` per batch, `close_cache` and `finish`, whichever
    steps run with verify.
    """

    def __init__(self, candidates_path: str | os.PathLike, out_dir: str | os.PathLike,
                 config: VerifyConfig | None = None):
        self.config = config = config or VerifyConfig()
        self.timings = timings = Timings()
        self.candidates_path = candidates_path
        self.out_dir = out_dir = str(out_dir)
        ensure_dir(out_dir)
        remove_stale_temps(out_dir)
        with timings.step("read_candidates"):
            # Read in row batches (`batches`): the client never holds the whole candidates table.
            # A verified.parquet (or any table with extra columns) can be verified again: keep the
            # candidate columns, then check each batch against the schema.
            from ..schemas import table_schema

            self._schema = table_schema("candidates")
            self._pf, self._handle = open_parquet(candidates_path)
            self._cand_cols = [c for c in self._schema.names if c in self._pf.schema_arrow.names]
            self.n = int(self._pf.metadata.num_rows)
        self._writer = TableWriter(join(out_dir, "verified.parquet"), "verified")
        self._status_counts: dict[str, int] = {}
        self._by_reason: dict[str, int] = {}
        self._verified_s = 0.0
        self._ber_hist = {st: np.zeros(len(BER_BINS) - 1, np.int64) for st in STATUSES if st != "error"}
        self.base_dir = None if is_url(candidates_path) else str(Path(candidates_path).resolve().parent)
        self.tmp_cache = None
        if config.no_cache:
            self.cache_dir = self.tmp_cache = os.path.join(out_dir if not is_url(out_dir) else "/tmp",
                                                           f".fingerprint-cache-{uuid.uuid4().hex[:8]}")
        else:
            self.cache_dir = config.cache_dir or join(out_dir, "fingerprint-cache")
        if is_url(self.cache_dir):
            raise ConfigError(f"--cache-dir must be a local folder, got {self.cache_dir}")
        self.cache = FingerprintCache(self.cache_dir)
        self.file_errors: dict[str, str] = {}
        self._keys: dict[str, tuple[str, int, int]] = {}  # path -> (cache key, size, mtime_ns), this run
        self.seen_files: set[str] = set()
        self.n_decoded = self.n_cached = 0
        self.decoded_audio_s = self.decode_cpu_s = 0.0

    def batches(self) -> Iterable[tuple[int, pd.DataFrame]]:
        """(first row number, candidates) per batch of `batch_pairs` rows, read as they are needed."""
        start = 0
        for rb in self._pf.iter_batches(batch_size=self.config.batch_pairs, columns=self._cand_cols):
            batch = self._schema.conform(pa.Table.from_batches([rb])).to_pandas()
            yield start, batch
            start += len(batch)

    def batch_done(self, start: int, batch: pd.DataFrame, stats: dict) -> None:
        """Count a batch's results and append its rows (candidates + verify columns) to verified.parquet."""
        self.n_decoded += stats["decoded"]
        self.n_cached += stats["cached"]
        self.decoded_audio_s += stats["decoded_audio_s"]
        self.decode_cpu_s += stats["decode_s"]
        with self.timings.step("write"):
            res = pd.DataFrame(stats["results"]).set_index("row").reindex(range(start, start + len(batch)))
            out = self._with_results(batch.reset_index(drop=True).copy(), res.reset_index(drop=True))
            self._writer.write(out)
        status = out["status"].to_numpy()
        for st, k in out["status"].value_counts().items():
            self._status_counts[st] = self._status_counts.get(st, 0) + int(k)
        for r in out.loc[status == "error", "reason"]:
            cat = error_category(r)
            self._by_reason[cat] = self._by_reason.get(cat, 0) + 1
        mix_s = pd.to_numeric(res["mix_s"], errors="coerce").to_numpy()
        self._verified_s += float(np.nansum(np.where(status == "verified", mix_s, 0.0)))
        ber = out["ber"].to_numpy()
        for st, hist in self._ber_hist.items():
            vals = ber[(status == st) & np.isfinite(ber)]
            hist += np.histogram(np.clip(vals, BER_BINS[0], BER_BINS[-1]), bins=BER_BINS)[0]

    def close_cache(self) -> None:
        """After a complete pass: merge the cache's parts when there are many."""
        if self.tmp_cache is None:
            self.cache.compact()

    def remove_tmp_cache(self) -> None:
        """Always, last: remove the throw-away cache of a `no_cache` run (and, after a failure, the half table)."""
        if self.tmp_cache is not None:
            shutil.rmtree(self.tmp_cache, ignore_errors=True)

    def abort(self) -> None:
        """After a failure: no half-written verified.parquet is left, the input is closed."""
        self._writer.abort()
        self.close_input()

    def close_input(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def lookup(self, paths: list[str]) -> tuple[dict[str, Fingerprint], list[str]]:
        """Look a batch's resolved files up in the cache.

        Returns:
            (fps, todo): the cached fingerprints by path, and the paths to decode. A file that cannot
            even be stat'ed (or failed earlier in this run) is in neither: its reason is in `file_errors`.
        """
        with self.timings.step("cache_lookup"):
            keys = self._keys
            new_files: set[str] = set()
            for p in paths:
                if p is None or p in keys or p in self.file_errors:
                    continue
                if p not in self.seen_files:
                    new_files.add(p)
                    self.seen_files.add(p)
                try:
                    keys[p] = file_key(p, self.config.max_seconds)
                except AudioError as exc:
                    self.file_errors[p] = str(exc)
            batch_keys = {p: keys[p] for p in dict.fromkeys(paths) if p in keys}
            cached = self.cache.lookup(k for k, _, _ in batch_keys.values())
        fps: dict[str, Fingerprint] = {p: cached[k[0]] for p, k in batch_keys.items() if k[0] in cached}
        todo = [p for p in batch_keys if p not in fps]
        self.n_cached += sum(1 for p, k in batch_keys.items() if k[0] in cached and p in new_files)
        return fps, todo

    def cache_records(self, fps: dict[str, Fingerprint]) -> list[dict]:
        """Cache rows for newly made fingerprints (by path)."""
        return [self.cache_record(p, fp) for p, fp in fps.items()]

    def cache_record(self, path: str, fp: Fingerprint) -> dict:
        key, size, mtime_ns = self._keys[path]
        return {"key": key, "path": path, "size_bytes": size, "mtime_ns": mtime_ns,
                "max_seconds": self.config.max_seconds, **fp.encode()}

    def error_result(self, row: int, mpath, merr, vpath, verr) -> dict | None:
        """The error record of a pair whose file(s) failed, naming each file and why; None if both are fine."""
        problems = []
        for side, p, e in (("mix", mpath, merr), ("version", vpath, verr)):
            msg = e or (self.file_errors.get(p) if p is not None else None)
            if msg:
                problems.append(f"{side} {msg}")
        if not problems:
            return None
        return {"row": row, "status": "error", "reason": "; ".join(problems),
                **{c: np.nan for c in _FLOAT_RESULTS}, "mix_s": np.nan}

    def _with_results(self, out: pd.DataFrame, res: pd.DataFrame) -> pd.DataFrame:
        for col in RESULT_COLUMNS:
            out[col] = res[col].to_numpy()
        for col in _FLOAT_RESULTS:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
        out["reason"] = out["reason"].astype(object).where(out["reason"].notna(), None)
        return out

    def finish(self, scheduler: str, extra_timings: dict | None = None) -> VerifyResult:
        """Write verified.parquet, similarity.png and verify-report.json (last: it marks a complete run)."""
        config, timings, n, out_dir = self.config, self.timings, self.n, self.out_dir
        with timings.step("write"):
            remove_file(join(out_dir, "verify-report.json"))  # written last, it marks a complete run
            empty = self._with_results(self._schema.conform(
                self._pf.schema_arrow.empty_table().select(self._cand_cols)).to_pandas(),
                pd.DataFrame(columns=[*RESULT_COLUMNS, "mix_s"]))
            verified_path = self._writer.close(empty)
            self.close_input()
            plot_path = plot_similarity(self._ber_hist, self._status_counts.get("error", 0), n, config,
                              join(out_dir, "similarity.png"))
        tmp_cache, cache_dir, file_errors, seen_files = self.tmp_cache, self.cache_dir, self.file_errors, self.seen_files
        n_decoded, n_cached = self.n_decoded, self.n_cached
        decoded_audio_s, decode_cpu_s = self.decoded_audio_s, self.decode_cpu_s
        candidates_path = self.candidates_path
        counts = self._status_counts
        by_reason = dict(sorted(self._by_reason.items()))
        n_ok = n - int(counts.get("error", 0))
        verified_s = self._verified_s
        total = timings.total_s
        cores = os.cpu_count() or 1
        report = {
            "stage": "verify",
            "inputs": {"candidates": str(candidates_path)},
            "outputs": {"verified": verified_path, "plot": plot_path, "cache_dir": None if tmp_cache else cache_dir},
            "config": config.to_dict(),
            "versions": versions(),
            "scheduler": scheduler,
            "counts": {
                "candidates": n,
                **{s: int(counts.get(s, 0)) for s in STATUSES},
                "errors_by_reason": by_reason,
                "files": len(seen_files),
                "files_decoded": n_decoded,
                "files_cached": n_cached,
                "files_failed": len(file_errors),
            },
            "metadata_confusion_share": (int(counts.get("too_similar", 0)) / n_ok) if n_ok else 0.0,
            "hours": {"verified": verified_s / 3600.0, "decoded": decoded_audio_s / 3600.0},
            "timings_s": {**timings.to_dict(), **(extra_timings or {})},
            "realtime_factor": decoded_audio_s / total if total > 0 else 0.0,
            "realtime_factor_per_core": decoded_audio_s / decode_cpu_s if decode_cpu_s > 0 else None,
            "cpu_cores": cores,
        }
        report_path = join(out_dir, "verify-report.json")
        write_json(report_path, report, "verify-report")
        log.info("verify: %d candidates -> %d verified, %d too similar, %d too different, %d errors", n,
                 counts.get("verified", 0), counts.get("too_similar", 0), counts.get("too_different", 0),
                 counts.get("error", 0))
        return VerifyResult(
            verified_path=verified_path, report_path=report_path, plot_path=plot_path,
            cache_dir=None if tmp_cache else cache_dir, n_candidates=n,
            n_verified=int(counts.get("verified", 0)), n_too_similar=int(counts.get("too_similar", 0)),
            n_too_different=int(counts.get("too_different", 0)), n_error=int(counts.get("error", 0)),
            n_files=len(seen_files), n_decoded=n_decoded, n_cached=n_cached, n_file_errors=len(file_errors),
        )
