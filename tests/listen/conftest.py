"""A tiny listening-test setup, generated: a few short 'songs' with their references and two systems."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def _write(path: Path, y: np.ndarray, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y.astype(np.float32), sr, subtype="FLOAT")


def make_setup(root: Path, n_tracks: int = 4, seconds: float = 4.0, seed: int = 0) -> dict[str, Path]:
    """mixes/<t>.wav, refs/<t>/{vocals,instrumental}.wav, sysA (good: refs + a little noise),
    sysB (poor: half the mix in both sources)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    for i in range(n_tracks):
        name = f"song{i + 1}"
        f0 = 220 * 2 ** (i / 12)
        voc = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))) * (t % 1.0 < 0.7)
        inst = 0.2 * np.sign(np.sin(2 * np.pi * 55 * t)) * 0.5 + 0.05 * rng.standard_normal(n)
        mix = voc + inst
        _write(root / "mixes" / f"{name}.wav", mix)
        _write(root / "refs" / name / "vocals.wav", voc)
        _write(root / "refs" / name / "instrumental.wav", inst)
        _write(root / "sysA" / name / "vocals.wav", voc + 0.01 * rng.standard_normal(n))
        _write(root / "sysA" / name / "instrumental.wav", inst + 0.01 * rng.standard_normal(n))
        _write(root / "sysB" / name / "vocals.wav", 0.5 * mix)
        _write(root / "sysB" / name / "instrumental.wav", 0.5 * mix)
    return {k: root / k for k in ("mixes", "refs", "sysA", "sysB")}


@pytest.fixture()
def setup_dirs(tmp_path):
    return make_setup(tmp_path / "in")
