"""The bundled U-Net trainer (Jansson et al., ISMIR 2017): train, separate, evaluate.

This package imports only torch, numpy, pandas, pyarrow and the standard library (plus
`pairminer.config`, `pairminer.errors`, `pairminer.runinfo` and `pairminer.shards`, which import
nothing heavier), so it runs on a GPU machine with nothing else installed. Decoding audio files
for `separate` happens in `pairminer.cli.train`; `evaluate` imports museval/soundfile/soxr lazily.
"""

from .config import SOURCE_CHANNEL, TrainConfig
from .evaluate import EvaluateResult, run_evaluate
from .loop import TrainResult, load_checkpoint, run_train
from .model import UNet, normalise_patch
from .separate import Separator, separate_array

__all__ = [
    "SOURCE_CHANNEL", "TrainConfig", "TrainResult", "run_train", "load_checkpoint", "UNet", "normalise_patch",
    "Separator", "separate_array", "EvaluateResult", "run_evaluate",
]
