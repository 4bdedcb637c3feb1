"""Parquet catalogs: blocks of consecutive row groups over the files of a dataset (in sorted path order),
and reading one block into string columns and a numeric or text duration.

Schema evolution: the files of a folder may differ in their optional columns (a `genre` added later).
The catalog's columns are the union over its files; a block of a file without an optional column gets
nulls for it; a file without a required column is a CatalogError naming that file."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import CatalogError
from .catalog_decode import _to_utf8
from .catalog_files import _open
from .catalog_plan import Block, CatalogPlan, _check_columns


def _plan_parquet(path: str, files: list[str], mapping: dict, unit: str, partition_rows: int,
                  base: str) -> CatalogPlan:
    import pyarrow.parquet as pq

    blocks: list[Block] = []
    names: list[str] | None = None
    per_file: dict[str, list[str]] = {}
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
        per_file[fpath] = list(fnames)
        if names is None:
            names = list(fnames)
        else:  # the union, in order of first appearance
            names += [n for n in fnames if n not in names]
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
    from .catalog_plan import _columns_spec

    required = _columns_spec()[0]
    for fpath, fnames in per_file.items():
        lacking = [src for col, src in resolved.items() if col in required and src not in fnames]
        if lacking:
            raise CatalogError(f"catalog {fpath} lacks required column(s) {', '.join(lacking)} that other files of "
                               f"{path} have; every file needs the required columns (optional ones may differ)")
    if first_row == 0:
        raise CatalogError(f"catalog {path} has a header but no data rows")
    return CatalogPlan(path, "parquet", base, tuple(blocks), tuple(names), tuple(resolved.items()), unit)


_DURATION_TYPES = ("integer", "floating", "decimal", "string", "large_string")


def _read_parquet_block(plan: CatalogPlan, block: Block) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        with _open(block.path) as f:
            pf = pq.ParquetFile(f)
            present = set(pf.schema_arrow.names)
            raw = pf.read_row_groups(list(block.row_groups), columns=[c for c in plan.use_cols if c in present])
    except (pa.ArrowInvalid, OSError) as exc:
        raise CatalogError(f"catalog {block.path} is not a readable Parquet file: {exc}") from exc
    cols = {}
    for col, src in plan.resolved:
        if src not in present:  # an optional column this file of the dataset does not have
            if col == "duration":
                raise CatalogError(f"catalog {block.path} lacks required column {src!r}")
            cols[col] = pa.chunked_array([pa.nulls(raw.num_rows, pa.string())])
            continue
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
