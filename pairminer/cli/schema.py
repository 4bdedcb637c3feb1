"""`pairminer schema [NAME]`: the schemas of every table and JSON file pairminer reads or writes.

The schema files are loaded through pairminer.schemas (the one source of truth), never copied.
"""

from __future__ import annotations

import json
import shutil
import textwrap

import click

from . import main


def _first_sentence(text: str) -> str:
    text = " ".join((text or "").split())
    cut = text.find(". ")
    return text if cut < 0 else text[: cut + 1]


def _json_type(spec: dict) -> str:
    if "enum" in spec:
        return " | ".join(json.dumps(v) for v in spec["enum"])
    if "const" in spec:
        return json.dumps(spec["const"])
    t = spec.get("type")
    if isinstance(t, list):
        return " | ".join(t)
    if t == "array" and isinstance(spec.get("items"), dict):
        return f"array of {_json_type(spec['items']) or 'object'}"
    if t:
        return str(t)
    if "oneOf" in spec or "anyOf" in spec:
        return " | ".join(_json_type(s) or "object" for s in spec.get("oneOf", spec.get("anyOf", [])))
    return ""


def json_rows(schema: dict, *, max_depth: int = 2) -> list[tuple[str, str, str, str, str]]:
    """(field, type, required, unit, description) rows of a JSON Schema, nested objects as a.b.c."""
    defs = schema.get("$defs", {})

    def deref(spec: dict) -> dict:
        ref = spec.get("$ref", "")
        return defs.get(ref.rsplit("/", 1)[-1], spec) if ref.startswith("#/$defs/") else spec

    rows: list[tuple[str, str, str, str, str]] = []

    def walk(spec: dict, prefix: str, depth: int) -> None:
        spec = deref(spec)
        if spec.get("type") == "array" and isinstance(spec.get("items"), dict):
            spec = deref(spec["items"])
            prefix = f"{prefix}[]" if prefix else prefix
        if "oneOf" in spec:  # e.g. null | object: describe the object
            objs = [deref(s) for s in spec["oneOf"] if deref(s).get("type") == "object"]
            spec = objs[0] if objs else spec
        required = set(spec.get("required", []))
        for key, sub in (spec.get("properties") or {}).items():
            name = f"{prefix}.{key}" if prefix else key
            full = deref(sub)
            typ, desc = _json_type(full) or "object", " ".join(str(full.get("description", "")).split())
            if len(typ) > 24 and "enum" in full:  # long value lists read better in the description
                typ, desc = "enum", f"One of {', '.join(map(str, full['enum']))}. {desc}".strip()
            rows.append((name, typ, "yes" if key in required else "no", str(full.get("unit") or ""), desc))
            if depth < max_depth:
                walk(sub, name, depth + 1)

    walk(schema, "", 0)
    return rows


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """Fixed columns for all but the last; the last (description) wraps to the terminal width."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers[:-1])]
    indent = sum(widths) + 2 * len(widths)
    width = max(shutil.get_terminal_size((120, 24)).columns, indent + 30)
    out = []
    for row in [headers, tuple("-" * len(h) for h in headers), *rows]:
        head = "".join(f"{c:<{w}}  " for c, w in zip(row[:-1], widths))
        desc = textwrap.wrap(row[-1], width - indent) or [""]
        out.append(head + desc[0])
        out.extend(" " * indent + d for d in desc[1:])
    return "\n".join(line.rstrip() for line in out)


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the raw schema file instead of a table.")
def schema(name, as_json):
    """Show the schema NAME (columns, types, nullability, units), or list every schema.

    \b
    Example:
      pairminer schema                  # list them
      pairminer schema candidates       # the columns of candidates.parquet
      pairminer schema run --json       # the raw JSON Schema of run.json
    """
    from ..schemas import available, load_schema

    if not name:
        names = available()
        rows = []
        for n in names:
            s = load_schema(n)
            rows.append((n, s.raw.get("kind", "table"), str(s.version), _first_sentence(s.description)))
        click.echo(_table(("name", "kind", "version", "description"), rows))
        click.echo("\nShow one with: pairminer schema NAME  (--json for the raw file)")
        return
    s = load_schema(name)
    if as_json:
        click.echo(json.dumps(s.raw, indent=2, ensure_ascii=False))
        return
    kind = s.raw.get("kind", "table")
    click.echo(f"{s.name} (schema version {s.version}, {'Parquet table' if kind == 'table' else 'JSON document'})")
    if s.description:
        click.echo(textwrap.fill(" ".join(s.description.split()), width=100))
    click.echo("")
    if kind == "table":
        rows = [(c.name, c.type, "yes" if c.nullable else "no", c.unit or "",
                 ("" if c.required else "(optional column) ") + " ".join(c.description.split())) for c in s.columns]
        click.echo(_table(("column", "type", "nullable", "unit", "description"), rows))
        if s.additional_columns:
            click.echo("\nOther columns are allowed and carried through.")
    else:
        click.echo(_table(("field", "type", "required", "unit", "description"), json_rows(s.json_schema)))
