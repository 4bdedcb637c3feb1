"""The report stage: the audit of whatever stage outputs exist.

Public names are imported lazily, so that `import pairminer.report.config` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {'ReportConfig': 'config', 'run_report': 'stage', 'ReportResult': 'stage', 'show_pair': 'show'}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
