"""The targets folder of one run: its manifest, shard writer, commit protocol and report.

Commit protocol (resumability): shards are sealed atomically (temp name + rename) and, right after
each seal, manifest.parquet is rewritten atomically with the pairs of that shard added. The manifest
therefore only names complete shards; a killed run loses at most the pairs of the unsealed shard,
and the rerun skips every pair in the manifest, deletes shard files the manifest does not name and
makes the rest. Pairs that fail are listed with their reason in targets-report.json and retried by a
rerun.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import shards as shardlib
from ..errors import ConfigError, OutputError
from ..runinfo import Timings, versions
from ..storage import ensure_dir, is_url, read_table, remove_file, remove_stale_temps, write_json, write_table
from .compute import TargetsOutcome
from ..audiopass.steps import PairLedger
from .config import TargetsConfig

log = logging.getLogger(__name__)

REPORT_NAME = "targets-report.json"
SPLIT_NAMES = ("train", "valid", "test")


@dataclass
class TargetsResult:
    """What `run_targets` made.

    Attributes:
        out_dir: the targets folder.
        manifest_path: its manifest.parquet.
        report_path: its targets-report.json.
        shards: relative paths of every shard the manifest names.
        counts: verified_in, written, skipped_existing, failed (verified_in = the other three summed).
        hours: hours of mix audio in the manifest (all runs).
        frames: frames in the manifest.
        bytes: bytes of the shards the manifest names.
        failures: ``{"pair_id", "reason"}`` per failed pair of this run.
    """

    out_dir: str
    manifest_path: str
    report_path: str
    shards: list[str]
    counts: dict[str, int]
    hours: float
    frames: int
    bytes: int
    failures: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        c = self.counts
        return (
            f"targets: {c['written']} pair(s) written, {c['skipped_existing']} already done, {c['failed']} failed "
            f"(of {c['verified_in']} verified); {self.hours:.2f} h, {self.frames} frames in {len(self.shards)} "
            f"shard(s), {self.bytes / 2**20:.1f} MiB -> {self.manifest_path}"
        )


def assign_split(artist_key: str, fractions: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0) -> str:
    """Deterministic split of an artist: a hash of (seed, artist_key) mapped onto the cumulative fractions."""
    digest = hashlib.blake2b(f"{seed}\x1f{artist_key}".encode("utf-8"), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    acc = 0.0
    for name, frac in zip(SPLIT_NAMES, fractions):
        acc += frac
        if u < acc:
            return name
    return next(n for n, f in zip(reversed(SPLIT_NAMES), reversed(fractions)) if f > 0)


def _artist_key(row: dict) -> str:
    key = row.get("artist_key")
    if isinstance(key, str) and key:
        return key
    return " ".join(str(row.get("artist") or "").casefold().split())


def _load_existing_manifest(out_dir: Path, config: TargetsConfig) -> pd.DataFrame | None:
    path = out_dir / shardlib.MANIFEST_NAME
    if not path.exists():
        return None
    raw = read_table(path)
    if "format_version" not in raw.column_names or len(raw) and set(
            raw.column("format_version").to_pylist()) != {shardlib.FORMAT_VERSION}:
        # Frames of another shard format: not fresh. Drop them (their shards go as unreferenced) and remake.
        have = sorted(set(raw.column("format_version").to_pylist())) if "format_version" in raw.column_names else [1]
        log.warning("targets: %s holds shard format %s, not %d; remaking its %d pair(s)", path, have,
                    shardlib.FORMAT_VERSION, len(raw))
        remove_file(path)
        return None
    manifest = read_table(path, "manifest").to_pandas()
    if len(manifest):
        for col, want in (("sr_hz", config.sr), ("n_fft", config.n_fft), ("hop", config.hop),
                          ("window", config.window)):
            have = set(manifest[col].unique())
            if have != {want}:
                raise ConfigError(
                    f"{out_dir} already holds targets made with {col}={sorted(have)}, not {want}; use another "
                    "-o folder, or delete that one to remake it"
                )
    return manifest


def _manifest_row(row: dict, stats: dict, shard: str, start: int, config: TargetsConfig) -> dict:
    key = _artist_key(row)
    return {
        "pair_id": row["pair_id"],
        "mix_track_id": str(row["mix_track_id"]),
        "version_track_id": str(row["version_track_id"]),
        "version_kind": row["version_kind"],
        "artist": row["artist"],
        "artist_key": key,
        "genre": row.get("genre"),
        "split": assign_split(key, tuple(config.splits), config.split_seed),
        "shard": shard,
        "start_frame": start,
        "n_frames": stats["n_frames"],
        "sr_hz": config.sr,
        "n_fft": config.n_fft,
        "hop": config.hop,
        "window": config.window,
        "duration_s": stats["duration_s"],
        "offset_s": stats["offset_s"],
        "fingerprint_offset_s": stats["fingerprint_offset_s"],
        "gain_db": stats["gain_db"],
        "align_peak_ratio": stats["align_peak_ratio"],
        "version_coverage": stats["version_coverage"],
        "vocal_energy_ratio": stats["vocal_energy_ratio"],
        "vocal_frame_share": stats["vocal_frame_share"],
        "cover_start_frame": stats["cover_start_frame"],
        "cover_stop_frame": stats["cover_stop_frame"],
        "target_method": stats.get("target_method", "magnitude"),
        "cancellation_db": stats.get("cancellation_db"),
        "format_version": shardlib.FORMAT_VERSION,
        "mix_audio_path": row.get("mix_audio_path"),
        "version_audio_path": row.get("version_audio_path"),
    }


class TargetsSession(PairLedger):
    """The targets folder of one run: its manifest, shard writer, commit protocol and report.

    The audio pass drives it (`pairminer.targets.step.TargetsClient`), from verified.parquet when
    targets runs alone, from pairs verified in the same tasks when it runs after verify. Order: `load_existing`, `drop_stale` (when the
    verified pairs are known up front), `open_writer`, `plan`, `add` per computed pair,
    `close_writer`, `drop_stale` (when they are known only now), `finish`.
    """

    def __init__(self, out_dir: str | os.PathLike, config: TargetsConfig):
        config.check()
        if is_url(out_dir):
            raise OutputError(f"{out_dir}: targets writes memory-mappable shards and needs a local -o folder")
        self.config = config
        self.out = out = Path(out_dir)
        ensure_dir(out)
        remove_stale_temps(out)  # e.g. a manifest a killed run was writing
        remove_file(out / REPORT_NAME)  # written last, it marks a complete run; the manifest changes below
        self.timings = Timings()
        self.existing: pd.DataFrame | None = None
        self.manifest_parts: list[pd.DataFrame] = []
        self.dropped_stale = 0
        self.failures: list[dict[str, str]] = []
        self.skipped = 0
        self.done_ids: set[str] = set()
        self.waiting: dict[str, tuple[dict, dict]] = {}
        self.written_stats: list[dict] = []
        self.capacity = shardlib.shard_capacity_frames(config.shard_mb, config.n_fft)
        self.writer: shardlib.ShardWriter | None = None
        self._seen: set[str] = set()

    def load_existing(self) -> None:
        self.existing = _load_existing_manifest(self.out, self.config)
        self._sync_existing()

    def _sync_existing(self) -> None:
        ex = self.existing
        self.done_ids = set(ex["pair_id"]) if ex is not None else set()
        self.manifest_parts = [ex] if ex is not None and len(ex) else []

    def drop_stale(self, verified_ids: Any) -> None:
        """Drop manifest rows whose pair is no longer verified (they must not stay in the training data)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        manifest = (pd.concat(self.manifest_parts, ignore_index=True) if self.manifest_parts else None)
        if manifest is None or not len(manifest):
            return
        ids = verified_ids if isinstance(verified_ids, (pa.Array, pa.ChunkedArray)) else pa.array(
            sorted(verified_ids), pa.string())
        keep = pc.is_in(pa.array(manifest["pair_id"].astype(str).tolist(), pa.string()), value_set=ids)
        stale = ~np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)
        n = int(stale.sum())
        if not n:
            return
        self.dropped_stale += n
        log.warning("targets: dropping %d manifest row(s) whose pair is no longer verified", n)
        kept = manifest[~stale].reset_index(drop=True)
        write_table(self.out / shardlib.MANIFEST_NAME, kept, "manifest")
        self.manifest_parts = [kept] if len(kept) else []
        self.done_ids -= set(manifest.loc[stale, "pair_id"])
        if self.writer is not None:  # called after the writer closed: clear shards nobody names any more
            shardlib.remove_unreferenced(self.out, sorted(set(kept["shard"])))

    def open_writer(self) -> None:
        parts = self.manifest_parts
        referenced = sorted(set(pd.concat(parts)["shard"])) if parts else []
        shardlib.remove_unreferenced(self.out, referenced)
        first_index = max((shardlib.shard_index(s) for s in referenced), default=-1) + 1
        self.writer = shardlib.ShardWriter(self.out, self.config.bins, self.capacity, first_index=first_index,
                                           on_seal=self._commit)

    def _commit(self, relpath: str, entries: list[tuple[Any, int, int]]) -> None:
        rows = []
        for pid, start, _n in entries:
            row, stats = self.waiting.pop(pid)
            rows.append(_manifest_row(row, stats, relpath, start, self.config))
            self.written_stats.append(stats)
        self.manifest_parts.append(pd.DataFrame(rows))
        write_table(self.out / shardlib.MANIFEST_NAME, pd.concat(self.manifest_parts, ignore_index=True), "manifest")


    def add(self, row: dict, res: TargetsOutcome) -> None:
        if res.error is not None:
            log.warning("pair %s failed: %s", row["pair_id"], res.error)
            self.failures.append({"pair_id": str(row["pair_id"]), "reason": res.error})
            return
        self.waiting[row["pair_id"]] = (row, res.stats)
        self.writer.add(row["pair_id"], res.frames)

    def close_writer(self) -> None:
        self.writer.close()

    def finish(self, verified_path: str, n_verified: int, rows_in: int, scheduler: str) -> "TargetsResult":
        """Write the final manifest (if none yet) and targets-report.json; return the result."""
        config, out, timings, failures = self.config, self.out, self.timings, self.failures
        if not self.manifest_parts:  # nothing ever written: still leave an empty, schema-valid manifest
            write_table(out / shardlib.MANIFEST_NAME, pd.DataFrame([], columns=_manifest_columns()), "manifest")
        manifest = shardlib.read_manifest(out)
        splits = [assign_split(k, tuple(config.splits), config.split_seed) for k in manifest["artist_key"]]
        if splits != manifest["split"].tolist():  # splits or split_seed changed since those pairs were written
            manifest["split"] = splits
            write_table(out / shardlib.MANIFEST_NAME, manifest, "manifest")
        shard_list = sorted(set(manifest["shard"]))
        total_bytes = sum((out / s).stat().st_size for s in shard_list)
        processed_s = float(sum(s["duration_s"] for s in self.written_stats))
        counts = {"verified_in": n_verified, "written": len(self.written_stats), "skipped_existing": self.skipped,
                  "failed": len(failures)}
        assert counts["verified_in"] == counts["written"] + counts["skipped_existing"] + counts["failed"], counts
        wall = timings.steps.get("compute_and_write", 0.0)
        cores = _n_cores(scheduler)
        rtf = processed_s / wall if processed_s > 0 and wall > 0 else None
        report = {
            "stage": "targets",
            "config": config.to_dict(),
            "versions": versions(),
            "inputs": {"verified": str(verified_path), "rows_in": rows_in, "not_verified": rows_in - n_verified,
                       "dropped_stale": self.dropped_stale},
            "counts": counts,
            "failures": failures,
            "hours": float(manifest["duration_s"].sum()) / 3600.0 if len(manifest) else 0.0,
            "hours_written": processed_s / 3600.0,
            "frames": int(manifest["n_frames"].sum()) if len(manifest) else 0,
            "bytes": int(total_bytes),
            "shards": len(shard_list),
            "splits": {k: int(v) for k, v in manifest["split"].value_counts().items()} if len(manifest) else {},
            "timings_s": timings.to_dict(),
            "realtime_factor": rtf,
            "realtime_factor_per_core": rtf / cores if rtf is not None else None,
            "cores": cores,
        }
        report_path = out / REPORT_NAME
        write_json(report_path, report, "targets-report")
        log.info("targets: %d written, %d skipped, %d failed; %.2f h in %d shard(s)", counts["written"], self.skipped,
                 len(failures), report["hours"], len(shard_list))
        return TargetsResult(out_dir=str(out), manifest_path=str(out / shardlib.MANIFEST_NAME),
                             report_path=str(report_path), shards=shard_list, counts=counts, hours=report["hours"],
                             frames=report["frames"], bytes=report["bytes"], failures=failures)


def _n_cores(scheduler: str) -> int:
    if scheduler == "synchronous":
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _manifest_columns() -> list[str]:
    from ..schemas import table_schema

    return table_schema("manifest").names
