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
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import CatalogError
from ..schemas import table_schema

log = logging.getLogger(__name__)

REJECT_COLUMNS = ("track_id", "artist", "title", "duration")
# Longest plausible track, in seconds: larger durations are typos, sentinels or milliseconds.
MAX_DURATION_S = 86_400.0
# Durations between this and a day are counted: a catalog mostly made of them is probably in ms.
SUSPECT_DURATION_S = 3 * 3600.0
DEFAULT_BLOCK_BYTES = 64 << 20
# A CSV field may be this long (Python's csv module stops at 128 KiB by default).
MAX_FIELD_BYTES = 64 << 20
_COMPRESSION_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bz2"),
                      (b"\xfd7zXZ\x00", "xz"))


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


@dataclass(frozen=True)
class Block:
    """One unit of reading work: a byte range of a CSV file, or row groups of one Parquet file.

    Attributes:
        path: the file (local path or fsspec URL).
        start, end: CSV byte range [start, end); end = -1 means to the end of the stream.
        row_groups: Parquet row groups of `path`.
        first_row: Parquet: rows before this block in the whole dataset (row_number = first_row + 1 + i).
        nbytes: bytes to read (CSV) or uncompressed row-group bytes (Parquet), to size the reading.
    """

    path: str
    start: int = 0
    end: int = -1
    row_groups: tuple[int, ...] = ()
    first_row: int = 0
    nbytes: int = 0


@dataclass(frozen=True)
class CatalogPlan:
    """What the workers need to read a catalog: small, picklable, no data.

    Attributes:
        path: the catalog as given.
        fmt: "csv" or "parquet".
        base_dir: the catalog's folder or URL prefix.
        blocks: the blocks, in input order.
        names: CSV: every header name (unnamed columns as `_unnamed_<i>`). Parquet: the schema's names.
        resolved: schema column -> input column name.
        duration_unit: "s" or "ms".
        stream: CSV read as one stream: "" (byte ranges), "gzip", "bz2", "zstd", "xz", "utf-16", "cr".
        header_end: CSV: byte offset of the first data line.
    """

    path: str
    fmt: str
    base_dir: str
    blocks: tuple[Block, ...]
    names: tuple[str, ...]
    resolved: tuple[tuple[str, str], ...]
    duration_unit: str = "s"
    stream: str = ""
    header_end: int = 0

    @property
    def use_cols(self) -> list[str]:
        return sorted({src for _, src in self.resolved}, key=list(self.names).index)


@dataclass
class BlockRead:
    """One validated block before the duplicate check.

    Attributes:
        table: usable rows with `row_number` (Parquet: final; CSV: the line offset inside the block,
            0-based; `finish_block` adds the block's first line number) and `local_row` (0-based record
            index in the block, what duplicate drops refer to).
        rejects: schema `rejects`, with the same row numbering as `table`.
        rows_read: records in the block (usable + rejected).
        n_lines: CSV: physical lines in the block (line numbers of the next block start after them).
        stats: counts for catalog-wide checks: "over_a_day", "suspect_long", "with_duration",
            "integral_durations" (usable rows whose duration is a whole number of the unit).
    """

    table: pa.Table
    rejects: pa.Table
    rows_read: int
    n_lines: int = 0
    stats: dict = field(default_factory=dict)


def _columns_spec() -> tuple[list[str], list[str]]:
    schema = table_schema("catalog")
    required = [c.name for c in schema.columns if c.required]
    optional = [c.name for c in schema.columns if not c.required]
    return required, optional


# ---------------------------------------------------------------------------------------------- files


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _open(path: str):
    try:
        if _is_url(path):
            import fsspec

            return fsspec.open(path, "rb").open()
        return open(path.removeprefix("file://"), "rb")
    except FileNotFoundError as exc:
        raise CatalogError(f"catalog {path} does not exist; check the path") from exc
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # fsspec backends raise many types
        raise CatalogError(f"cannot read catalog {path}: {exc}") from exc


def _read_range(path: str, start: int, end: int) -> bytes:
    with _open(path) as f:
        f.seek(start)
        return f.read() if end < 0 else f.read(end - start)


def _size(path: str) -> int:
    with _open(path) as f:
        return f.seek(0, os.SEEK_END)


def _list_files(path: str) -> list[str]:
    """The files a catalog path names: itself, the data files of a folder, or a glob's matches."""
    if _is_url(path):
        import fsspec

        try:
            fs, root = fsspec.core.url_to_fs(path)
        except Exception as exc:  # an unknown protocol, a missing backend
            raise CatalogError(f"cannot read catalog {path}: {exc}") from exc
        proto = path.split("://", 1)[0]

        def url(p: str) -> str:
            return p if "://" in p else f"{proto}://{p.lstrip('/') if proto != 'file' else p}"

        if any(ch in root for ch in "*?["):
            found = sorted(fs.glob(root))
            if not found:
                raise CatalogError(f"catalog {path}: no file matches this pattern")
            return [url(p) for p in found]
        try:
            if fs.isdir(root):
                found = sorted(p for p in fs.find(root) if _is_data_file(p))
                if not found:
                    raise CatalogError(f"catalog {path} is a folder without .parquet files; give a .csv or "
                                       ".parquet file, or a folder of Parquet files")
                return [url(p) for p in found]
        except CatalogError:
            raise
        except Exception:
            pass
        return [path]
    local = path.removeprefix("file://")
    if any(ch in local for ch in "*?["):
        import glob

        found = sorted(p for p in glob.glob(local, recursive=True) if os.path.isfile(p))
        if not found:
            raise CatalogError(f"catalog {path}: no file matches this pattern")
        return found
    p = Path(local)
    if not p.exists():
        raise CatalogError(f"catalog {path} does not exist; check the path")
    if p.is_dir():
        found = sorted(str(f) for f in p.rglob("*") if f.is_file() and _is_data_file(str(f.relative_to(p))))
        if not found:
            raise CatalogError(f"catalog {path} is a folder without .parquet files; give a .csv or .parquet "
                               "file, or a folder of Parquet files")
        return found
    return [str(p)]


def _is_data_file(rel: str) -> bool:
    """Parquet files of a dataset folder (hidden and `_`-prefixed names, as Spark writes, are skipped)."""
    parts = rel.replace("\\", "/").split("/")
    return rel.lower().endswith((".parquet", ".pq")) and not any(x.startswith((".", "_")) for x in parts)


def _base_dir(path: str) -> str:
    if _is_url(path):
        return path.rsplit("/", 1)[0]
    local = Path(path.removeprefix("file://"))
    if local.is_dir():
        return str(local.resolve())
    if any(ch in str(local) for ch in "*?["):
        local = Path(str(local).split("*")[0].split("?")[0].split("[")[0] + "x")
    return str(local.resolve().parent)


# ---------------------------------------------------------------------------------------------- planning


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


def _plan_parquet(path: str, files: list[str], mapping: dict, unit: str, partition_rows: int,
                  base: str) -> CatalogPlan:
    import pyarrow.parquet as pq

    blocks: list[Block] = []
    names: list[str] | None = None
    first_row = 0
    for fpath in files:
        try:
            with _open(fpath) as f:
                pf = pq.ParquetFile(f)
                fnames = pf.schema_arrow.names
                rgs = [pf.metadata.row_group(i) for i in range(pf.metadata.num_row_groups)]
                sizes = [rg.num_rows for rg in rgs]
                rg_bytes = [rg.total_byte_size for rg in rgs]
        except (pa.ArrowInvalid, OSError) as exc:
            raise CatalogError(f"catalog {fpath} is not a readable Parquet file: {exc}") from exc
        dup = sorted({n for n in fnames if fnames.count(n) > 1})
        if dup:
            raise CatalogError(f"catalog {fpath} repeats column name(s) {dup}; make column names unique "
                               "(e.g. rewrite the file with renamed columns)")
        if names is None:
            names = fnames
        group: list[int] = []
        rows = 0
        for i, n in enumerate(sizes + [None]):
            if group and (n is None or rows + n > partition_rows):
                blocks.append(Block(fpath, row_groups=tuple(group), first_row=first_row,
                                    nbytes=sum(rg_bytes[g] for g in group)))
                first_row += rows
                group, rows = [], 0
            if n is not None:
                group.append(i)
                rows += n
    assert names is not None
    resolved = _check_columns(names, mapping, path)
    if first_row == 0:
        raise CatalogError(f"catalog {path} has a header but no data rows")
    return CatalogPlan(path, "parquet", base, tuple(blocks), tuple(names), tuple(resolved.items()), unit)


def _detect_stream(head: bytes) -> str:
    for magic, name in _COMPRESSION_MAGIC:
        if head.startswith(magic):
            return name
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(head) >= 8 and head.count(b"\x00") * 3 > len(head) and \
            (head[1::2].count(0) * 4 > len(head) or head[0::2].count(0) * 4 > len(head)):
        return "utf-16"  # UTF-16 without a byte order mark: every other byte is 0 for Latin text
    return ""


def _decode_stream(data: bytes, stream: str) -> bytes:
    """Bytes of a whole stream -> UTF-8 text bytes with \\n line ends."""
    if stream == "xz":
        import lzma

        data = lzma.decompress(data)
    elif stream in ("gzip", "bz2", "zstd"):
        with pa.CompressedInputStream(pa.BufferReader(data), stream) as f:
            data = f.read()
    elif stream == "utf-16":
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = data.decode("utf-16", errors="replace")
        else:
            even_nuls = data[0::2].count(0) > data[1::2].count(0)
            text = data.decode("utf-16-be" if even_nuls else "utf-16-le", errors="replace")
        data = text.encode("utf-8")
    head = data[: 1 << 16]
    if stream != "cr" and stream not in ("", "utf-16") and _detect_stream(head) not in ("", "utf-16"):
        raise CatalogError("catalog is compressed twice; decompress it once and give the CSV")
    if stream in ("utf-16", "gzip", "bz2", "zstd", "xz") and _detect_stream(head) == "utf-16":
        return _decode_stream(data, "utf-16")
    if b"\n" not in data and b"\r" in data:
        data = data.replace(b"\r", b"\n")
    return data


def _stream_head(path: str, stream: str) -> bytes:
    """The first 64 KiB of the decoded text of a one-stream CSV."""
    if stream == "utf-16":
        return _decode_stream(_read_range(path, 0, 1 << 17), "utf-16")[: 1 << 16]
    if stream == "cr":
        return _read_range(path, 0, 1 << 16).replace(b"\r", b"\n")
    with _open(path) as raw:
        if stream == "xz":
            import lzma

            with lzma.open(raw) as f:
                head = f.read(1 << 16)
        else:
            try:
                with pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), stream) as f:
                    head = f.read(1 << 16)
            except (pa.ArrowInvalid, OSError) as exc:
                raise CatalogError(f"catalog {path} looks {stream}-compressed but cannot be decompressed: "
                                   f"{exc}") from exc
    if _detect_stream(head) == "utf-16":
        head = _decode_stream(head, "utf-16")
    elif b"\n" not in head and b"\r" in head:
        head = head.replace(b"\r", b"\n")
    return head


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


def _check_columns(names: Sequence[str], mapping: Mapping[str, str], path: str) -> dict[str, str]:
    """Map schema column -> input column name; raise CatalogError if a required one is missing."""
    names = list(names)
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
    shown_names = [n for n in names if not n.startswith("_unnamed_")]
    if missing and len(shown_names) == 1:
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if sep in shown_names[0]:
                raise CatalogError(
                    f"catalog {path} looks separated by {label}, not commas (header {shown_names[0][:80]!r}); "
                    "save it as a comma-separated CSV or as Parquet"
                )
    if missing:
        shown = ", ".join(repr(n) for n in shown_names[:12]) + (" ..." if len(shown_names) > 12 else "")
        raise CatalogError(
            f"catalog {path} lacks required column(s) {', '.join(missing)} (found {shown}); "
            f"rename them or map them with --column {missing[0]}=YOUR_COLUMN"
        )
    return resolved


# ---------------------------------------------------------------------------------------------- reading


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


def _to_utf8(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Any column -> string. Invalid UTF-8 bytes decode as cp1252; values that cannot be cast become text
    one by one, so one odd value never fails the column."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_string(col.type):
        return col
    try:
        return col.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    values = []
    for v in col.to_pylist():
        if v is None:
            values.append(None)
        elif isinstance(v, (bytes, bytearray)):
            values.append(_decode_mixed(bytes(v)))
        else:
            values.append(str(v))
    return pa.chunked_array([pa.array(values, pa.string())])


def _unescape(text: str) -> str:
    """A str decoded with surrogateescape -> valid text (invalid UTF-8 bytes read as cp1252)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _decode_mixed(text.encode("utf-8", errors="surrogateescape"))


def _decode_mixed(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("cp1252", errors="replace")


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


_DURATION_TYPES = ("integer", "floating", "decimal", "string", "large_string")


def _read_parquet_block(plan: CatalogPlan, block: Block) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        with _open(block.path) as f:
            raw = pq.ParquetFile(f).read_row_groups(list(block.row_groups), columns=plan.use_cols)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CatalogError(f"catalog {block.path} is not a readable Parquet file: {exc}") from exc
    cols = {}
    for col, src in plan.resolved:
        c = raw.column(src)
        if pa.types.is_dictionary(c.type):
            c = c.cast(c.type.value_type)
        if col == "duration":
            if not any(getattr(pa.types, f"is_{t}")(c.type) for t in _DURATION_TYPES):
                raise CatalogError(
                    f"catalog column {src!r} has type {c.type}; duration must be numeric seconds "
                    "(or milliseconds with --duration-unit ms)"
                )
            if pa.types.is_large_string(c.type):
                c = c.cast(pa.string())
            elif not pa.types.is_string(c.type):
                # unsafe: an int64 sentinel (2^63-1) loses precision instead of failing the whole column;
                # it is then rejected as longer than a day
                c = c.cast(pa.float64(), safe=False)
            cols[col] = c
            continue
        cols[col] = _to_utf8(c)
    table = pa.table(cols)
    return table.append_column("row_number", pa.array(
        np.arange(block.first_row + 1, block.first_row + 1 + table.num_rows, dtype=np.int64)))


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


# ---------------------------------------------------------------------------------------------- validation


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


# ---------------------------------------------------------------------------------------------- duplicates


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


def read_candidate_rows(plan: CatalogPlan, index: int, local: np.ndarray, spill_dir: str | None = None) -> pa.Table:
    return candidate_rows(_block_again(plan, index, spill_dir), local)


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


def finish_rejects(rejects: pa.Table, first_row: int) -> pa.Table:
    """A block's parse/validation rejects with absolute row numbers and full reasons."""
    if first_row:
        rejects = rejects.set_column(0, "row_number", pc.add(rejects.column("row_number"), first_row))
    if rejects.num_rows:
        rejects = rejects.set_column(2, "reason", _reason_text(rejects))
    return rejects


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


# ---------------------------------------------------------------------------------------------- on Dask

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
