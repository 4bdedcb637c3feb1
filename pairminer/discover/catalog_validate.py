"""Per-block validation (vectorised Arrow kernels): usable rows and rejects with their reasons, and the
counts behind the catalog-wide warning on duration units."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schemas import table_schema
from .catalog_decode import _to_utf8

REJECT_COLUMNS = ("track_id", "artist", "title", "duration")
# Longest plausible track, in seconds: larger durations are typos, sentinels or milliseconds.
MAX_DURATION_S = 86_400.0
# Durations between this and a day are counted: a catalog mostly made of them is probably in ms.
SUSPECT_DURATION_S = 3 * 3600.0


def _blank(col: pa.ChunkedArray) -> np.ndarray:
    """True where the value is null, empty or only whitespace."""
    blank = pc.or_(pc.equal(pc.utf8_length(col), 0), pc.utf8_is_space(col))
    return blank.fill_null(True).to_numpy(zero_copy_only=False)


def _parse_duration(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_floating(col.type):
        return col.cast(pa.float64())
    for candidate in (col, pc.utf8_trim_whitespace(col)):
        try:
            return candidate.cast(pa.float64())
        except pa.ArrowInvalid:
            continue
    import pandas as pd

    trimmed = pc.utf8_trim_whitespace(col)
    values = pd.to_numeric(pd.Series(trimmed.to_numpy(zero_copy_only=False), dtype=object), errors="coerce")
    return pa.chunked_array([pa.array(values.to_numpy(dtype=np.float64), pa.float64())])


_REASONS = {  # code -> (reason_code, message)
    1: ("missing_track_id", "empty track_id; every row needs a unique id"),
    2: ("missing_title", "empty title"),
    3: ("missing_artist", "empty artist"),
    4: ("bad_duration", "duration is not a positive finite number of {unit}"),
    5: ("duplicate_track_id", "duplicate track_id; the first row with this id is kept"),
    6: ("bad_duration", "duration is longer than a day ({max_h:.0f} h); if the catalog gives milliseconds, "
                        "pass --duration-unit ms"),
}


def validate_rows(table: pa.Table, duration_unit: str) -> tuple[pa.Table, pa.Table, dict]:
    """Split one block's rows into usable rows and rejects, vectorised (no duplicate check).

    Returns (good, rejects_table, stats); see `BlockRead.stats`.
    """
    n = table.num_rows
    codes = np.zeros(n, dtype=np.uint8)  # 0 = usable, else the first problem found (see _REASONS)

    def mark(mask: np.ndarray, code: int) -> None:
        codes[mask & (codes == 0)] = code

    mark(_blank(table.column("track_id")), 1)
    mark(_blank(table.column("title")), 2)
    mark(_blank(table.column("artist")), 3)
    raw_dur = _parse_duration(table.column("duration"))
    dur_s = pc.divide(raw_dur, 1000.0) if duration_unit == "ms" else raw_dur
    d = dur_s.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        positive = np.isfinite(d) & (d > 0)
        over = positive & (d > MAX_DURATION_S)
        stats = {
            "with_duration": int(positive.sum()),
            "over_a_day": int(over.sum()),
            "suspect_long": int((positive & (d > SUSPECT_DURATION_S)).sum()),
        }
        mark(~positive, 4)
        mark(over, 6)
    ids = table.column("track_id")
    if pc.any(pc.match_substring_regex(ids, r"^\s|\s$")).as_py():
        ids = pc.utf8_trim_whitespace(ids)
    good_mask = codes == 0
    raw_good = raw_dur.to_numpy(zero_copy_only=False)[good_mask] if n else np.zeros(0)
    stats["integral_durations"] = int((np.floor(raw_good) == raw_good).sum())
    stats["usable"] = int(good_mask.sum())
    if good_mask.all():  # the common case: no copy
        good = table.set_column(table.schema.get_field_index("duration"), "duration_s", dur_s)
        good = good.set_column(good.schema.get_field_index("track_id"), "track_id", ids)
    else:
        keep = pa.array(good_mask)
        good = table.filter(keep)
        good = good.set_column(good.schema.get_field_index("duration"), "duration_s", dur_s.filter(keep))
        good = good.set_column(good.schema.get_field_index("track_id"), "track_id", ids.filter(keep))
    stats["duration_s_sum"] = float(pc.sum(good.column("duration_s")).as_py() or 0.0)
    bad_idx = np.flatnonzero(~good_mask)
    return good, _rejects_table(table.take(pa.array(bad_idx, pa.int64())), codes[bad_idx], duration_unit), stats


def _rejects_table(rej: pa.Table, bad_codes: np.ndarray, duration_unit: str) -> pa.Table:
    """Rejected rows (reasons without the row prefix; finish_block adds it once numbers are final)."""
    unit = "milliseconds" if duration_unit == "ms" else "seconds"
    msgs = {c: m.format(unit=unit, max_h=MAX_DURATION_S / 3600) for c, (_, m) in _REASONS.items()}
    codes = bad_codes.tolist()
    return pa.table({
        "row_number": rej.column("row_number"),
        "reason_code": pa.array([_REASONS[c][0] for c in codes], pa.string()),
        "reason": pa.array([msgs[c] for c in codes], pa.string()),
        **{c: _to_utf8(rej.column(c)) for c in REJECT_COLUMNS},
        "raw": pa.nulls(rej.num_rows, pa.string()),
    })


def finish_rejects(rejects: pa.Table, first_row: int) -> pa.Table:
    """A block's parse/validation rejects with absolute row numbers and full reasons."""
    if first_row:
        rejects = rejects.set_column(0, "row_number", pc.add(rejects.column("row_number"), first_row))
    if rejects.num_rows:
        rejects = rejects.set_column(2, "reason", _reason_text(rejects))
    return rejects


def _reason_text(rejects: pa.Table) -> pa.Array:
    """"row N: why" ("line N: unparsable CSV record (why); fix ..." for unparsable lines)."""
    n = pc.cast(rejects.column("row_number"), pa.string())
    why = rejects.column("reason")
    row = pc.binary_join_element_wise("row ", n, ": ", why, "")
    line = pc.binary_join_element_wise("line ", n, ": unparsable CSV record (", why,
                                       "); fix its quotes and delimiters", "")
    return pc.if_else(pc.equal(rejects.column("reason_code"), "unparsable"), line, row)


def _duration_text(col: pa.ChunkedArray, unit: str) -> pa.ChunkedArray:
    return pc.cast(pc.multiply(col, 1000.0) if unit == "ms" else col, pa.string())


def empty_rejects() -> pa.Table:
    return table_schema("rejects").arrow_schema().empty_table()


def duration_warning(stats: Mapping[str, int], unit: str) -> str | None:
    """A warning when most durations look like milliseconds given as seconds, else None."""
    n = stats.get("with_duration", 0)
    if unit == "s" and n and stats.get("suspect_long", 0) > n / 2:
        return (f"{stats['suspect_long']:,} of {n:,} durations are over {SUSPECT_DURATION_S / 3600:.0f} h "
                f"({stats.get('over_a_day', 0):,} over a day, rejected): the duration column looks like "
                "milliseconds; pass --duration-unit ms")
    return None


def sum_stats(stats: Sequence[Mapping[str, Any]]) -> dict:
    out: dict = {}
    for s in stats:
        for k, v in s.items():
            out[k] = out.get(k, 0) + v
    return out
