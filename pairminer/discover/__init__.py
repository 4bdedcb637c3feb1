"""The discover stage: catalog rows in, candidate (mix, version) pairs out.

Public names are imported lazily, so that `import pairminer.discover.config` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {'DiscoverConfig': 'config', 'run_discover': 'stage', 'DiscoverResult': 'stage', 'read_catalog': 'catalog'}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
