"""Tests of pairminer.storage: the one atomic writer (Parquet, JSON, the trainer's JSON) and URL checks."""

from __future__ import annotations

import json
import os
import stat

import pandas as pd
import pytest

from pairminer import storage
from pairminer.errors import ConfigError
from pairminer.testing import candidate_row
from pairminer.train.loop import write_json_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_every_writer_is_atomic_and_honours_the_umask(tmp_path, umask_022):
    storage.write_json(tmp_path / "a.json", {"x": 1.5, "nan": float("nan")})
    storage.write_table(tmp_path / "c.parquet", pd.DataFrame([candidate_row(1, "m.wav", "v.wav", duration_s=3.0)]),
                        "candidates")
    write_json_atomic(tmp_path / "train-report.json", {"loss": float("nan"), "steps": 3})
    for name in ("a.json", "c.parquet", "train-report.json"):
        assert _mode(tmp_path / name) == 0o644, name
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1.5, "nan": None}
    assert json.loads((tmp_path / "train-report.json").read_text()) == {"loss": None, "steps": 3}  # valid JSON
    assert pd.read_parquet(tmp_path / "c.parquet")["mix_duration_s"].tolist() == [3.0]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_shards_and_checkpoints_go_through_the_same_writer(tmp_path, umask_022):
    import numpy as np

    from pairminer import shards
    from pairminer.train.checkpoint import _atomic_write

    w = shards.ShardWriter(tmp_path / "t", 5, 4)
    w.add("p", np.ones((3, len(shards.CHANNELS), 5), np.float16))
    rel = w.seal()
    _atomic_write(tmp_path / "ckpt.pt", lambda tmp: open(tmp, "wb").write(b"x"))
    for p in (tmp_path / "t" / rel, tmp_path / "ckpt.pt"):
        assert _mode(p) == 0o644, p  # mkstemp alone would leave 0600
    assert np.load(tmp_path / "t" / rel).shape == (3, len(shards.CHANNELS), 5)


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    storage.write_json(tmp_path / "a.json", {"v": 1})
    with pytest.raises(RuntimeError):
        with storage.atomic_path(tmp_path / "a.json") as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("killed")
    assert json.loads((tmp_path / "a.json").read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_check_url_backend():
    storage.check_url_backend("/local/path")
    storage.check_url_backend("memory://x/y")
    with pytest.raises(ConfigError, match="unknown URL scheme"):
        storage.check_url_backend("bogus://x/y", what="-o")
