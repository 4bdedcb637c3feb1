"""The bundled U-Net trainer (Jansson et al., ISMIR 2017): train, separate, evaluate.

This package imports only torch, numpy, pandas, pyarrow and the standard library (plus
`pairminer.config`, `pairminer.errors`, `pairminer.runinfo` and `pairminer.shards`, which import
nothing heavier), so it runs on a GPU machine with nothing else installed. `separate_files`
and `evaluate` import soundfile, soxr and museval lazily.
"""

import importlib

# Exports load on first use, so reading a TrainConfig (e.g. a workflow's dry run) does not import torch.
_EXPORTS = {
    "SOURCE_CHANNEL": ".config", "TrainConfig": ".config",
    "EvaluateResult": ".evaluate", "run_evaluate": ".evaluate",
    "TrainResult": ".loop", "load_checkpoint": ".checkpoint", "run_train": ".loop",
    "UNet": ".model", "normalise_patch": ".model",
    "Separator": ".separator", "separate_array": ".separator", "separate_signal": ".separator",
    "separate_files": ".separate", "run_stft": ".separator", "read_run_config": ".separator",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
