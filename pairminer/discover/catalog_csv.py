"""CSV catalogs: the header, byte-range blocks cut at line ends, parsing a block (Arrow's fast reader,
or line by line when a block has bad or blank lines), and the line numbers of each block's rows."""

from __future__ import annotations

import csv
import logging
import sys
from typing import Sequence

import numpy as np
import pyarrow as pa

from ..errors import CatalogError
from .catalog_decode import _decode_mixed, _decode_stream, _detect_stream, _stream_head, _to_utf8, _unescape
from .catalog_files import _open, _read_range, _size
from .catalog_plan import Block, CatalogPlan, _check_columns

log = logging.getLogger(__name__)

DEFAULT_BLOCK_BYTES = 64 << 20
# A CSV field may be this long (Python's csv module stops at 128 KiB by default).
MAX_FIELD_BYTES = 64 << 20


def _plan_csv(path: str, fpath: str, head: bytes, mapping: dict, unit: str, block_bytes: int | None,
              base: str, partition_rows: int = 500_000) -> CatalogPlan:
    if len(head) < 4096 and not head.strip(b"\xef\xbb\xbf \t\r\n"):
        raise CatalogError(f"catalog {path} is empty; it needs a header line and at least one row")
    stream = _detect_stream(head)
    if not stream and b"\n" not in head and b"\r" in head.rstrip(b"\r"):
        stream = "cr"  # old Mac line ends: no \n at all
    if stream:
        log.info("catalog %s is %s: read as one stream by one worker (convert large files to a plain "
                 "UTF-8 CSV or Parquet so they can be read in parallel blocks)", path, stream)
        text_head = _stream_head(fpath, stream)
    else:
        text_head = head
        if b"\n" not in head:
            with _open(fpath) as f:
                text_head = f.read()  # a one-line file, or a header over 64 KiB
    if len(text_head) < 4096 and not text_head.strip(b"\xef\xbb\xbf \t\r\n"):
        raise CatalogError(f"catalog {path} is empty; it needs a header line and at least one row")
    names, header_end = _decode_header(text_head, path)
    resolved = _check_columns(names, mapping, path)
    if block_bytes is None:
        sample = text_head[header_end:]
        per_line = len(sample) / max(1, sample.count(b"\n")) if sample.count(b"\n") > 10 else 64
        block_bytes = int(min(DEFAULT_BLOCK_BYTES * 4, max(1 << 16, per_line * partition_rows)))
    if stream:
        blocks = (Block(fpath, header_end, -1, nbytes=_size(fpath) * (4 if stream not in ("cr", "utf-16") else 1)),)
    else:
        blocks = tuple(_csv_blocks(fpath, header_end, _size(fpath), block_bytes))
    return CatalogPlan(path, "csv", base, blocks, tuple(names), tuple(resolved.items()), unit, stream, header_end)


def _csv_blocks(path: str, start: int, size: int, block_bytes: int) -> list[Block]:
    """Byte ranges cut just after a line end near every multiple of `block_bytes` (a few reads of 64 KiB)."""
    cuts = [start]
    nominal = start + block_bytes
    while nominal < size:
        pos = nominal
        found = -1
        while pos < size:
            window = _read_range(path, pos, min(size, pos + (1 << 16)))
            i = window.find(b"\n")
            if i >= 0:
                found = pos + i + 1
                break
            pos += len(window)
        if found < 0 or found >= size:
            break
        if found > cuts[-1]:
            cuts.append(found)
        nominal = max(found, nominal) + block_bytes
    cuts.append(size)
    return [Block(path, a, b, nbytes=b - a) for a, b in zip(cuts[:-1], cuts[1:]) if b > a] or \
        [Block(path, start, size, nbytes=size - start)]


def _decode_header(data: bytes, path: str) -> tuple[list[str], int]:
    """Column names from the first line, and the offset where data rows start."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    end = data.find(b"\n", start)
    line = data[start: end if end >= 0 else len(data)].rstrip(b"\r")
    if not line.strip():
        raise CatalogError("catalog is empty: the first line should be a header such as track_id,artist,title,duration")
    if b"\x00" in line:
        raise CatalogError("catalog is not a text CSV file (it holds binary data); give a UTF-8 (or UTF-16, or "
                           "gzip/zstd-compressed) CSV or a Parquet file")
    text = _decode_mixed(line)
    try:
        names = next(csv.reader([text]))
    except csv.Error as exc:
        raise CatalogError(f"catalog header cannot be parsed: {exc}") from exc
    names = [n.strip() for n in names]
    # Spreadsheets pad rows with empty cells ("a,b,c,,,"): unnamed columns are kept but never used.
    names = [n if n else f"_unnamed_{i}" for i, n in enumerate(names)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CatalogError(f"catalog header repeats column name(s) {dup}; make column names unique")
    return names, (end + 1 if end >= 0 else len(data))


def _block_bytes(plan: CatalogPlan, block: Block) -> bytes:
    if plan.stream:
        data = _decode_stream(_read_range(block.path, 0, -1), plan.stream)
        return data[plan.header_end:]
    return _read_range(block.path, block.start, block.end)


def _count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _read_csv_fast(data: bytes, names: list[str], use_cols: list[str], n_lines: int) -> pa.Table | None:
    """Multi-threaded Arrow parse of a clean block; None when the block needs the careful path.

    The careful path is taken when any line does not parse, when there are blank lines, or when the
    record count differs from the line count (a quoted value spanning lines).
    """
    import pyarrow.csv as pacsv

    read_opts = pacsv.ReadOptions(column_names=names, use_threads=True, block_size=1 << 20)
    parse_opts = pacsv.ParseOptions(newlines_in_values=False)
    table = None
    # Strings first (Arrow validates UTF-8 while parsing); binary only for blocks with invalid UTF-8.
    for text_type in (pa.string(), pa.binary()):
        convert_opts = pacsv.ConvertOptions(
            column_types={n: text_type for n in use_cols}, include_columns=use_cols, strings_can_be_null=False,
            quoted_strings_can_be_null=False, null_values=[],
        )
        try:
            table = pacsv.read_csv(pa.BufferReader(data), read_options=read_opts, parse_options=parse_opts,
                                   convert_options=convert_opts)
            break
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if "UTF8" not in str(exc) and "utf8" not in str(exc).lower():
                return None
    if table is None or table.num_rows != n_lines:
        return None
    # Arrow accepts a quote left open on the last line of its input (the value then holds the line end);
    # anywhere else an open quote merges lines and the counts differ.
    last = table.slice(table.num_rows - 1) if table.num_rows else table
    for col in last.columns:
        v = col[0].as_py() if len(col) else None
        if v is not None and (b"\n" in v if isinstance(v, bytes) else "\n" in v):
            return None
    return table


def _read_csv_careful(data: bytes, names: list[str], use_cols: list[str]):
    """Line-by-line parse: one physical line is one record. Slower, exact about every bad line.

    Returns (table of strings, 0-based line offsets of its rows, [(line offset, why, text)]).
    """
    csv.field_size_limit(min(sys.maxsize, MAX_FIELD_BYTES))
    idx = [names.index(c) for c in use_cols]
    cols: list[list] = [[] for _ in use_cols]
    line_offsets: list[int] = []
    bad: list[tuple[int, str, str]] = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    expected = len(names)
    for number, raw in enumerate(lines):
        # surrogateescape keeps invalid bytes so each field is decoded on its own below, as the fast path does
        text = raw.rstrip(b"\r").decode("utf-8", errors="surrogateescape")
        if not text.strip():
            continue  # blank lines are not records
        fields, why = _parse_line(text)
        if fields is not None and len(fields) != expected:
            why = f"{len(fields)} fields, the header has {expected}"
        if why:
            bad.append((number, why, _unescape(text)[:2000]))
            continue
        line_offsets.append(number)
        for out, i in zip(cols, idx):
            out.append(_unescape(fields[i]))
    table = pa.table({c: pa.array(v, pa.string()) for c, v in zip(use_cols, cols)})
    return table, np.asarray(line_offsets, dtype=np.int64), bad


def _parse_line(text: str) -> tuple[list[str] | None, str]:
    """Fields of one CSV line, or (None, why). A quote left open is an error; a stray quote inside a
    value is read as Arrow's parser reads it (the fast path), so both paths agree."""
    try:
        return next(csv.reader([text], strict=True)), ""
    except StopIteration:
        return None, "empty record"
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            return None, f"a field is longer than {MAX_FIELD_BYTES >> 20} MiB"
        if "unexpected end of data" in str(exc):
            return None, "unbalanced quotes; a quoted value may not span lines"
    try:
        return next(csv.reader([text], strict=False)), ""
    except csv.Error as exc:
        return None, f"malformed quoting ({exc})"


def _read_csv_block(plan: CatalogPlan, block: Block) -> tuple[pa.Table, list[tuple[int, str, str]], int]:
    data = _block_bytes(plan, block)
    n_lines = _count_lines(data)
    names, use_cols = list(plan.names), plan.use_cols
    fast = _read_csv_fast(data, names, use_cols, n_lines) if data else None
    if fast is not None:
        table = pa.table({col: _to_utf8(fast.column(src)) for col, src in plan.resolved})
        offsets = np.arange(table.num_rows, dtype=np.int64)
        bad: list[tuple[int, str, str]] = []
    else:
        if data:
            log.info("catalog %s bytes %d-%d need the line-by-line parser (bad or blank lines)",
                     block.path, block.start, block.end)
        raw, offsets, bad = _read_csv_careful(data, names, use_cols)
        table = pa.table({col: raw.column(src) for col, src in plan.resolved})
    table = table.append_column("row_number", pa.array(offsets, pa.int64()))
    return table, bad, n_lines


def first_rows(plan: CatalogPlan, n_lines: Sequence[int]) -> list[int]:
    """Per block, what `finish_block` adds to its row numbers: CSV line number of its first line."""
    if plan.fmt == "parquet":
        return [0] * len(plan.blocks)
    first = 2  # the header is line 1
    out = []
    for n in n_lines:
        out.append(first)
        first += n
    return out
