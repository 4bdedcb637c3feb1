"""`pairminer run`: a workflow file, a slice of the stage registry, fresh stages skipped.

file.py parses workflow files, freshness.py decides run or skip, run.py runs and records run.json.
Public names are imported lazily, so that `import pairminer.workflow` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Workflow": "file", "load_workflow": "file", "workflow_from_dict": "file", "workflow_from_yaml": "file",
    "builtin_workflow": "file",
    "audio_fingerprint": "freshness", "config_hash": "freshness", "file_fingerprint": "freshness",
    "decide": "freshness",
    "run_workflow": "run", "format_plan": "run", "StageOutcome": "run", "WorkflowResult": "run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
