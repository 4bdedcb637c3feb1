"""Shard format: whole pairs per shard, atomic seal, memory-mapped reads, orphan clean-up."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pairminer import shards
from pairminer.errors import InputError

BINS = 9


def _pair(rng, n):
    return rng.random((n, 3, BINS)).astype(np.float16)


def test_writer_round_trip_and_pairs_never_split(tmp_path):
    rng = np.random.default_rng(0)
    pairs = {f"p{i}": _pair(rng, n) for i, n in enumerate([5, 7, 3, 12, 2, 4])}
    sealed = []
    w = shards.ShardWriter(tmp_path, BINS, capacity_frames=10, on_seal=lambda rel, e: sealed.append((rel, e)))
    for key, arr in pairs.items():
        w.add(key, arr)
    w.close()
    rows = [{"pair_id": k, "shard": rel, "start_frame": s, "n_frames": n} for rel, ents in sealed for k, s, n in ents]
    assert sorted(r["pair_id"] for r in rows) == sorted(pairs)
    assert [rel for rel, _ in sealed] == [shards.shard_relpath(i) for i in range(len(sealed))]
    for rel, ents in sealed:
        arr = np.load(tmp_path / rel, mmap_mode="r")
        assert arr.dtype == np.float16 and arr.shape[1:] == (3, BINS)
        assert arr.shape[0] == sum(n for _, _, n in ents)
        # a shard is over capacity only when it holds one pair longer than the capacity
        assert arr.shape[0] <= 10 or len(ents) == 1
    for r in rows:
        np.testing.assert_array_equal(shards.read_pair_frames(tmp_path, r), pairs[r["pair_id"]])
    assert not list((tmp_path / "shards").glob(".*tmp"))
    assert w.bytes_written == sum((tmp_path / rel).stat().st_size for rel, _ in sealed)


def test_writer_rejects_wrong_shape(tmp_path):
    w = shards.ShardWriter(tmp_path, BINS, 10)
    with pytest.raises(ValueError, match="expected"):
        w.add("x", np.zeros((4, 2, BINS), np.float16))


def test_capacity_from_megabytes():
    assert shards.frame_bytes(1024) == 3 * 513 * 2
    assert shards.shard_capacity_frames(256, 1024) == 256 * 2**20 // (3 * 513 * 2)
    assert shards.shard_capacity_frames(1e-9, 1024) == 1


def test_remove_unreferenced(tmp_path):
    rng = np.random.default_rng(1)
    w = shards.ShardWriter(tmp_path, BINS, 4)
    for i in range(3):
        w.add(i, _pair(rng, 4))
    (tmp_path / "shards" / ".shard-000003.npy.abc.tmp").write_bytes(b"torn")
    removed = shards.remove_unreferenced(tmp_path, [shards.shard_relpath(0)])
    assert sorted(removed) == ["shards/.shard-000003.npy.abc.tmp", "shards/shard-000001.npy", "shards/shard-000002.npy"]
    assert [p.name for p in (tmp_path / "shards").iterdir()] == ["shard-000000.npy"]


def test_read_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="run `pairminer targets`"):
        shards.read_manifest(tmp_path)
    with pytest.raises(InputError, match="missing"):
        shards.read_pair_frames(tmp_path, {"shard": "shards/shard-000000.npy", "start_frame": 0, "n_frames": 1})
    w = shards.ShardWriter(tmp_path, BINS, 4)
    w.add("a", np.zeros((4, 3, BINS), np.float16))
    with pytest.raises(InputError, match="outside"):
        shards.read_pair_frames(tmp_path, pd.Series({"pair_id": "a", "shard": "shards/shard-000000.npy",
                                                     "start_frame": 2, "n_frames": 3}))


def test_shards_module_imports_without_audio_or_dask():
    code = ("import sys, pairminer.shards; bad = [m for m in ('librosa', 'dask', 'soundfile', 'soxr', 'scipy') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
