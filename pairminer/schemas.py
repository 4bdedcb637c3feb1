"""Load the schemas in `schemas/` (the single source of truth) and validate tables against them.

Two kinds of schema file live in `schemas/<name>.schema.json`:

* ``"kind": "table"``: a documented column list from which the Arrow schema is built::

      {"name": "candidates", "version": 1, "kind": "table", "description": "...",
       "additional_columns": false,
       "columns": [{"name": "mix_duration_s", "type": "float64", "nullable": false,
                    "unit": "s", "description": "..."}, ...]}

  ``type`` is one of ``string, int64, int32, int16, float64, float32, bool``; ``unit`` is free
  text (``s``, ``Hz``, ``dB``, ``BER``...) or null.
* ``"kind": "json"``: a JSON document (a stage report, run.json) checked with JSON Schema; the
  JSON Schema itself is under the ``"json_schema"`` key.

In a source checkout the files are read from the top-level `schemas/`; an installed wheel carries
them as `pairminer/_schemas/`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import ConfigError, SchemaError

_ARROW_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int16": pa.int16(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
    "list<float64>": pa.list_(pa.float64()),
}

SCHEMA_METADATA_NAME = b"pairminer.schema"
SCHEMA_METADATA_VERSION = b"pairminer.schema_version"


def schema_dir() -> Path:
    """The folder holding the schema files (installed copy first, then the source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_schemas", here.parent / "schemas"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("pairminer's schemas/ folder is missing; reinstall the package")


def available() -> list[str]:
    """Names of every schema shipped with pairminer."""
    return sorted(p.name[: -len(".schema.json")] for p in schema_dir().glob("*.schema.json"))


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    unit: str | None
    description: str
    required: bool = True  # for input tables: may the column be absent?

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.type]


@dataclass(frozen=True)
class TableSchema:
    name: str
    version: int
    description: str
    columns: tuple[Column, ...]
    additional_columns: bool
    raw: dict

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def metadata(self) -> dict[bytes, bytes]:
        return {SCHEMA_METADATA_NAME: self.name.encode(), SCHEMA_METADATA_VERSION: str(self.version).encode()}

    def arrow_schema(self, present: list[str] | None = None) -> pa.Schema:
        """Arrow schema of the declared columns (only those in `present`, if given), with metadata."""
        cols = [c for c in self.columns if present is None or c.name in present]
        fields = [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in cols]
        return pa.schema(fields, metadata=self.metadata())

    def problems(self, table: pa.Table) -> list[str]:
        """Every mismatch between `table` and this schema (empty list when it conforms)."""
        out: list[str] = []
        names = set(table.column_names)
        for c in self.columns:
            if c.name not in names:
                if c.required:
                    out.append(f"missing column {c.name!r}")
                continue
            actual = table.schema.field(c.name).type
            if actual != c.arrow_type and not (pa.types.is_null(actual) and c.nullable):
                out.append(f"column {c.name!r} has type {actual}, expected {c.type}")
            elif not c.nullable and table.column(c.name).null_count:
                out.append(f"column {c.name!r} has {table.column(c.name).null_count} null(s) but is not nullable")
        if not self.additional_columns:
            extra = sorted(names - set(self.names))
            if extra:
                out.append(f"unexpected column(s) {extra}")
        return out

    def validate(self, table: pa.Table) -> None:
        """Raise SchemaError listing every problem at once."""
        problems = self.problems(table)
        if problems:
            raise SchemaError(self.name, problems)

    def conform(self, data: Any) -> pa.Table:
        """Build an Arrow table in schema order and types from a DataFrame or Table, then validate.

        Declared columns come first, in schema order; additional columns (when allowed) follow.
        """
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        arrays, fields, problems = [], [], []
        for c in self.columns:
            if c.name not in table.column_names:
                if c.required:
                    problems.append(f"missing column {c.name!r}")
                continue
            col = table.column(c.name)
            try:
                col = col.cast(c.arrow_type) if col.type != c.arrow_type else col
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                problems.append(f"column {c.name!r} cannot be cast to {c.type}: {exc}")
                continue
            arrays.append(col)
            fields.append(pa.field(c.name, c.arrow_type, nullable=c.nullable))
        extra = [n for n in table.column_names if n not in self.names]
        if extra and not self.additional_columns:
            problems.append(f"unexpected column(s) {sorted(extra)}")
        elif extra:
            for n in extra:
                arrays.append(table.column(n))
                fields.append(table.schema.field(n))
        if problems:
            raise SchemaError(self.name, problems)
        out = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=self.metadata()))
        self.validate(out)
        return out


@dataclass(frozen=True)
class JsonDocSchema:
    name: str
    version: int
    description: str
    json_schema: dict
    raw: dict

    def validate(self, doc: Any) -> None:
        import jsonschema

        validator = jsonschema.Draft202012Validator(self.json_schema)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            raise SchemaError(
                self.name, [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors]
            )


@functools.lru_cache(maxsize=None)
def load_schema(name: str) -> TableSchema | JsonDocSchema:
    """Load `schemas/<name>.schema.json`."""
    path = schema_dir() / f"{name}.schema.json"
    if not path.exists():
        raise ConfigError(f"unknown schema {name!r}; known schemas: {', '.join(available())}")
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("kind") == "json":
        return JsonDocSchema(raw["name"], int(raw["version"]), raw.get("description", ""), raw["json_schema"], raw)
    cols = tuple(
        Column(
            name=c["name"],
            type=c["type"],
            nullable=bool(c.get("nullable", True)),
            unit=c.get("unit"),
            description=c.get("description", ""),
            required=bool(c.get("required", True)),
        )
        for c in raw["columns"]
    )
    return TableSchema(
        raw["name"], int(raw["version"]), raw.get("description", ""), cols, bool(raw.get("additional_columns", False)), raw
    )


def table_schema(name: str) -> TableSchema:
    s = load_schema(name)
    if not isinstance(s, TableSchema):
        raise ConfigError(f"schema {name!r} describes a JSON document, not a table")
    return s


def json_schema(name: str) -> JsonDocSchema:
    s = load_schema(name)
    if not isinstance(s, JsonDocSchema):
        raise ConfigError(f"schema {name!r} describes a table, not a JSON document")
    return s
