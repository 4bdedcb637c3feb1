"""The targets stage: verified pairs in, aligned STFT shards and a manifest out.

Public names are imported lazily, so that `import pairminer.targets.config` stays light.
"""

from .._lazy import lazy_exports

_EXPORTS = {"TargetsConfig": "config", "run_targets": "stage", "TargetsResult": "session"}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
