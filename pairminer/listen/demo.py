"""`pairminer listen --demo OUT -o test/`: `make demo`'s run as a listening test in one command.

The demo trains a small U-Net into OUT/runs/vocals and exports the mined stems into
OUT/stems/<split>/<pair>/{mixture,vocals,instrumental}.wav. This separates the sampled pairs' mixtures
with that model (into test/systems/model/<pair>/), and builds a test of three conditions per trial
besides the anchor: the model, the unprocessed mixture, and the oracle (the mined stems, which are the
reference sources) as the hidden reference.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import AudioError, InputError
from .build import BuildResult, build_test
from .config import ListenConfig
from .inputs import track_folders

log = logging.getLogger(__name__)


def find_run(out: Path) -> Path:
    runs = out / "runs"
    cands = ([runs / "vocals"] if (runs / "vocals" / "config.json").is_file() else []) + sorted(
        p.parent for p in runs.glob("*/config.json") if p.parent.name != "vocals")
    if not cands:
        raise InputError(f"no trained run under {runs} (a folder with config.json); run `make demo` or "
                         f"`pairminer run workflows/demo.yaml` first")
    return cands[0]


def demo_test(out_dir: str, dest: str, config: ListenConfig | None = None, *, device: str = "cpu",
              progress: bool = True) -> BuildResult:
    """Separate the demo's stems with its model and build the test (see the module docstring)."""
    from dataclasses import replace

    from ..train.separate import separate_file
    from ..train.separator import Separator

    config = replace(config or ListenConfig(), mixture_system=True, hidden_reference=True)
    out = Path(out_dir)
    if not out.is_dir():
        raise InputError(f"--demo {out} is not a folder; give the demo's output folder (pairminer-out/demo)")
    run = find_run(out)
    stems_dir = out / "stems"
    pairs = track_folders(stems_dir, "the demo's stems folder") if stems_dir.is_dir() else {}
    pairs = {k: v for k, v in pairs.items() if "mixture" in v}
    if not pairs:
        raise InputError(f"no stems with mixture.wav under {stems_dir}; run the demo's stems stage first")
    split_rank = {"test": 0, "valid": 1, "train": 2}
    rng = np.random.default_rng([config.seed, 77])
    names = sorted(pairs)
    order = [names[i] for i in rng.permutation(len(names))]
    order.sort(key=lambda k: split_rank.get(pairs[k]["mixture"].parent.parent.name, 3))  # held-out pairs first
    chosen = order[: config.tracks]
    sep = [Separator.from_run(run, device=device)]
    model_dir = Path(dest) / "systems" / "model"
    done = 0
    for pair in chosen:
        folder = model_dir / pair
        folder.mkdir(parents=True, exist_ok=True)
        outs = {s: folder / f"{s}.wav" for s in ("vocals", "instrumental")}
        try:
            separate_file(str(pairs[pair]["mixture"]), sep, outs)
            done += 1
        except AudioError as exc:
            log.warning("listen --demo: %s not separated: %s", pair, exc)
    if not done:
        raise InputError("the demo's model separated none of the sampled pairs")
    (log.info if progress else log.debug)("listen --demo: separated %d pair(s) with %s", done, run)
    return build_test([str(model_dir)], dest, config, names=[f"model ({run.name})"], references=str(stems_dir),
                      title="Listening test: the demo's model, the mixture and the oracle", progress=progress)
