"""The Python API at the package root: every stage's run function, config and result type, imported lazily."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pairminer
from pairminer import stages

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "pandas", "pyarrow", "dask", "distributed", "torch", "scipy", "matplotlib")


def _load(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def test_import_pairminer_imports_nothing_heavy():
    code = f"import sys, pairminer; dir(pairminer); print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    assert out == "[]", f"import pairminer imports {out}"


def test_a_name_imports_its_stage_on_first_use_only():
    code = ("import sys, pairminer; a = 'pairminer.verify.stage' in sys.modules; "
            "pairminer.VerifyConfig; b = 'pairminer.verify.stage' in sys.modules; "
            "pairminer.run_verify; print(a, b, 'pairminer.verify.stage' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    assert out == "False False True"


@pytest.mark.parametrize("spec", stages.STAGES, ids=lambda s: s.name)
def test_every_stage_is_at_the_root(spec):
    for ref in (spec.run, spec.config, spec.result):
        assert ref, f"{spec.name}: a built-in stage names its result type (StageSpec.result)"
        name = ref.rpartition(":")[2]
        assert name in pairminer.__all__ and name in dir(pairminer)
        assert getattr(pairminer, name) is _load(ref)
    # the result type is what the run function says it returns
    returns = inspect.signature(spec.run_function()).return_annotation
    assert spec.result_class().__name__ in str(returns), (spec.name, returns)


def test_the_other_names_and_star_import():
    ns: dict = {}
    exec("from pairminer import *", ns)  # noqa: S102
    assert set(pairminer.__all__) <= set(ns)
    assert ns["ConfigError"] is importlib.import_module("pairminer.errors").ConfigError
    assert ns["run_workflow"] is importlib.import_module("pairminer.workflow.run").run_workflow
    assert isinstance(pairminer.__version__, str) and pairminer.__version__
    with pytest.raises(AttributeError, match="no attribute 'run_verfy'"):
        pairminer.run_verfy  # noqa: B018


def test_a_registered_stage_appears_at_the_root():
    spec = stages.StageSpec(
        name="tally", config="example_stage.config:TallyConfig", run="example_stage.stage:run_tally",
        command="tally", reads=("candidates",), writes=(), fresh_outputs=0, run_input="candidates",
        run_output="OUT", uses_scheduler=False, results=lambda res: {})
    assert "TallyConfig" not in dir(pairminer)
    stages.register(spec)
    try:
        assert "TallyConfig" in dir(pairminer) and "run_tally" in dir(pairminer)
        assert pairminer.TallyConfig is _load(spec.config)
    finally:
        stages.unregister("tally")
    assert "TallyConfig" not in dir(pairminer)
