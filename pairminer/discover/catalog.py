"""Read and validate a catalog (CSV or Parquet, local or fsspec URL) into usable rows + rejects.

The expected columns come from `schemas/catalog.schema.json`. Values are read as text and validated
with vectorised Arrow kernels, so a malformed value rejects one row, never the whole file. A file
that is not a catalog at all (empty, wrong columns, binary garbage, unreadable path) raises
CatalogError with a one-line message.

`row_number` identifies a row in the input: for CSV the 1-based line number in the file (the header is
line 1; quoted values may not span lines, so one line is one record); for Parquet the 1-based row
index.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import CatalogError
from ..schemas import table_schema

log = logging.getLogger(__name__)

REJECT_COLUMNS = ("track_id", "artist", "title", "duration")


@dataclass
class Catalog:
    """A validated catalog.

    Attributes:
        table: usable rows; columns track_id, artist, title (str), duration_s (float64, seconds),
            row_number (int64), and the optional columns present (genre, audio_path, artist_id, album,
            isrc) as strings.
        rejects: one row per unusable input row (schema `rejects`).
        rows_read: rows in the input (= len(table) + len(rejects)).
        fmt: "csv" or "parquet".
        base_dir: the catalog's folder (relative audio paths resolve against it), or a URL prefix.
    """

    table: pa.Table
    rejects: pa.Table
    rows_read: int
    fmt: str
    base_dir: str


def _columns_spec() -> tuple[list[str], list[str]]:
    schema = table_schema("catalog")
    required = [c.name for c in schema.columns if c.required]
    optional = [c.name for c in schema.columns if not c.required]
    return required, optional


class _Source:
    """The catalog file: local path or fsspec URL, opened as often as needed, never read whole
    unless the careful parser needs it."""

    def __init__(self, path: str):
        self.path = path
        self.is_url = "://" in path and not path.startswith("file://")
        if not self.is_url:
            p = Path(path.removeprefix("file://"))
            if not p.exists():
                raise CatalogError(f"catalog {path} does not exist; check the path")
            if p.is_dir():
                raise CatalogError(f"catalog {path} is a folder; give a .csv or .parquet file")
            self.local = p

    def open(self):
        try:
            if self.is_url:
                import fsspec

                return fsspec.open(self.path, "rb").open()
            return open(self.local, "rb")
        except FileNotFoundError as exc:
            raise CatalogError(f"catalog {self.path} does not exist") from exc
        except OSError as exc:
            raise CatalogError(f"cannot read catalog {self.path}: {exc.strerror or exc}") from exc
        except Exception as exc:  # fsspec backends raise many types
            raise CatalogError(f"cannot read catalog {self.path}: {exc}") from exc

    def head(self, n: int = 1 << 16) -> bytes:
        with self.open() as f:
            return f.read(n)

    def read_all(self) -> bytes:
        with self.open() as f:
            return f.read()

    def count_lines(self) -> int:
        """Number of lines (a last line without a newline counts)."""
        n, last = 0, b"\n"
        with self.open() as f:
            while chunk := f.read(16 << 20):
                n += chunk.count(b"\n")
                last = chunk[-1:]
        return n + (0 if last == b"\n" else 1)


def _detect_format(path: str, data: bytes) -> str:
    if data[:4] == b"PAR1":
        return "parquet"
    suffix = Path(path.split("?")[0]).suffix.lower()
    if suffix in (".parquet", ".pq"):
        raise CatalogError(f"catalog {path} has a .parquet name but is not a Parquet file")
    return "csv"


def _decode_header(data: bytes) -> tuple[list[str], int]:
    """Column names from the first line, and the offset where data rows start."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    end = data.find(b"\n", start)
    line = data[start : end if end >= 0 else len(data)].rstrip(b"\r")
    if not line.strip():
        raise CatalogError("catalog is empty: the first line should be a header such as track_id,artist,title,duration")
    if b"\x00" in line:
        raise CatalogError("catalog is not a text CSV file (it holds binary data); give a UTF-8 CSV or a Parquet file")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("latin-1")
    import csv

    try:
        names = next(csv.reader([text]))
    except csv.Error as exc:
        raise CatalogError(f"catalog header cannot be parsed: {exc}") from exc
    return [n.strip() for n in names], start


def _check_columns(names: list[str], mapping: Mapping[str, str], path: str) -> dict[str, str]:
    """Map schema column -> input column name; raise CatalogError if a required one is missing."""
    required, optional = _columns_spec()
    unknown = sorted(set(mapping) - set(required) - set(optional))
    if unknown:
        raise CatalogError(
            f"--column maps unknown catalog column(s) {unknown}; known: {', '.join(required + optional)}"
        )
    lower = {n.lower(): n for n in names}
    resolved: dict[str, str] = {}
    for col in required + optional:
        src = mapping.get(col, col)
        if src in names:
            resolved[col] = src
        elif src.lower() in lower:
            resolved[col] = lower[src.lower()]
        elif col in mapping:
            raise CatalogError(f"--column {col}={src}: the catalog has no column {src!r}; it has {names}")
    missing = [c for c in required if c not in resolved]
    if missing and len(names) == 1:
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if sep in names[0]:
                raise CatalogError(
                    f"catalog {path} looks separated by {label}, not commas (header {names[0][:80]!r}); "
                    "save it as a comma-separated CSV or as Parquet"
                )
    if missing:
        shown = ", ".join(repr(n) for n in names[:12]) + (" ..." if len(names) > 12 else "")
        raise CatalogError(
            f"catalog {path} lacks required column(s) {', '.join(missing)} (found {shown}); "
            f"rename them or map them with --column {missing[0]}=YOUR_COLUMN"
        )
    return resolved


def _read_csv_fast(src: "_Source", names: list[str], use_cols: list[str]) -> pa.Table | None:
    """Multi-threaded Arrow parse of a clean file; None when the file needs the careful path.

    The careful path is taken when any line does not parse, when there are blank lines, or when the
    record count differs from the line count (a quoted value spanning lines).
    """
    read_opts = pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=True, block_size=1 << 20)
    parse_opts = pacsv.ParseOptions(newlines_in_values=False)
    table = None
    # Strings first (Arrow validates UTF-8 while parsing); binary only for files with invalid UTF-8.
    for text_type in (pa.string(), pa.binary()):
        convert_opts = pacsv.ConvertOptions(
            column_types={n: text_type for n in use_cols}, include_columns=use_cols, strings_can_be_null=False,
            quoted_strings_can_be_null=False, null_values=[],
        )
        try:
            with src.open() as f:
                table = pacsv.read_csv(f, read_options=read_opts, parse_options=parse_opts,
                                       convert_options=convert_opts)
            break
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if "UTF8" not in str(exc) and "utf8" not in str(exc).lower():
                return None
    if table is None:
        return None
    # Blank lines (skipped by Arrow) or a quoted value spanning lines make the counts differ.
    return table if table.num_rows == src.count_lines() - 1 else None


def _read_csv_careful(data: bytes, offset: int, names: list[str], use_cols: list[str]):
    """Line-by-line parse: one physical line is one record. Slower, exact about every bad line."""
    import csv

    idx = [names.index(c) for c in use_cols]
    cols: list[list] = [[] for _ in use_cols]
    row_numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    lines = data[offset:].split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    expected = len(names)
    for number, raw in enumerate(lines[1:], start=2):
        text = _decode_mixed(raw.rstrip(b"\r"))
        if not text.strip():
            continue  # blank lines are not records
        try:
            fields = next(csv.reader([text], strict=True))
        except (csv.Error, StopIteration):
            fields = None
        if fields is None or len(fields) != expected:
            why = "unbalanced quotes" if fields is None else f"{len(fields)} fields, the header has {expected}"
            bad.append((number, why, text[:2000]))
            continue
        row_numbers.append(number)
        for out, i in zip(cols, idx):
            out.append(fields[i])
    table = pa.table({c: pa.array(v, pa.string()) for c, v in zip(use_cols, cols)})
    return table, np.asarray(row_numbers, dtype=np.int64), bad


def _to_utf8(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Binary -> string. Invalid UTF-8 values (e.g. Latin-1 bytes in a UTF-8 file) decode as Latin-1."""
    try:
        return col.cast(pa.string())
    except pa.ArrowInvalid:
        values = [None if v is None else _decode_mixed(v) for v in col.to_pylist()]
        return pa.chunked_array([pa.array(values, pa.string())])


def _decode_mixed(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("cp1252", errors="replace")


def read_csv(src: "_Source", head: bytes, path: str, mapping: Mapping[str, str]) -> tuple[pa.Table, list[dict], int]:
    if b"\n" not in head:
        head = src.read_all()
    names, offset = _decode_header(head)
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise CatalogError(f"catalog header repeats column name(s) {dup}; make column names unique")
    resolved = _check_columns(names, mapping, path)
    use_cols = sorted(set(resolved.values()), key=names.index)
    fast = _read_csv_fast(src, names, use_cols)
    if fast is not None:
        table = pa.table({col: _to_utf8(fast.column(src)) for col, src in resolved.items()})
        row_numbers = np.arange(2, 2 + table.num_rows, dtype=np.int64)
        bad: list[tuple[int, str, str]] = []
    else:
        log.info("catalog %s needs the line-by-line parser (bad or blank lines)", path)
        raw, row_numbers, bad = _read_csv_careful(src.read_all(), offset, names, use_cols)
        table = pa.table({col: raw.column(src) for col, src in resolved.items()})
    table = table.append_column("row_number", pa.array(row_numbers, pa.int64()))
    rejects = [
        {"row_number": n, "reason_code": "unparsable", "raw": text,
         "reason": f"line {n}: unparsable CSV record ({why}); fix its quotes and delimiters"}
        for n, why, text in bad
    ]
    return table, rejects, table.num_rows + len(bad)


def read_parquet(src: "_Source", path: str, mapping: Mapping[str, str]) -> tuple[pa.Table, list[dict], int]:
    try:
        pf = pq.ParquetFile(src.open())
        names = pf.schema_arrow.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise CatalogError(f"catalog {path} is not a readable Parquet file: {exc}") from exc
    resolved = _check_columns(names, mapping, path)
    raw = pf.read(columns=sorted(set(resolved.values())))
    cols = {}
    for col, src in resolved.items():
        c = raw.column(src)
        if col == "duration":
            if not (pa.types.is_integer(c.type) or pa.types.is_floating(c.type) or pa.types.is_string(c.type)
                    or pa.types.is_large_string(c.type) or pa.types.is_decimal(c.type)):
                raise CatalogError(
                    f"catalog column {src!r} has type {c.type}; duration must be numeric seconds "
                    "(or milliseconds with --duration-unit ms)"
                )
            cols[col] = c.cast(pa.float64()) if not pa.types.is_string(c.type) else c
            continue
        try:
            cols[col] = c.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise CatalogError(f"catalog column {src!r} has type {c.type}, which cannot be read as text") from exc
    table = pa.table(cols)
    table = table.append_column("row_number", pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))
    return table, [], table.num_rows


def _blank(col: pa.ChunkedArray) -> np.ndarray:
    """True where the value is null, empty or only whitespace."""
    blank = pc.or_(pc.equal(pc.utf8_length(col), 0), pc.utf8_is_space(col))
    return blank.fill_null(True).to_numpy(zero_copy_only=False)


def _parse_duration(col: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_floating(col.type):
        return col
    for candidate in (col, pc.utf8_trim_whitespace(col)):
        try:
            return candidate.cast(pa.float64())
        except pa.ArrowInvalid:
            continue
    import pandas as pd

    trimmed = pc.utf8_trim_whitespace(col)
    values = pd.to_numeric(pd.Series(trimmed.to_numpy(zero_copy_only=False), dtype=object), errors="coerce")
    return pa.chunked_array([pa.array(values.to_numpy(dtype=np.float64), pa.float64())])


def _chunk_hashes(arr: pa.Array) -> np.ndarray | None:
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1]
    lengths = np.diff(offsets)
    maxlen = int(lengths.max())
    if maxlen > 256:
        return None
    base, nbytes = int(offsets[0]), int(offsets[-1] - offsets[0])
    pad = np.zeros(nbytes + 16, dtype=np.uint8)
    if arr.buffers()[2] is not None and nbytes:
        pad[:nbytes] = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[base: base + nbytes]
    # A little-endian uint64 starting at every byte offset (an unaligned, overlapping view).
    words = np.ndarray(shape=(nbytes + 8,), dtype="<u8", buffer=pad, strides=(1,))
    starts = offsets[:-1] - base
    h = lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    prime = np.uint64(0xFF51AFD7ED558CCD)
    with np.errstate(over="ignore"):
        for j in range(0, maxlen, 8):
            rem = np.clip(lengths - j, 0, 8).astype(np.uint64)
            mask = np.where(rem >= 8, np.uint64(0xFFFFFFFFFFFFFFFF),
                            (np.uint64(1) << (rem * np.uint64(8))) - np.uint64(1))
            mixed = (h ^ (words[starts + j] & mask)) * prime
            mixed ^= mixed >> np.uint64(33)
            # only strings that still have bytes at j: a hash must not depend on its neighbours' lengths
            h = np.where(lengths > j, mixed, h)
    return h


def _string_hashes(col: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """A 64-bit hash of each string, vectorised over Arrow's buffers 8 bytes at a time, chunk by
    chunk so temporaries stay small. None for inputs it does not handle (nulls, values > 256 bytes).
    """
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    out = []
    for arr in chunks:
        if len(arr) == 0:
            continue
        if arr.null_count or not pa.types.is_string(arr.type):
            return None
        h = _chunk_hashes(arr)
        if h is None:
            return None
        out.append(h)
    return np.concatenate(out) if out else None


def _duplicate_mask(ids: pa.ChunkedArray, usable: np.ndarray) -> np.ndarray:
    """True for usable rows whose id already appeared on an earlier usable row (exact)."""
    import pandas as pd

    dup = np.zeros(len(usable), dtype=bool)
    idx = np.flatnonzero(usable)
    h = _string_hashes(ids)
    if h is not None:
        hs = np.sort(h[idx])
        if not (hs[1:] == hs[:-1]).any():  # the common case: every id is distinct
            return dup
        key = pd.Series(h)
    else:
        key = pd.Series(pc.dictionary_encode(ids).combine_chunks().indices.to_numpy(zero_copy_only=False))
    cand = key.iloc[idx].duplicated(keep=False).to_numpy()
    if not cand.any():
        return dup
    # Confirm on the strings themselves (hash collisions are possible, if unlikely).
    rows = idx[cand]
    seen: set = set()
    for r, v in zip(rows.tolist(), ids.take(pa.array(rows)).to_pylist()):
        if v in seen:
            dup[r] = True
        seen.add(v)
    return dup


_REASONS = {  # code -> (reason_code, message)
    1: ("missing_track_id", "empty track_id; every row needs a unique id"),
    2: ("missing_title", "empty title"),
    3: ("missing_artist", "empty artist"),
    4: ("bad_duration", "duration is not a positive finite number of {unit}"),
    5: ("duplicate_track_id", "duplicate track_id; the first row with this id is kept"),
}


def validate(table: pa.Table, duration_unit: str) -> tuple[pa.Table, pa.Table]:
    """Split rows into usable rows and rejects, vectorised. Returns (good, rejects_table)."""
    n = table.num_rows
    codes = np.zeros(n, dtype=np.uint8)  # 0 = usable, else the first problem found (see _REASONS)

    def mark(mask: np.ndarray, code: int) -> None:
        codes[mask & (codes == 0)] = code

    mark(_blank(table.column("track_id")), 1)
    mark(_blank(table.column("title")), 2)
    mark(_blank(table.column("artist")), 3)
    dur_s = _parse_duration(table.column("duration"))
    if duration_unit == "ms":
        dur_s = pc.divide(dur_s, 1000.0)
    d = dur_s.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        mark(~(np.isfinite(d) & (d > 0)), 4)
    ids = table.column("track_id")
    if pc.any(pc.match_substring_regex(ids, r"^\s|\s$")).as_py():
        ids = pc.utf8_trim_whitespace(ids)
    mark(_duplicate_mask(ids, codes == 0), 5)  # the first usable row with an id is kept
    good_mask = codes == 0
    if good_mask.all():  # the common case: no copy
        good = table.set_column(table.schema.get_field_index("duration"), "duration_s", dur_s)
        good = good.set_column(good.schema.get_field_index("track_id"), "track_id", ids)
    else:
        keep = pa.array(good_mask)
        good = table.filter(keep)
        good = good.set_column(good.schema.get_field_index("duration"), "duration_s", dur_s.filter(keep))
        good = good.set_column(good.schema.get_field_index("track_id"), "track_id", ids.filter(keep))
    bad_idx = np.flatnonzero(~good_mask)
    rej = table.take(pa.array(bad_idx, pa.int64()))
    unit = "milliseconds" if duration_unit == "ms" else "seconds"
    row_nums = rej.column("row_number").to_pylist()
    bad_codes = codes[bad_idx].tolist()
    rejects = pa.table({
        "row_number": rej.column("row_number"),
        "reason_code": pa.array([_REASONS[c][0] for c in bad_codes], pa.string()),
        "reason": pa.array([f"row {r}: " + _REASONS[c][1].format(unit=unit) for r, c in zip(row_nums, bad_codes)],
                           pa.string()),
        **{c: rej.column(c).cast(pa.string()) for c in REJECT_COLUMNS},
        "raw": pa.nulls(len(bad_idx), pa.string()),
    })
    return good, rejects


def read_catalog(path: str | os.PathLike, *, columns: Mapping[str, str] | None = None,
                 duration_unit: str = "s") -> Catalog:
    """Read and validate a catalog.

    Args:
        path: CSV or Parquet file, local or fsspec URL.
        columns: schema column -> input column name, e.g. {"title": "track_name"}.
        duration_unit: "s" (default) or "ms".

    Raises:
        CatalogError: when the file is not a usable catalog at all.
    """
    path = str(path)
    if duration_unit not in ("s", "ms"):
        raise CatalogError(f"--duration-unit must be s or ms, not {duration_unit!r}")
    src = _Source(path)
    head = src.head()
    if len(head) < 4096 and not head.strip(b"\xef\xbb\xbf \t\r\n"):
        raise CatalogError(f"catalog {path} is empty; it needs a header line and at least one row")
    fmt = _detect_format(path, head)
    mapping = dict(columns or {})
    if fmt == "parquet":
        table, parse_rejects, rows_read = read_parquet(src, path, mapping)
    else:
        table, parse_rejects, rows_read = read_csv(src, head, path, mapping)
    if rows_read == 0:
        raise CatalogError(f"catalog {path} has a header but no data rows")
    good, rejects = validate(table, duration_unit)
    if parse_rejects:
        extra = pa.Table.from_pylist(
            [{**{c: None for c in REJECT_COLUMNS}, **r} for r in parse_rejects],
            schema=rejects.schema,
        )
        rejects = pa.concat_tables([extra, rejects]).sort_by("row_number")
    if good.num_rows == 0 and rejects.num_rows > 0 and rejects.num_rows == rows_read and rows_read > 20 \
            and set(rejects.column("reason_code").to_pylist()) == {"unparsable"}:
        raise CatalogError(f"catalog {path} is not a CSV catalog: none of its {rows_read} lines parse")
    base = path.rsplit("/", 1)[0] if "://" in path else str(Path(path.removeprefix("file://")).resolve().parent)
    log.info("catalog %s: %d rows read, %d usable, %d rejected", path, rows_read, good.num_rows, rejects.num_rows)
    return Catalog(table=good, rejects=rejects, rows_read=rows_read, fmt=fmt, base_dir=base)
