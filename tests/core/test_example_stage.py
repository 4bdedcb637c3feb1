"""The worked example of docs/architecture.md, "Add a stage": `tally` joins the registry with one entry.

Its package (tests/example_stage/: config.py, stage.py, tally.schema.json), a command of three lines
and the registry entry below are all it takes; the workflow runner, run.json, freshness, `pairminer
run --until` and the registry-completeness checks of pairminer.testing.stages (which
tests/core/test_stages.py runs for the built-in stages) then work for it unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from pairminer import schemas, stages
from pairminer.cli import main
from pairminer.cli._options import (config_file_option, config_options, init_logging, quiet_verbose_options,
                                    stage_config)
from pairminer.testing import make_catalog
from pairminer.testing.stages import (check_artifact_schema, check_command_help, check_docs, check_known_artifacts,
                                      check_light_config, check_run_function, check_run_schema)
from pairminer.workflow.run import run_workflow

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"  # example_stage/ is imported from here

# The one registry entry (a built-in stage would be listed in pairminer/stages.py's STAGES).
TALLY = stages.StageSpec(
    name="tally", config="example_stage.config:TallyConfig", run="example_stage.stage:run_tally",
    command="tally", reads=("candidates",), writes=("tally",), fresh_outputs=1,
    run_input="candidates", run_output="OUT", uses_scheduler=False,
    results=lambda res: {"counts": dict(res.counts)}, summary_counts=("instrumental",), doc="docs/architecture.md")
TALLY_JSON = stages.Artifact("tally", "tally.json", "json", "tally", description="pairs per kind")


def make_tally_command() -> click.Command:
    """The command, as pairminer/cli/tally.py would hold it (built once the stage is registered)."""

    @click.command("tally")
    @config_options("tally")
    @click.argument("candidates")
    @click.option("-o", "--out", "out_dir", required=True, help="Output folder.")
    @config_file_option("tally")
    @quiet_verbose_options
    def tally(candidates, out_dir, config_path, quiet, verbose, **options):
        """Count the candidate pairs in CANDIDATES per kind (the worked example stage)."""
        from example_stage.stage import run_tally

        init_logging(verbose, quiet)
        click.echo(run_tally(candidates, out_dir, stage_config("tally", config_path, options)).summary())

    return tally


@pytest.fixture
def tally(tmp_path, monkeypatch):
    """Register the stage, its command and its schemas (a copy of schemas/ with tally added to run's stage list)."""
    folder = tmp_path / "schemas"
    shutil.copytree(REPO / "schemas", folder)
    shutil.copy(TESTS / "example_stage" / "tally.schema.json", folder)
    run_schema = json.loads((folder / "run.schema.json").read_text())
    stage_def = run_schema["json_schema"]["$defs"]["stage"]["properties"]["stage"]
    stage_def["enum"].insert(stage_def["enum"].index("discover") + 1, "tally")
    run_schema["json_schema"]["properties"]["stages"]["maxItems"] += 1
    run_schema["json_schema"]["properties"]["workflow_config"]["required"].append("tally")
    (folder / "run.schema.json").write_text(json.dumps(run_schema))
    monkeypatch.setattr(schemas, "schema_dir", lambda: folder)
    schemas.load_schema.cache_clear()
    stages.register(TALLY, (TALLY_JSON,), after="discover")
    main.add_command(make_tally_command())
    yield
    main.commands.pop("tally")
    stages.unregister("tally", ("tally",))
    schemas.load_schema.cache_clear()


def test_the_example_stage_passes_every_registry_check(tally):
    assert stages.STAGE_NAMES == ("discover", "tally", "verify", "targets", "stems", "train", "report")
    check_light_config("tally", REPO, extra_path=(TESTS,))
    check_run_function("tally")
    check_known_artifacts("tally")
    check_artifact_schema(TALLY_JSON)
    check_command_help("tally")
    check_docs("tally", REPO)
    check_run_schema()


def test_the_example_stage_runs_in_a_workflow(tally, tmp_path):
    g = make_catalog(300, seed=5)
    g.catalog.to_csv(tmp_path / "catalog.csv", index=False)
    wf = tmp_path / "w.yaml"
    wf.write_text("catalog: catalog.csv\nout: out\nscheduler: synchronous\nstages: [discover, tally]\n"
                  "tally: {by: version_kind}\n")
    res = run_workflow(str(wf), progress=False)
    assert res.ran == ["discover", "tally"]
    cands = pd.read_parquet(tmp_path / "out" / "candidates.parquet")
    doc = json.loads((tmp_path / "out" / "tally.json").read_text())
    assert doc["counts"] == {k: int(v) for k, v in cands["version_kind"].value_counts().items()}
    assert sum(doc["counts"].values()) == len(cands) > 0
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    schemas.json_schema("run").validate(run)
    assert [e["stage"] for e in run["stages"]] == list(stages.STAGE_NAMES)
    assert run["stages"][1]["last_success"]["results"]["counts"] == doc["counts"]
    # fresh on a rerun; its own config change reruns it alone
    assert run_workflow(str(wf), progress=False).skipped == ["discover", "tally"]
    wf.write_text(wf.read_text().replace("{by: version_kind}", "{by: version_kind, min_score: 99.5}"))
    res = run_workflow(str(wf), progress=False)
    assert res.ran == ["tally"] and res.outcome("tally").reason == "config changed: min_score 0.0 -> 99.5"
    # and the command line knows it: its own command, and `pairminer run --until tally`
    out = CliRunner().invoke(main, ["tally", str(tmp_path / "out" / "candidates.parquet"), "-o",
                                    str(tmp_path / "o2"), "--min-score", "200"])
    assert out.exit_code == 2 and "tally.min_score: 200.0 must be between 0 and 100" in out.output
    out = CliRunner().invoke(main, ["run", str(wf), "--until", "tally", "--force", "-q"])
    assert out.exit_code == 0, out.output
    assert "tally: done" in out.output and "verify" not in out.output
