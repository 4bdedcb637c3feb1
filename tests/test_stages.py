"""Tests of pairminer.stages: the registry is complete, and everything that lists stages agrees with it.

A stage forgotten in one place used to show up as a KeyError at run time; here it is a failing test.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pairminer import stages
from pairminer.cli import main
from pairminer.config import StageConfig
from pairminer.schemas import available, load_schema

REPO = Path(__file__).resolve().parents[1]
SPECS = {s.name: s for s in stages.STAGES}


def test_stage_names_are_unique_and_ordered():
    assert len(stages.STAGE_NAMES) == len(set(stages.STAGE_NAMES)) == len(stages.STAGES)
    assert stages.STAGE_NAMES[:4] == stages.DISCOVER_CHAIN
    assert set(stages.DISCOVER_UNTIL_ALIASES.values()) <= set(stages.DISCOVER_CHAIN)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_stage_has_a_loadable_light_config(name):
    spec = stages.stage(name)
    cls = spec.config_class()
    assert issubclass(cls, StageConfig) and cls.stage == name
    cfg = cls.from_dict({})
    assert cfg == cls() and cls.from_dict(cfg.to_dict()) == cfg
    for f in spec.path_fields:
        assert f in cls.field_names(), f"{name}.path_fields names {f!r}, which {cls.__name__} lacks"
    # the config module imports neither numpy nor Dask (the CLI and dry runs read it cheaply)
    module = spec.config.split(":")[0]
    code = f"import sys, {module}; print([m for m in ('numpy', 'dask', 'torch') if m in sys.modules])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env=env).stdout.strip()
    assert out == "[]", f"{module} imports {out}"


@pytest.mark.parametrize("name", list(SPECS))
def test_every_stage_has_a_run_function(name):
    spec = stages.stage(name)
    fn = spec.run_function()
    assert callable(fn)
    params = list(__import__("inspect").signature(fn).parameters)
    assert len(params) >= 3, f"{name}: run(input, output, config, ...) expected, got {params}"
    assert "progress" in params
    if spec.uses_scheduler:
        assert "scheduler" in params
    if spec.resumable:
        assert "resume" in params


@pytest.mark.parametrize("name", list(SPECS))
def test_every_stage_names_known_artifacts(name):
    spec = stages.stage(name)
    for a in (*spec.reads, *spec.writes, *([spec.owns] if spec.owns else [])):
        assert a in stages.ARTIFACTS, f"{name} names an unknown artifact {a!r}"
    for a in (spec.run_input, spec.run_output):
        assert a == "OUT" or a in stages.ARTIFACTS
    assert 1 <= spec.fresh_outputs <= len(spec.writes)
    # a stage reads only what an earlier stage writes (or the catalog)
    for a in spec.reads:
        made_by = stages.producer(a)
        assert a == "catalog" or (made_by is not None
                                  and stages.STAGE_NAMES.index(made_by.name) < stages.STAGE_NAMES.index(name))


@pytest.mark.parametrize("art", list(stages.ARTIFACTS.values()), ids=lambda a: a.name)
def test_every_artifact_has_its_schema(art):
    if art.kind in ("table", "json"):
        assert art.schema, f"{art.name} is a {art.kind} without a schema"
    if art.schema is None:
        return
    if art.schema not in available():
        if art.schema_pending:
            pytest.skip(f"schema {art.schema} is pending (lands with another change)")
        pytest.fail(f"artifact {art.name} names schema {art.schema!r}, which schemas/ lacks")
    kind = load_schema(art.schema).raw["kind"]
    assert kind == ("json" if art.kind == "json" else "table"), f"{art.name}: schema kind {kind}"


def test_artifact_paths_are_unique_and_every_output_has_a_writer():
    paths = [a.path for a in stages.ARTIFACTS.values() if a.path is not None]
    assert len(paths) == len(set(paths))
    for a in stages.ARTIFACTS.values():
        if a.name not in ("catalog", "run_record"):
            assert stages.producer(a.name) is not None, f"no stage writes {a.name}"


def test_artifact_paths_fill_config_fields():
    from pairminer.train.config import TrainConfig

    cfg = TrainConfig(source="instrumental")
    assert stages.artifact("train_run").relpath({"train": cfg}) == "runs/instrumental"
    assert stages.artifact("train_report").relpath(lambda s: cfg) == "runs/instrumental/train-report.json"
    with pytest.raises(KeyError):
        stages.artifact("catalog").relpath()


@pytest.mark.parametrize("name", list(SPECS))
def test_every_stage_command_exists_and_has_help(name):
    res = CliRunner().invoke(main, [stages.stage(name).command, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output and len(res.output.splitlines()) > 5


@pytest.mark.parametrize("name", list(SPECS))
def test_docs_mention_every_stage(name):
    spec = stages.stage(name)
    page = REPO / spec.doc
    assert page.is_file(), f"{name}: doc page {page} is missing"
    text = page.read_text(encoding="utf-8")
    assert f"pairminer {spec.command}" in text or f"`{name}`" in text or f"{name}:" in text
    arch = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert f"{name}/" in arch or f"`{name}`" in arch
    if name in SPECS:  # the built-in stages are also in the workflow guide and the CLI reference
        assert name in (REPO / "docs" / "workflows.md").read_text(encoding="utf-8")
        assert f"## pairminer {spec.command}\n" in (REPO / "docs" / "cli.md").read_text(encoding="utf-8")


def test_run_schema_lists_exactly_the_registry():
    doc = load_schema("run").raw
    stage_def = doc["json_schema"]["$defs"]["stage"]["properties"]["stage"]
    assert tuple(stage_def["enum"]) == stages.STAGE_NAMES
    assert doc["json_schema"]["properties"]["stages"]["maxItems"] == len(stages.STAGES)
    required = set(doc["json_schema"]["properties"]["workflow_config"]["required"])
    assert set(stages.STAGE_NAMES) <= required


def test_unknown_stage_names_the_nearest():
    from pairminer.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean 'verify'"):
        stages.stage("verfy")


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SPECS["discover"].name = "x"  # type: ignore[misc]


def test_the_registry_imports_light():
    code = ("import sys, pairminer.stages; "
            "print([m for m in ('numpy', 'dask', 'pyarrow', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    assert out == "[]", out
