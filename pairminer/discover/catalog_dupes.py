"""The hash-partitioned duplicate `track_id` pass: ids hashed into buckets per block, repeats found a
bucket at a time, confirmed on the strings, and the later rows dropped from the final partitions."""

from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .catalog_decode import _to_utf8
from .catalog_plan import BlockRead
from .catalog_validate import _REASONS, _duration_text, _reason_text


def _chunk_hashes(arr: pa.Array) -> np.ndarray:
    """64-bit hash of each string of a `string` array, 8 bytes at a time over Arrow's buffers.

    Strings longer than 256 bytes are hashed with BLAKE2b one by one (rare for ids).
    """
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1]
    lengths = np.diff(offsets)
    long = lengths > 256
    maxlen = int(lengths[~long].max()) if (~long).any() else 0
    base, nbytes = int(offsets[0]), int(offsets[-1] - offsets[0])
    pad = np.zeros(nbytes + 16, dtype=np.uint8)
    if arr.buffers()[2] is not None and nbytes:
        pad[:nbytes] = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[base: base + nbytes]
    # A little-endian uint64 starting at every byte offset (an unaligned, overlapping view).
    words = np.ndarray(shape=(nbytes + 8,), dtype="<u8", buffer=pad, strides=(1,))
    starts = (offsets[:-1] - base).astype(np.int64)
    h = lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    prime = np.uint64(0xFF51AFD7ED558CCD)
    with np.errstate(over="ignore"):
        for j in range(0, maxlen, 8):
            rem = np.clip(lengths - j, 0, 8).astype(np.uint64)
            mask = np.where(rem >= 8, np.uint64(0xFFFFFFFFFFFFFFFF),
                            (np.uint64(1) << (rem * np.uint64(8))) - np.uint64(1))
            # a short string near the end would read past the buffer at offset j: clip (masked anyway)
            at = np.minimum(starts + j, nbytes)
            mixed = (h ^ (words[at] & mask)) * prime
            mixed ^= mixed >> np.uint64(33)
            # only strings that still have bytes at j: a hash must not depend on its neighbours' lengths
            h = np.where(lengths > j, mixed, h)
    if long.any():
        for i in np.flatnonzero(long):
            v = arr[int(i)].as_py().encode("utf-8")
            h[i] = np.frombuffer(hashlib.blake2b(v, digest_size=8).digest(), dtype="<u8")[0] | np.uint64(1) << 63
    return h


def _string_hashes(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A 64-bit hash of each (non-null) string, chunk by chunk so temporaries stay small; deterministic
    across processes and machines."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    if not pa.types.is_string(col.type):
        col = _to_utf8(col)
    out = [_chunk_hashes(arr) for arr in col.chunks if len(arr)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.uint64)


def id_buckets(read: BlockRead, n_buckets: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The block's usable ids split by hash into `n_buckets` buckets: (hash uint64, local_row int32) each.

    12 bytes a row travel: the strings stay on the worker.
    """
    h = _string_hashes(read.table.column("track_id"))
    b = (h % np.uint64(n_buckets)).astype(np.int64)
    order = np.argsort(b, kind="stable")
    bounds = np.searchsorted(b[order], np.arange(n_buckets + 1))
    local = read.table.column("local_row").to_numpy().astype(np.int32)
    return [(h[order[bounds[j]:bounds[j + 1]]], local[order[bounds[j]:bounds[j + 1]]]) for j in range(n_buckets)]


def find_duplicates(bucket: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[int, np.ndarray]:
    """One bucket of every block (in block order) -> {block index: local rows whose id hash repeats}.

    These are candidates, the first occurrences included: `confirm_duplicates` decides on the strings,
    so a hash collision never drops a row.
    """
    if sum(len(x[0]) for x in bucket) < 2:
        return {}
    h = np.concatenate([x[0] for x in bucket])
    hs = np.sort(h)
    dup_h = np.unique(hs[1:][hs[1:] == hs[:-1]])
    if len(dup_h) == 0:
        return {}
    out = {}
    for blk, (bh, local) in enumerate(bucket):
        sel = np.isin(bh, dup_h)
        if sel.any():
            out[blk] = local[sel].astype(np.int64)
    return out


def merge_candidates(per_bucket: Sequence[Mapping[int, np.ndarray]]) -> dict[int, np.ndarray]:
    """{block: rows} of every bucket -> {block: sorted local rows}."""
    out: dict[int, list] = {}
    for d in per_bucket:
        for b, rows in d.items():
            out.setdefault(b, []).append(rows)
    return {b: np.sort(np.concatenate(x)) for b, x in sorted(out.items())}


def candidate_rows(read: BlockRead, local: np.ndarray) -> pa.Table:
    """The rows of a block named by `local` (duplicate candidates), with their ids."""
    return read.table.take(pa.array(local, pa.int64()))


def confirm_duplicates(cands: Mapping[int, pa.Table]) -> dict[int, np.ndarray]:
    """{block: candidate rows} -> {block: local rows to drop}: every row whose id appeared on an earlier
    usable row (earlier block, or same block and earlier row)."""
    seen: set = set()
    drops: dict[int, list[int]] = {}
    for blk in sorted(cands):
        t = cands[blk]
        for local, tid in zip(t.column("local_row").to_pylist(), t.column("track_id").to_pylist()):
            if tid in seen:
                drops.setdefault(blk, []).append(local)
            seen.add(tid)
    return {b: np.asarray(v, dtype=np.int64) for b, v in drops.items()}


def duplicate_rejects(cand: pa.Table, drop: np.ndarray, first_row: int, duration_unit: str) -> pa.Table:
    """Rejects (schema `rejects`) of the dropped duplicates among one block's candidate rows."""
    dup = cand.filter(pc.is_in(cand.column("local_row"), pa.array(drop, pa.int64())))
    rej = pa.table({
        "row_number": pc.add(dup.column("row_number"), first_row),
        "reason_code": pa.array([_REASONS[5][0]] * dup.num_rows, pa.string()),
        "reason": pa.array([_REASONS[5][1]] * dup.num_rows, pa.string()),
        "track_id": _to_utf8(dup.column("track_id")), "artist": _to_utf8(dup.column("artist")),
        "title": _to_utf8(dup.column("title")),
        "duration": _duration_text(dup.column("duration_s"), duration_unit),
        "raw": pa.nulls(dup.num_rows, pa.string()),
    })
    return rej.set_column(2, "reason", _reason_text(rej))


def finish_block(read: BlockRead, first_row: int, drop: np.ndarray) -> pa.Table:
    """The partition handed to matching: row numbers made absolute, duplicates dropped, no `local_row`.

    Args:
        read: the block as `read_block` returned it.
        first_row: CSV: the line number of the block's first line; Parquet: 0 (numbers are final).
        drop: local rows that repeat an earlier id (from `confirm_duplicates`).
    """
    table = read.table
    if first_row:
        table = table.set_column(table.schema.get_field_index("row_number"), "row_number",
                                 pc.add(table.column("row_number"), first_row))
    if len(drop):
        keep = np.ones(table.num_rows, dtype=bool)
        keep[drop] = False
        table = table.filter(pa.array(keep))
    return table.drop_columns(["local_row"])
