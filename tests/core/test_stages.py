"""Tests of pairminer.stages: the registry is complete, and everything that lists stages agrees with it.

A stage forgotten in one place used to show up as a KeyError at run time; here it is a failing test.
The per-stage checks live in pairminer.testing.stages (a registered stage runs them too: test_example_stage).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pairminer import stages
from pairminer.testing.stages import (check_artifact_schema, check_command_help, check_docs, check_known_artifacts,
                                      check_light_config, check_run_function, check_run_schema)

REPO = Path(__file__).resolve().parents[2]
SPECS = {s.name: s for s in stages.STAGES}


def test_stage_names_are_unique_and_ordered():
    assert len(stages.STAGE_NAMES) == len(set(stages.STAGE_NAMES)) == len(stages.STAGES)
    assert stages.STAGE_NAMES[:4] == stages.DISCOVER_CHAIN
    assert set(stages.DISCOVER_UNTIL_ALIASES.values()) <= set(stages.DISCOVER_CHAIN)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_stage_has_a_loadable_light_config(name):
    check_light_config(name, REPO)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_stage_has_a_run_function(name):
    check_run_function(name)


@pytest.mark.parametrize("name", list(SPECS))
def test_every_stage_names_known_artifacts(name):
    check_known_artifacts(name)


@pytest.mark.parametrize("art", list(stages.ARTIFACTS.values()), ids=lambda a: a.name)
def test_every_artifact_has_its_schema(art):
    check_artifact_schema(art)


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
    check_command_help(name)


@pytest.mark.parametrize("name", list(SPECS))
def test_docs_mention_every_stage(name):
    check_docs(name, REPO)


def test_run_schema_lists_exactly_the_registry():
    check_run_schema()


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
