"""pairminer: mine (mix, instrumental) pairs from a music catalog for source-separation training.

The Python API (docs/api.md) lives at the package root: every stage's run function, config class
and result type (`run_discover`, `DiscoverConfig`, `DiscoverResult`, `run_verify`, ...), read from
the stage registry (`pairminer/stages.py`), so a new stage appears here with its registry entry;
plus the workflow runner, `StageConfig` and the errors:

    import pairminer
    res = pairminer.run_discover("catalog.csv", "out", pairminer.DiscoverConfig(min_score=85))

The names are imported on first use (PEP 562), so `import pairminer` imports nothing heavy (no
numpy, pandas, pyarrow, Dask or torch) and `pairminer.train` still runs on machines that have only
torch, numpy, pandas and pyarrow.
"""

import importlib
from typing import Any

from . import stages as _stages

__version__ = "0.1.0"

_OTHER_EXPORTS: dict[str, str] = {
    "StageConfig": "pairminer.config:StageConfig",
    "run_workflow": "pairminer.workflow.run:run_workflow",
    "WorkflowResult": "pairminer.workflow.run:WorkflowResult",
    "load_workflow": "pairminer.workflow.file:load_workflow",
    "Workflow": "pairminer.workflow.file:Workflow",
    **{name: f"pairminer.errors:{name}" for name in (
        "PairminerError", "InputError", "CatalogError", "ConfigError", "SchemaError", "OutputError", "AudioError")},
}
"""Root names that are not a stage's run function, config or result type."""


def _exports() -> dict[str, str]:
    """Root name -> "module:attribute": the registry's stages (as registered now), then the others."""
    out: dict[str, str] = {}
    for spec in _stages.STAGES:
        for ref in (spec.run, spec.config, spec.result):
            if ref:
                out.setdefault(ref.rpartition(":")[2], ref)
    for name, ref in _OTHER_EXPORTS.items():
        out.setdefault(name, ref)
    return out


__all__ = sorted(_exports())
"""The root API of the built-in stages (a stage registered later is reachable too; see `__dir__`)."""


def __getattr__(name: str) -> Any:
    ref = _exports().get(name)
    if ref is None:
        raise AttributeError(f"module 'pairminer' has no attribute {name!r}")
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)  # not cached: the registry may change (register())


def __dir__() -> list[str]:
    return sorted({*globals(), *_exports()})
