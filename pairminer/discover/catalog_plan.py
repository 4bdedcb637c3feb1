"""What a catalog read is made of: the `Block` and `CatalogPlan` specs the client hands to the workers,
the `BlockRead` a worker returns, and the mapping of the schema's columns onto the input's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import pyarrow as pa

from ..errors import CatalogError
from ..schemas import table_schema


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
