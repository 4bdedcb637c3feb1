"""Every schema in schemas/ is well formed, and the demo workflow's outputs all validate against theirs.

The demo test runs workflows/demo.yaml (the whole pipeline on data/sample/, a tiny CPU training and
the report) into tmp_path, then validates EVERY Parquet and JSON file it left against its schema.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pairminer.cli import main
from pairminer.schemas import (
    _ARROW_TYPES,
    SCHEMA_METADATA_NAME,
    SCHEMA_METADATA_VERSION,
    JsonDocSchema,
    TableSchema,
    available,
    json_schema,
    load_schema,
    schema_dir,
    table_schema,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILES = sorted((REPO / "schemas").glob("*.schema.json"))

# The list: every table pairminer reads or writes, the fingerprint cache, the report and run files.
REQUIRED = {"catalog", "candidates", "rejects", "verified", "manifest", "fingerprints", "report", "run",
            "discover-report", "verify-report", "targets-report", "train-report", "train-config",
            "genre-breakdown"}


def test_the_code_reads_the_repository_schemas():
    # a source checkout reads schemas/ itself; an installed wheel its copy pairminer/_schemas/
    assert schema_dir().resolve() in ((REPO / "schemas").resolve(), (REPO / "pairminer" / "_schemas").resolve())
    assert set(available()) == {p.name[: -len(".schema.json")] for p in SCHEMA_FILES}
    assert REQUIRED <= set(available())


def test_schemas_ship_in_the_wheel():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    text = json.dumps(cfg)
    assert "pairminer/_schemas" in text, "pyproject must map schemas/ into the wheel as pairminer/_schemas"


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_file_is_well_formed(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    name = path.name[: -len(".schema.json")]
    assert raw["name"] == name
    assert isinstance(raw["version"], int) and raw["version"] >= 1
    assert raw.get("kind") in ("table", "json")
    assert raw.get("description", "").strip(), "say what the file is and who writes it"
    s = load_schema(name)
    if raw["kind"] == "table":
        assert isinstance(s, TableSchema)
        names = [c["name"] for c in raw["columns"]]
        assert len(names) == len(set(names)), "duplicate column names"
        assert names, "a table has columns"
        for c in raw["columns"]:
            assert set(c) <= {"name", "type", "nullable", "unit", "description", "required"}, c
            assert c["type"] in _ARROW_TYPES, f"{c['name']}: unknown type {c['type']}"
            assert isinstance(c.get("nullable"), bool), f"{c['name']}: say whether it may be null"
            assert "unit" in c, f"{c['name']}: give a unit (null when it has none)"
            assert c.get("description", "").strip(), f"{c['name']}: no description"
            if c["name"].endswith("_s"):
                assert c["unit"] == "s", f"{c['name']} is in seconds by its name"
            if c["name"].endswith("_hz"):
                assert c["unit"] == "Hz", c["name"]
            if c["name"].endswith("_db"):
                assert c["unit"] == "dB", c["name"]
        # the Arrow schema builds and carries the name and version
        md = s.arrow_schema().metadata
        assert md[SCHEMA_METADATA_NAME] == name.encode() and md[SCHEMA_METADATA_VERSION] == str(raw["version"]).encode()
    else:
        assert isinstance(s, JsonDocSchema)
        jsonschema.Draft202012Validator.check_schema(raw["json_schema"])
        assert raw["json_schema"].get("type") == "object"


def test_a_table_schema_rejects_what_it_should():
    import pandas as pd

    from pairminer.errors import SchemaError

    s = table_schema("rejects")
    good = {c.name: pd.Series([], dtype="object") for c in s.columns}
    with pytest.raises(SchemaError):
        s.conform(pd.DataFrame({**good, "surprise": []}))
    with pytest.raises(SchemaError):
        s.conform(pd.DataFrame({k: v for k, v in list(good.items())[1:]}))


def test_run_schema_rejects_a_bad_run_json():
    from pairminer.errors import SchemaError

    with pytest.raises(SchemaError) as e:
        json_schema("run").validate({"status": "done", "stages": [{"stage": "nope"}]})
    problems = "\n".join(e.value.problems)
    assert "status: 'done' is not one of" in problems and "stages/0/stage: 'nope' is not one of" in problems


# --------------------------------------------------------------------------------------------------
# `pairminer schema`
# --------------------------------------------------------------------------------------------------


def test_cli_schema_lists_every_schema():
    res = CliRunner().invoke(main, ["schema"])
    assert res.exit_code == 0, res.output
    listed = {line.split()[0] for line in res.output.splitlines()[2:] if line[:1].isalpha()}
    assert set(available()) <= listed


@pytest.mark.parametrize("name", ["candidates", "verified", "manifest", "fingerprints"])
def test_cli_schema_prints_every_column_with_its_type_and_unit(name):
    res = CliRunner().invoke(main, ["schema", name], terminal_width=200)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    for c in table_schema(name).columns:
        row = next(line for line in lines if line.split()[:1] == [c.name])
        fields = row.split()
        assert fields[1] == c.type and fields[2] == ("yes" if c.nullable else "no")
        if c.unit:
            assert row.split(None, 3)[3].startswith(c.unit)


def test_cli_schema_json_kind_and_raw():
    res = CliRunner().invoke(main, ["schema", "run"])
    assert res.exit_code == 0 and "stages[].last_success.config_hash" in res.output
    res = CliRunner().invoke(main, ["schema", "candidates", "--json"])
    assert res.exit_code == 0
    assert json.loads(res.output) == json.loads((REPO / "schemas" / "candidates.schema.json").read_text())
    res = CliRunner().invoke(main, ["schema", "candidate"])
    assert res.exit_code == 2 and "unknown schema 'candidate'" in res.output and "candidates" in res.output


# --------------------------------------------------------------------------------------------------
# The demo workflow, every output validated
# --------------------------------------------------------------------------------------------------

JSON_SCHEMA_OF = {
    "discover-report.json": "discover-report",
    "verify-report.json": "verify-report",
    "targets-report.json": "targets-report",
    "stems-report.json": "stems-report",
    "train-report.json": "train-report",
    "config.json": "train-config",
    "report.json": "report",
    "run.json": "run",
}
PARQUET_SCHEMA_OF = {
    "candidates.parquet": "candidates",
    "rejects.parquet": "rejects",
    "near_misses.parquet": "near_misses",
    "verified.parquet": "verified",
    "manifest.parquet": "manifest",
    "metadata.parquet": "stems-metadata",
    "genre_breakdown.parquet": "genre-breakdown",
}
# Files with no schema on purpose: binary arrays, checkpoints, images, HTML, a CSV copy of a
# validated Parquet table, the training log, and the stems' audio, dataset card and trainer configs
# (checked by tests/stems with the trainers' own loaders).
NOT_TABLES = {".npy", ".pt", ".png", ".html", ".csv", ".jsonl", ".wav", ".flac", ".md", ".yaml", ".yml", ".sh", ".txt"}


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    if not (REPO / "data" / "sample" / "catalog.csv").exists():
        pytest.skip("data/sample is missing; run .venv/bin/python data/make_sample.py")
    from pairminer.workflow import run_workflow

    out = tmp_path_factory.mktemp("demo") / "out"
    first = run_workflow(REPO / "workflows" / "demo.yaml", str(out), progress=False)
    return out, first


@pytest.mark.slow
def test_demo_workflow_outputs_all_validate(demo_out):
    out, first = demo_out
    assert first.ran == ["discover", "verify", "targets", "stems", "train", "report"]
    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    validated: dict[str, str] = {}
    for p in files:
        rel = str(p.relative_to(out))
        if p.suffix == ".json":
            name = JSON_SCHEMA_OF.get(p.name)
            assert name, f"{rel}: a JSON output without a schema"
            json_schema(name).validate(json.loads(p.read_text(encoding="utf-8")))
            validated[rel] = name
        elif p.suffix == ".parquet":
            name = "fingerprints" if p.name.startswith("part-") else PARQUET_SCHEMA_OF.get(p.name)
            assert name, f"{rel}: a Parquet output without a schema"
            table = pq.read_table(p)
            md = table.schema.metadata or {}
            assert md.get(SCHEMA_METADATA_NAME) == name.encode(), f"{rel}: schema name not in its metadata"
            assert md.get(SCHEMA_METADATA_VERSION) == str(table_schema(name).version).encode()
            table_schema(name).validate(table)
            validated[rel] = name
        else:
            assert p.suffix in NOT_TABLES, f"{rel}: an output nobody validates"
    # every stage's main outputs are among them, and they hold real rows
    assert set(validated.values()) >= {"candidates", "rejects", "verified", "manifest", "fingerprints",
                                       "genre-breakdown", "discover-report", "verify-report", "targets-report",
                                       "train-report", "train-config", "report", "run", "stems-metadata",
                                       "stems-report"}
    verified = pq.read_table(out / "verified.parquet").to_pandas()
    manifest = pq.read_table(out / "targets" / "manifest.parquet").to_pandas()
    assert (verified["status"] == "verified").sum() == len(manifest) > 0
    run = json.loads((out / "run.json").read_text())
    st = {e["stage"]: e for e in run["stages"]}
    assert st["targets"]["last_success"]["results"]["counts"]["written"] == len(manifest)
    assert st["train"]["last_success"]["results"]["counts"]["steps_run"] > 0
    assert all(run["timings_s"][s] > 0 for s in st)


@pytest.mark.slow
def test_demo_workflow_second_run_skips_everything(demo_out):
    from pairminer.workflow import run_workflow

    out, _ = demo_out
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "run.json"}
    again = run_workflow(REPO / "workflows" / "demo.yaml", str(out), progress=False)
    assert again.ran == [] and again.skipped == ["discover", "verify", "targets", "stems", "train", "report"]
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "run.json"}
    assert after == before  # nothing was rewritten
    json_schema("run").validate(json.loads((out / "run.json").read_text()))


@pytest.mark.slow
def test_demo_outputs_are_where_the_registry_says(demo_out):
    """Every artifact of pairminer/stages.py is at its registry path after the demo, with its schema."""
    from pairminer import stages
    from pairminer.workflow import load_workflow

    out, _ = demo_out
    wf = load_workflow(REPO / "workflows" / "demo.yaml", out=str(out))
    for art in stages.ARTIFACTS.values():
        if art.path is None:
            continue
        path = Path(wf.artifact_path(art.name))
        if art.schema_pending and not path.exists():
            continue  # written by a change that has not landed yet
        assert path.exists(), f"artifact {art.name}: nothing at {path}"
        if art.kind == "folder":
            assert path.is_dir() and any(path.iterdir()), f"{art.name}: {path} is not a filled folder"
            if art.schema:
                for part in path.glob("*.parquet"):
                    table_schema(art.schema).validate(pq.read_table(part))
        elif art.kind == "json":
            json_schema(art.schema).validate(json.loads(path.read_text(encoding="utf-8")))
        elif art.kind == "table":
            table = pq.read_table(path)
            assert (table.schema.metadata or {}).get(SCHEMA_METADATA_NAME) == art.schema.encode()
            table_schema(art.schema).validate(table)
        else:
            assert path.is_file() and path.stat().st_size > 0
