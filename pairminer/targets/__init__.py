"""The targets stage: verified pairs in, aligned STFT shards and a manifest out.

Public names are imported lazily, so that `import pairminer.targets.config` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {'TargetsConfig': 'config', 'run_targets': 'stage', 'TargetsResult': 'stage'}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
