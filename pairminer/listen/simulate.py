"""Simulated raters, for the tests and for the plot in docs/evaluation.md (never for real results).

A simulated rater "hears" each sample's true condition through the key and rates it as a person might:
the hidden reference high, the anchor low, each system near a level of its own, with seeded noise. A
careless rater inverts the controls, so that the screening has someone to drop.

    python -m pairminer.listen.simulate TEST_DIR RATINGS_DIR [--raters 12] [--careless 2] [--seed 0]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from . import PAGE_VERSION, RATINGS_FORMAT
from .page import checksum


def simulated_ratings(key: dict, rater: str, levels: dict[str, float], rng: np.random.Generator, *,
                      careless: bool = False, noise: float = 0.8) -> dict:
    """One rater's file (the page's JSON) for the test of `key`; `levels`: system -> mean rating."""
    out = []
    for t in key["trials"]:
        for s in t["stimuli"]:
            if careless:
                mean = {"hidden_reference": 2.5, "anchor": 5.5}.get(s["kind"], 4.0)
            else:
                mean = {"hidden_reference": 6.8, "anchor": 1.3}.get(s["kind"]) or levels.get(s["system"], 4.0)
            out.append({"trial": t["trial"], "stimulus": s["id"], "plays": int(rng.integers(1, 4)),
                        "rating": int(np.clip(np.rint(mean + noise * rng.standard_normal()), 1, 7))})
    return {"format": RATINGS_FORMAT, "page_version": PAGE_VERSION, "test_id": key["test_id"], "rater": rater,
            "complete": True, "rated": len(out), "total": len(out), "ratings": out,
            "checksum": checksum(key["test_id"], rater, out)}


def write_raters(key: dict, folder: str | Path, n: int = 12, careless: int = 2, seed: int = 0,
                 levels: dict[str, float] | None = None) -> list[Path]:
    """`n` simulated raters' files in `folder` (the last `careless` of them careless)."""
    rng = np.random.default_rng(seed)
    systems = key["systems"]
    levels = levels or {s: 5.0 - 3.0 * i / max(1, len(systems) - 1) for i, s in enumerate(systems)}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        doc = simulated_ratings(key, f"sim{i + 1:02d}", levels, rng, careless=i >= n - careless)
        p = folder / f"ratings-sim{i + 1:02d}.json"
        p.write_text(json.dumps(doc, indent=1))
        paths.append(p)
    return paths


if __name__ == "__main__":  # pragma: no cover - a helper for the docs
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("test_dir")
    ap.add_argument("ratings_dir")
    ap.add_argument("--raters", type=int, default=12)
    ap.add_argument("--careless", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    key = json.loads((Path(a.test_dir) / "key.json").read_text())
    for p in write_raters(key, a.ratings_dir, a.raters, a.careless, a.seed):
        print(p)
    sys.exit(0)
