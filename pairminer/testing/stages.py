"""The registry checks every stage must pass, built in or registered (docs/architecture.md, "Add a stage").

tests/core/test_stages.py runs them for each built-in stage; tests/core/test_example_stage.py runs them
for the worked example `tally` once it is registered. `repo` is the repository root (docs/ and the
extra import paths of a stage's config module live there).
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

from pairminer import stages
from pairminer.config import StageConfig
from pairminer.schemas import available, load_schema

# The stages shipped with pairminer (the docs checks ask more of them than of a registered stage).
BUILT_IN = tuple(s.name for s in stages.STAGES)


def check_light_config(name: str, repo: Path, extra_path: tuple[Path, ...] = ()) -> None:
    """The config class loads, round-trips, names its path fields, and its module imports no numpy/Dask/torch."""
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
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), *map(str, extra_path),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=repo, env=env).stdout.strip()
    assert out == "[]", f"{module} imports {out}"


def check_run_function(name: str) -> None:
    """run(input, output, config, ..., progress[, scheduler][, resume])."""
    spec = stages.stage(name)
    fn = spec.run_function()
    assert callable(fn)
    params = list(inspect.signature(fn).parameters)
    assert len(params) >= 3, f"{name}: run(input, output, config, ...) expected, got {params}"
    assert "progress" in params
    if spec.uses_scheduler:
        assert "scheduler" in params
    if spec.resumable:
        assert "resume" in params


def check_known_artifacts(name: str) -> None:
    """The stage names only known artifacts, and reads only what an earlier stage writes (or the catalog)."""
    spec = stages.stage(name)
    for a in (*spec.reads, *spec.writes, *([spec.owns] if spec.owns else [])):
        assert a in stages.ARTIFACTS, f"{name} names an unknown artifact {a!r}"
    for a in (spec.run_input, spec.run_output):
        assert a == "OUT" or a in stages.ARTIFACTS
    assert 1 <= spec.fresh_outputs <= len(spec.writes)
    for a in spec.reads:
        made_by = stages.producer(a)
        assert a == "catalog" or (made_by is not None
                                  and stages.STAGE_NAMES.index(made_by.name) < stages.STAGE_NAMES.index(name))


def check_artifact_schema(art: stages.Artifact) -> None:
    """A table or JSON artifact names a schema of schemas/ of its kind (a pending schema skips)."""
    import pytest

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


def check_command_help(name: str) -> None:
    """The stage's command exists and has help."""
    from click.testing import CliRunner

    from pairminer.cli import main

    res = CliRunner().invoke(main, [stages.stage(name).command, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output and len(res.output.splitlines()) > 5


def check_docs(name: str, repo: Path) -> None:
    """Its doc page and docs/architecture.md mention it; a built-in stage is also in workflows.md and cli.md."""
    spec = stages.stage(name)
    page = repo / spec.doc
    assert page.is_file(), f"{name}: doc page {page} is missing"
    text = page.read_text(encoding="utf-8")
    assert f"pairminer {spec.command}" in text or f"`{name}`" in text or f"{name}:" in text
    arch = (repo / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert f"{name}/" in arch or f"`{name}`" in arch
    if name in BUILT_IN:
        assert name in (repo / "docs" / "workflows.md").read_text(encoding="utf-8")
        assert f"## pairminer {spec.command}\n" in (repo / "docs" / "cli.md").read_text(encoding="utf-8")


def check_run_schema() -> None:
    """run.schema.json lists exactly the registered stages."""
    doc = load_schema("run").raw
    stage_def = doc["json_schema"]["$defs"]["stage"]["properties"]["stage"]
    assert tuple(stage_def["enum"]) == stages.STAGE_NAMES
    assert doc["json_schema"]["properties"]["stages"]["maxItems"] == len(stages.STAGES)
    required = set(doc["json_schema"]["properties"]["workflow_config"]["required"])
    assert set(stages.STAGE_NAMES) <= required
