"""Read and validate a catalog (CSV or Parquet, local or fsspec URL) block by block.

The expected columns come from `schemas/catalog.schema.json`. Reading has two halves:

- `plan_catalog` (the client) looks only at the header, the Parquet footers and a few bytes around each
  block boundary, and returns a `CatalogPlan`: a list of small `Block` specs, never data.
- `read_block` (a worker) reads one block and validates it with vectorised Arrow kernels, so a
  malformed value rejects one row, never the whole file.

Blocks:
- Parquet: one block per row group (consecutive row groups are merged up to `partition_rows`); a folder,
  a glob (`s3://bucket/catalog/*.parquet`) or a single file. Files are read in sorted path order.
- CSV: byte ranges cut at line ends. One physical line is one record (a quoted value may not span lines,
  see docs/discover.md), so a cut at a line end is always a record boundary and a line with a broken
  quote is rejected alone: it cannot swallow the next line, let alone the next block.
- gzip, bz2, zstd and xz CSV, UTF-16 text and CR-only line ends are read as one stream (one block, in
  the memory of one worker): they cannot be cut by byte offset. Decompress or convert large ones first.

Duplicate `track_id`s are a global check: `id_buckets` hashes each block's usable ids into buckets,
`find_duplicates` looks at one bucket of every block at a time (a hash-partitioned pass), and
`finish_block` drops the later duplicates. `read_catalog` runs all of it in one process (small
catalogs, tests); `discover.stage` runs it as a Dask graph.

`row_number` identifies a row in the input: for CSV the 1-based line number in the file (the header is
line 1); for Parquet the 1-based row index (over the files of a dataset, in sorted path order).

The module holds the entry points (`plan_catalog`, `read_block`, `read_catalog`, `read_partitions`) and
the hold/spill of blocks between the passes; the rest lives beside it, by concern:
`catalog_files` (local paths, URLs, folders, globs), `catalog_decode` (compression, UTF-16, mixed text),
`catalog_plan` (the `Block`/`CatalogPlan`/`BlockRead` specs, the column mapping), `catalog_csv` and
`catalog_parquet` (planning and reading each format), `catalog_validate` (per-block checks, rejects) and
`catalog_dupes` (the duplicate pass). Their public names are importable from here as before.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import CatalogError
from .catalog_csv import DEFAULT_BLOCK_BYTES, MAX_FIELD_BYTES, _plan_csv, _read_csv_block, first_rows
from .catalog_dupes import _string_hashes  # noqa: F401 (imported from here by tests)
from .catalog_dupes import (candidate_rows, confirm_duplicates, duplicate_rejects, find_duplicates, finish_block,
                            id_buckets, merge_candidates)
from .catalog_files import _base_dir, _list_files, _open
from .catalog_parquet import _plan_parquet, _read_parquet_block
from .catalog_plan import Block, BlockRead, CatalogPlan
from .catalog_validate import (MAX_DURATION_S, REJECT_COLUMNS, SUSPECT_DURATION_S, duration_warning, empty_rejects,
                               finish_rejects, sum_stats, validate_rows)

__all__ = [
    "Block", "BlockRead", "Catalog", "CatalogParts", "CatalogPlan", "DEFAULT_BLOCK_BYTES", "HOLD_BYTES",
    "LOCAL_SCHEDULERS", "MAX_DURATION_S", "MAX_FIELD_BYTES", "REJECT_COLUMNS", "SUSPECT_DURATION_S", "assemble",
    "candidate_rows", "combine_reads", "confirm_duplicates", "duplicate_rejects", "duration_warning",
    "empty_rejects", "find_duplicates", "finish_block", "finish_rejects", "first_rows", "id_buckets",
    "load_partition", "merge_candidates", "plan_catalog", "read_block", "read_candidate_rows", "read_catalog",
    "read_partitions", "replace_table", "sum_stats", "validate_rows",
]

log = logging.getLogger(__name__)


@dataclass
class Catalog:
    """A validated catalog, all in memory (see `read_catalog`).

    Attributes:
        table: usable rows; columns track_id, artist, title (str), duration_s (float64, seconds),
            row_number (int64), and the optional columns present (genre, audio_path, artist_id, album,
            isrc) as strings. None when the rows stayed on the workers (`discover.stage`).
        rejects: one row per unusable input row (schema `rejects`).
        rows_read: rows in the input (= rows_used + len(rejects)).
        fmt: "csv" or "parquet".
        base_dir: the catalog's folder (relative audio paths resolve against it), or a URL prefix.
        rows_used: usable rows.
        duration_s_total: sum of the usable rows' durations, in seconds.
        stats: per-catalog counts summed over blocks (see `BlockRead.stats`).
    """

    table: pa.Table | None
    rejects: pa.Table
    rows_read: int
    fmt: str
    base_dir: str
    rows_used: int = 0
    duration_s_total: float = 0.0
    stats: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------- planning and reading a block


def plan_catalog(path: str | os.PathLike, *, columns: Mapping[str, str] | None = None, duration_unit: str = "s",
                 block_bytes: int | None = None, partition_rows: int = 500_000) -> CatalogPlan:
    """Plan the reading of a catalog: header, column mapping and blocks, without reading the rows.

    Args:
        path: a CSV or Parquet file, a folder of Parquet files or a glob, local or fsspec URL.
        columns: schema column -> input column name, e.g. {"title": "track_name"}.
        duration_unit: "s" (default) or "ms".
        block_bytes: CSV bytes per block (default: about `partition_rows` lines, from the first 64 KiB).
        partition_rows: Parquet rows per block (row groups are never split).

    Raises:
        CatalogError: when the input is not a usable catalog at all.
    """
    path = str(path)
    if duration_unit not in ("s", "ms"):
        raise CatalogError(f"--duration-unit must be s or ms, not {duration_unit!r}")
    files = _list_files(path)
    mapping = dict(columns or {})
    base = _base_dir(path)
    with _open(files[0]) as f:
        head = f.read(1 << 16)
    if len(files) > 1 or head[:4] == b"PAR1":
        return _plan_parquet(path, files, mapping, duration_unit, partition_rows, base)
    if Path(files[0].split("?")[0]).suffix.lower() in (".parquet", ".pq"):
        raise CatalogError(f"catalog {path} has a .parquet name but is not a Parquet file")
    return _plan_csv(path, files[0], head, mapping, duration_unit, block_bytes, base, partition_rows)


def read_block(plan: CatalogPlan, index: int) -> BlockRead:
    """Read and validate block `index` of `plan` (before the catalog-wide duplicate check)."""
    block = plan.blocks[index]
    if plan.fmt == "parquet":
        table, bad, n_lines = _read_parquet_block(plan, block), [], 0
    else:
        table, bad, n_lines = _read_csv_block(plan, block)
    good, rejects, stats = validate_rows(table, plan.duration_unit)
    if bad:
        extra = pa.table({
            "row_number": pa.array([n for n, _, _ in bad], pa.int64()),
            "reason_code": pa.array(["unparsable"] * len(bad), pa.string()),
            "reason": pa.array([why for _, why, _ in bad], pa.string()),  # prefixed in finish_block
            **{c: pa.nulls(len(bad), pa.string()) for c in REJECT_COLUMNS},
            "raw": pa.array([t for _, _, t in bad], pa.string()),
        })
        rejects = pa.concat_tables([extra, rejects]).sort_by("row_number")
    good = good.append_column("local_row", pa.array(np.arange(good.num_rows, dtype=np.int64)))
    return BlockRead(good, rejects, table.num_rows + len(bad), n_lines, stats)


# --------------------------------------------------------------------------------------------- in one process


def read_catalog(path: str | os.PathLike, *, columns: Mapping[str, str] | None = None,
                 duration_unit: str = "s", block_bytes: int | None = None,
                 partition_rows: int = 500_000) -> Catalog:
    """Read and validate a whole catalog in this process (blocks in turn; for small catalogs and tests).

    Args:
        path: CSV or Parquet file, Parquet folder or glob, local or fsspec URL.
        columns: schema column -> input column name, e.g. {"title": "track_name"}.
        duration_unit: "s" (default) or "ms".

    Raises:
        CatalogError: when the file is not a usable catalog at all.
    """
    plan = plan_catalog(path, columns=columns, duration_unit=duration_unit, block_bytes=block_bytes,
                        partition_rows=partition_rows)
    reads = [read_block(plan, i) for i in range(len(plan.blocks))]
    cat, parts = combine_reads(plan, reads)
    return assemble(plan, parts, cat["rejects"], [r.rows_read for r in reads], [r.stats for r in reads])


def combine_reads(plan: CatalogPlan, reads: Sequence[BlockRead]) -> tuple[dict, list[pa.Table]]:
    """Blocks read in this process -> ({"rejects": [...]}, final partitions), duplicates dropped."""
    n_buckets = max(1, min(16, len(reads)))
    buckets = [id_buckets(r, n_buckets) for r in reads]
    cands = merge_candidates([find_duplicates([b[j] for b in buckets]) for j in range(n_buckets)])
    cand_rows = {i: candidate_rows(reads[i], rows) for i, rows in cands.items()}
    drops = confirm_duplicates(cand_rows)
    firsts = first_rows(plan, [r.n_lines for r in reads])
    none = np.zeros(0, np.int64)
    parts = [finish_block(r, f, drops.get(i, none)) for i, (r, f) in enumerate(zip(reads, firsts))]
    rejects = [finish_rejects(r.rejects, f) for r, f in zip(reads, firsts)]
    rejects += [duplicate_rejects(cand_rows[i], d, firsts[i], plan.duration_unit) for i, d in drops.items()]
    return {"rejects": rejects}, parts


def assemble(plan: CatalogPlan, tables: Sequence[pa.Table] | None, rejects: Sequence[pa.Table],
             rows_read: Sequence[int], stats: Sequence[Mapping[str, Any]], rows_used: int | None = None,
             duration_s_total: float | None = None) -> Catalog:
    """The Catalog of a read: checks that concern the whole catalog, counts, the warning on units."""
    total = int(sum(rows_read))
    if total == 0:
        raise CatalogError(f"catalog {plan.path} has a header but no data rows")
    rej = pa.concat_tables([r.cast(empty_rejects().schema) for r in rejects]) if rejects else empty_rejects()
    rej = rej.sort_by("row_number")
    table = pa.concat_tables(tables) if tables is not None else None
    used = table.num_rows if table is not None else int(rows_used or 0)
    if used == 0 and rej.num_rows == total and total > 20 \
            and set(rej.column("reason_code").to_pylist()) == {"unparsable"}:
        raise CatalogError(f"catalog {plan.path} is not a CSV catalog: none of its {total} lines parse")
    st = sum_stats(stats)
    warn = duration_warning(st, plan.duration_unit)
    if warn:
        log.warning("catalog %s: %s", plan.path, warn)
        st["duration_unit_warning"] = warn
    if duration_s_total is None:
        duration_s_total = float(pc.sum(table.column("duration_s")).as_py() or 0.0) if table is not None else 0.0
    log.info("catalog %s: %d rows read, %d usable, %d rejected", plan.path, total, used, rej.num_rows)
    return Catalog(table=table, rejects=rej, rows_read=total, fmt=plan.fmt, base_dir=plan.base_dir,
                   rows_used=used, duration_s_total=duration_s_total, stats=st)


# ------------------------------------------------------------------ blocks held or spilled between the passes


def read_candidate_rows(plan: CatalogPlan, index: int, local: np.ndarray, spill_dir: str | None = None) -> pa.Table:
    return candidate_rows(_block_again(plan, index, spill_dir), local)


def load_partition(plan: CatalogPlan, index: int, first_row: int, drop: np.ndarray, *gate: Any,
                   spill_dir: str | None = None) -> pa.Table:
    """Read block `index` and return its final partition (on a worker). `gate` only orders the task.

    With `spill_dir`, the block validated by pass 1 is read back from there (an LZ4 Arrow IPC file)
    instead of being parsed and validated again.
    """
    return finish_block(_block_again(plan, index, spill_dir), first_row, drop)


def _spill_path(spill_dir: str, index: int) -> str:
    return os.path.join(spill_dir, f"block-{index:06d}.arrow")


def _spill(read: BlockRead, spill_dir: str, index: int) -> None:
    import pyarrow.ipc as ipc

    path = _spill_path(spill_dir, index)
    tmp = f"{path}.{os.getpid()}.tmp"
    with pa.OSFile(tmp, "wb") as f, ipc.new_file(f, read.table.schema,
                                                  options=ipc.IpcWriteOptions(compression="lz4")) as w:
        w.write_table(read.table)
    os.replace(tmp, path)


def _block_again(plan: CatalogPlan, index: int, spill_dir: str | None) -> BlockRead:
    if spill_dir and os.path.exists(_spill_path(spill_dir, index)):
        import pyarrow.ipc as ipc

        with pa.memory_map(_spill_path(spill_dir, index)) as src:
            table = ipc.open_file(src).read_all()
        return BlockRead(table, empty_rejects(), table.num_rows)
    return read_block(plan, index)


# ---------------------------------------------------------------------------------------------------- on Dask

# Blocks are held between the read and the matching only when their bytes (as planned) stay under this.
# PAIRMINER_HOLD_BYTES overrides it (0: always read again on the workers, as at scale).
HOLD_BYTES = int(os.environ.get("PAIRMINER_HOLD_BYTES", 1 << 30))
LOCAL_SCHEDULERS = ("threads", "synchronous")


class CatalogParts:
    """A catalog read as Dask partitions, for the discover graph.

    `parts` are the partitions for the first pass over the catalog; `after(gate)` gives them again for a
    second pass, as tasks that start only once `gate` is computed. When the catalog is small and the
    scheduler is a local one (threads, processes, synchronous), both are the same in-memory tables,
    read once. Otherwise (a dask.distributed cluster, or a large catalog) they are read tasks
    that run on the workers: each block is read again where it is needed and nothing is held between
    the passes, so no process holds more than the blocks it is working on. The client holds the plan,
    the counts and the rejects, never rows.

    Attributes:
        catalog: counts, rejects and base_dir (`table` is None).
        parts: list of pa.Table or dask Delayed producing one.
        held: True when the partitions are in-memory tables.
    """

    def __init__(self, catalog: Catalog, plan: CatalogPlan, firsts: list[int], drops: dict[int, np.ndarray],
                 tables: list[pa.Table] | None, spill_dir: str | None = None):
        self.catalog, self.plan, self.firsts, self.drops = catalog, plan, firsts, drops
        self.spill_dir = spill_dir
        self.held = tables is not None
        self.parts = tables if tables is not None else self._loads("part", ())

    def _loads(self, name: str, gate: tuple) -> list:
        import dask

        load = dask.delayed(load_partition, pure=True)
        none = np.zeros(0, np.int64)
        return [load(self.plan, i, self.firsts[i], self.drops.get(i, none), *gate, spill_dir=self.spill_dir,
                     dask_key_name=f"{name}-{i}")
                for i in range(len(self.plan.blocks))]

    def after(self, gate: Any, name: str = "part-again") -> list:
        """The partitions again, for tasks that also need `gate` (e.g. the broadcast version side).

        Each call under its own `name` is a separate read (the Dask keys must differ).
        """
        if self.held:
            return self.parts
        return self._loads(name, (gate,))


def read_partitions(path: str | os.PathLike, runner: Any, *, columns: Mapping[str, str] | None = None,
                    duration_unit: str = "s", partition_rows: int = 500_000,
                    block_bytes: int | None = None, hold_bytes: int | None = None) -> CatalogParts:
    """Plan a catalog on the client, read and check it on the workers of `runner` (a parallel.Runner).

    Pass 1 reads every block, validates it and hashes its usable ids into buckets; one task per bucket
    finds the hashes that repeat (a hash-partitioned pass: 12 bytes a row travel, never the rows); the
    blocks holding candidates are read again to confirm on the strings. The counts, the rejects and the
    duplicate drops come back to the client; the rows stay on the workers (see CatalogParts).

    Args:
        path: as for `plan_catalog`.
        runner: where to compute (`pairminer.parallel.dask_runner`).
        partition_rows: Parquet rows per block; CSV blocks hold about this many rows.
        block_bytes: CSV bytes per block.
        hold_bytes: keep the blocks in memory between the passes when they plan under this many bytes
            and the scheduler is local (default HOLD_BYTES).
    """
    import dask

    plan = plan_catalog(path, columns=columns, duration_unit=duration_unit, block_bytes=block_bytes,
                        partition_rows=partition_rows)
    n = len(plan.blocks)
    hold = runner.spec in LOCAL_SCHEDULERS and \
        sum(b.nbytes for b in plan.blocks) <= (HOLD_BYTES if hold_bytes is None else hold_bytes)
    if hold:
        reads = runner.compute([dask.delayed(read_block, pure=True)(plan, i, dask_key_name=f"read-{i}")
                                for i in range(n)], label="read catalog")[0]
        extra, tables = combine_reads(plan, reads)
        cat = assemble(plan, tables, extra["rejects"], [r.rows_read for r in reads], [r.stats for r in reads])
        firsts = first_rows(plan, [r.n_lines for r in reads])
        return CatalogParts(replace_table(cat), plan, firsts, {}, tables)
    n_buckets = max(1, min(n, 64))
    spill_dir = None
    if runner.spec in ("threads", "synchronous", "processes"):
        # One machine: pass 1 keeps each validated block on local disk (LZ4 Arrow IPC), so the later
        # passes read it back instead of parsing and validating it again. Removed with the CatalogParts.
        import shutil
        import tempfile
        import weakref

        spill_dir = tempfile.mkdtemp(prefix="pairminer-blocks-", dir=os.environ.get("PAIRMINER_SPILL_DIR") or None)
        log.info("catalog %s: validated blocks kept in %s during the run", plan.path, spill_dir)
    scans = [dask.delayed(_scan_block, pure=True, nout=2)(plan, i, n_buckets, spill_dir, dask_key_name=f"scan-{i}")
             for i in range(n)]
    summaries = [s[0] for s in scans]
    dups = [dask.delayed(find_duplicates, pure=True)([s[1][j] for s in scans], dask_key_name=f"dup-ids-{j}")
            for j in range(n_buckets)]
    summaries, dups = runner.compute(summaries, dups, label="read catalog")
    firsts = first_rows(plan, [s["n_lines"] for s in summaries])
    cands = merge_candidates(dups)
    cand_rows = {}
    if cands:
        idx = sorted(cands)
        got = runner.compute([dask.delayed(read_candidate_rows, pure=True)(plan, i, cands[i], spill_dir,
                                                                           dask_key_name=f"dup-rows-{i}")
                              for i in idx], label="confirm duplicate ids")[0]
        cand_rows = dict(zip(idx, got))
    drops = confirm_duplicates(cand_rows)
    rejects = [finish_rejects(s["rejects"], f) for s, f in zip(summaries, firsts)]
    rejects += [duplicate_rejects(cand_rows[i], d, firsts[i], duration_unit) for i, d in drops.items()]
    dropped_s = sum(float(pc.sum(cand_rows[i].filter(pc.is_in(cand_rows[i].column("local_row"),
                                                              pa.array(d, pa.int64()))).column("duration_s")
                                 ).as_py() or 0.0) for i, d in drops.items())
    stats = [s["stats"] for s in summaries]
    used = sum(s["stats"]["usable"] for s in summaries) - sum(len(d) for d in drops.values())
    total_s = sum(s["stats"]["duration_s_sum"] for s in summaries) - dropped_s
    cat = assemble(plan, None, rejects, [s["rows_read"] for s in summaries], stats, rows_used=used,
                   duration_s_total=total_s)
    parts = CatalogParts(cat, plan, firsts, drops, None, spill_dir)
    if spill_dir:
        weakref.finalize(parts, shutil.rmtree, spill_dir, True)
    return parts


def replace_table(cat: Catalog) -> Catalog:
    """The catalog without its rows (they live in the partitions)."""
    return Catalog(None, cat.rejects, cat.rows_read, cat.fmt, cat.base_dir, cat.rows_used, cat.duration_s_total,
                   cat.stats)


def _scan_block(plan: CatalogPlan, index: int, n_buckets: int, spill_dir: str | None = None) -> tuple[dict, list]:
    """Pass 1 on a worker: (summary for the client, id hash buckets for the duplicate pass)."""
    r = read_block(plan, index)
    if spill_dir:
        _spill(r, spill_dir, index)
    summary = {"rows_read": r.rows_read, "n_lines": r.n_lines, "rejects": r.rejects, "stats": r.stats}
    return summary, id_buckets(r, n_buckets)
