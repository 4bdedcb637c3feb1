"""The verify stage: listen to each candidate pair (Chromaprint + alignment) and classify it.

Public names are imported lazily, so that `import pairminer.verify.config` stays light.
"""

from .._lazy import lazy_exports

_EXPORTS = {"VerifyConfig": "config", "run_verify": "stage", "VerifyResult": "session", "STATUSES": "rules"}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
