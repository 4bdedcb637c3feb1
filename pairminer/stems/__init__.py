"""The stems stage: every verified pair as waveform stems (mixture, vocals, instrumental) that modern
separation trainers read, through alignment good enough to subtract.

Public names are imported lazily, so that `import pairminer.stems.config` stays light.
"""

from .._lazy import lazy_exports

_EXPORTS = {"StemsConfig": "config", "run_stems": "stage", "StemsResult": "session"}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
