"""`pairminer run`: a workflow file, a slice of the stage registry, fresh stages skipped.

Public names are imported lazily, so that `import pairminer.workflow.config` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {'run_workflow': 'runner', 'format_plan': 'runner', 'load_workflow': 'runner'}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
