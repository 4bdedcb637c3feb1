"""The stems folder of one run: its metadata, the pairs already done, failures, report and dataset card.

Commit protocol: each pair's folder is renamed into place by its task (`write.write_pair`); the
client adds its row to metadata.parquet, rewritten atomically every `COMMIT_EVERY` pairs and at the
end. A killed run leaves folders that metadata.parquet does not name: the rerun makes those pairs
again (same input, same bytes) and replaces them. The final metadata is sorted by pair_id, so a
rerun after a kill gives the same file as an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import OutputError
from ..runinfo import Timings, versions
from ..storage import ensure_dir, is_url, read_table, remove_file, remove_stale_temps, write_json, write_table
from ..audiopass.steps import PairLedger
from .config import FORMAT_VERSION, StemsConfig
from .write import is_pair_folder, remove_temps

log = logging.getLogger(__name__)

METADATA_NAME = "metadata.parquet"
REPORT_NAME = "stems-report.json"
COMMIT_EVERY = 32


@dataclass
class StemsOutcome:
    """One pair's stems: its metadata row (the folder is written), or why it failed."""

    meta: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class StemsResult:
    """What `run_stems` made.

    Attributes:
        out_dir: the stems root.
        metadata_path: its metadata.parquet.
        report_path: its stems-report.json.
        counts: verified_in, written, skipped_existing, failed (verified_in = the other three summed).
        hours: hours of stems in the metadata (all runs).
        methods: pairs per method ("waveform", "spectral") in the metadata.
        failures: ``{"pair_id", "reason"}`` per failed pair of this run.
    """

    out_dir: str
    metadata_path: str
    report_path: str
    counts: dict[str, int]
    hours: float
    methods: dict[str, int]
    failures: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        c = self.counts
        how = ", ".join(f"{k} {v}" for k, v in sorted(self.methods.items())) or "none"
        return (f"stems: {c['written']} pair(s) written, {c['skipped_existing']} already done, {c['failed']} failed "
                f"(of {c['verified_in']} verified); {self.hours:.2f} h ({how}) -> {self.out_dir}")


class StemsSession(PairLedger):
    """The stems root of one run. Order: `load_existing`, `drop_stale`, per pair `wanted` + `add`, `finish`."""

    def __init__(self, out_dir: str | os.PathLike, config: StemsConfig):
        if is_url(out_dir):
            raise OutputError(f"{out_dir}: stems writes one folder per pair and needs a local -o folder "
                              "(a shared filesystem on a cluster)")
        self.config = config
        self.out = out = Path(out_dir)
        ensure_dir(out)
        remove_stale_temps(out)
        remove_temps(out)
        remove_file(out / REPORT_NAME)  # written last, it marks a complete run
        self.timings = Timings()
        self.rows: list[dict] = []
        self.pending = 0
        self.failures: list[dict[str, str]] = []
        self.skipped = self.written = self.dropped_stale = 0
        self.written_s = 0.0
        self.done_ids: set[str] = set()
        self._seen: set[str] = set()

    def load_existing(self) -> None:
        path = self.out / METADATA_NAME
        if not path.exists():
            return
        meta = read_table(path, "stems-metadata").to_pandas()
        stale = meta["format_version"] != FORMAT_VERSION
        if stale.any():
            log.warning("stems: %d pair(s) in %s were made by another stems format; remaking them", int(stale.sum()),
                        path)
            self._remove_folders(meta.loc[stale, "path"])
            meta = meta[~stale]
        self.rows = meta.to_dict("records")
        self.done_ids = set(meta["pair_id"].astype(str))

    def drop_stale(self, verified_ids: Any) -> None:
        """Remove the stems of pairs that are no longer verified (they must not stay in the training data)."""
        ids = {str(x) for x in (verified_ids.to_pylist() if hasattr(verified_ids, "to_pylist") else verified_ids)}
        gone = [r for r in self.rows if str(r["pair_id"]) not in ids]
        if not gone:
            return
        log.warning("stems: removing %d pair(s) that are no longer verified", len(gone))
        self._remove_folders(r["path"] for r in gone)
        self.rows = [r for r in self.rows if str(r["pair_id"]) in ids]
        self.done_ids = {str(r["pair_id"]) for r in self.rows}
        self.dropped_stale += len(gone)
        self._commit()

    def _remove_folders(self, relpaths: Any) -> None:
        for rel in relpaths:
            p = self.out / str(rel)
            if is_pair_folder(p):  # only folders as this stage writes them
                shutil.rmtree(p)


    def add(self, pair_id: str, outcome: StemsOutcome) -> None:
        if outcome.error is not None or outcome.meta is None:
            reason = outcome.error or "not computed"
            log.warning("stems: pair %s failed: %s", pair_id, reason)
            self.failures.append({"pair_id": str(pair_id), "reason": reason})
            return
        self.rows.append(outcome.meta)
        self.written += 1
        self.written_s += float(outcome.meta["duration_s"])
        self.pending += 1
        if self.pending >= COMMIT_EVERY:
            self._commit()

    def _commit(self) -> None:
        write_table(self.out / METADATA_NAME, self.metadata(), "stems-metadata")
        self.pending = 0

    def metadata(self) -> pd.DataFrame:
        from ..schemas import table_schema

        cols = table_schema("stems-metadata").names
        df = pd.DataFrame(self.rows, columns=cols) if self.rows else pd.DataFrame([], columns=cols)
        return df.sort_values("pair_id", kind="stable").reset_index(drop=True) if len(df) else df

    def finish(self, verified_path: str, n_verified: int, rows_in: int, scheduler: str) -> StemsResult:
        """Write metadata.parquet, the dataset card, the trainer configs and stems-report.json (last)."""
        self._commit()
        meta = self.metadata()
        counts = {"verified_in": n_verified, "written": self.written, "skipped_existing": self.skipped,
                  "failed": len(self.failures)}
        assert counts["verified_in"] == counts["written"] + counts["skipped_existing"] + counts["failed"], counts
        methods = {str(k): int(v) for k, v in meta["method"].value_counts().items()} if len(meta) else {}
        hours = float(meta["duration_s"].sum()) / 3600.0 if len(meta) else 0.0
        wall = self.timings.steps.get("compute_and_write", 0.0)
        report = {
            "stage": "stems",
            "config": self.config.to_dict(),
            "versions": versions(),
            "inputs": {"verified": str(verified_path), "rows_in": rows_in, "not_verified": rows_in - n_verified,
                       "dropped_stale": self.dropped_stale},
            "counts": counts,
            "failures": self.failures,
            "hours": hours,
            "hours_written": self.written_s / 3600.0,
            "methods": methods,
            "splits": {str(k): int(v) for k, v in meta["split"].value_counts().items()} if len(meta) else {},
            "cancellation_db": _quantiles(meta["cancellation_db"]) if len(meta) else {},
            "timings_s": self.timings.to_dict(),
            "realtime_factor": (self.written_s / wall) if wall > 0 and self.written_s > 0 else None,
            "scheduler": scheduler,
        }
        from .export import write_dataset_card, write_trainer_configs

        write_dataset_card(self.out, meta, report)
        write_trainer_configs(self.out, meta)
        report_path = self.out / REPORT_NAME
        write_json(report_path, report, "stems-report")
        log.info("stems: %d written, %d skipped, %d failed; %.2f h", self.written, self.skipped, len(self.failures),
                 hours)
        return StemsResult(out_dir=str(self.out), metadata_path=str(self.out / METADATA_NAME),
                           report_path=str(report_path), counts=counts, hours=hours, methods=methods,
                           failures=list(self.failures))


def _quantiles(s: pd.Series) -> dict[str, float]:
    v = pd.to_numeric(s, errors="coerce").dropna()
    if not len(v):
        return {}
    return {f"p{q}": float(v.quantile(q / 100)) for q in (10, 50, 90)} | {"min": float(v.min()), "max": float(v.max())}
