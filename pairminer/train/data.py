"""Training data: the targets stage's manifest and memory-mapped float16 shards, as random patches.

Shard format (written by `pairminer targets`): ``TARGETS_DIR/<shard>.npy``, float16, shape
(frames, 3, n_fft//2+1); manifest rows own frames [start_frame, start_frame + n_frames); channel 0 is
|mix|, 1 the instrumental target, 2 the vocal target (STFT magnitudes).

Patches: a pair is drawn with probability proportional to its number of patch start positions
(``max(n_frames - patch_frames + 1, 1)``), so every frame of the data is about equally likely; then a
start frame uniformly. Only the lowest `n_bins` bins are kept (512 of 513 drops the Nyquist bin,
which carries almost no energy at 8192 Hz). Pairs shorter than a patch are zero-padded.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import shards
from ..errors import InputError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("pair_id", "shard", "start_frame", "n_frames", "sr_hz", "n_fft", "hop", "split")
_MAX_SILENT_RETRIES = 20


def read_manifest(targets_dir: str | Path) -> pd.DataFrame:
    """Read ``TARGETS_DIR/manifest.parquet`` and check the columns the trainer needs.

    Reads with `pairminer.shards.read_manifest` (the format's own reader).
    """
    path = Path(targets_dir) / shards.MANIFEST_NAME
    df = shards.read_manifest(targets_dir)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path} lacks column(s) {missing}; it was not written by `pairminer targets` (rerun it)")
    if df.empty:
        raise InputError(f"{path} has no pairs; nothing to train on (check the targets report for rejected pairs)")
    return df.reset_index(drop=True)


def stft_params(manifest: pd.DataFrame) -> dict:
    """The single (sr_hz, n_fft, hop) of the data; mixed parameters or a non-Hann window are an error."""
    out = {}
    for col in ("sr_hz", "n_fft", "hop"):
        vals = sorted(set(int(v) for v in manifest[col]))
        if len(vals) != 1:
            raise InputError(f"manifest mixes {col} values {vals}; train on shards made with one STFT setting")
        out[col] = vals[0]
    if "window" in manifest.columns:
        windows = sorted(set(str(w) for w in manifest["window"]))
        if windows != ["hann"]:
            raise InputError(f"manifest uses STFT window(s) {windows}; the trainer and separate use a Hann window "
                             "(rerun `pairminer targets` with window hann)")
    return out


def split_rows(manifest: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Train and valid rows by the manifest's `split`, with fallbacks (and notes saying which) when empty.

    * no "train" rows: train on every row that is not "test" (or every row, if all are "test");
    * no "valid" rows: hold out every 10th training pair (by pair_id order) when there are 10 or more,
      else validate on the training pairs (the validation loss is then optimistic).
    """
    notes = []
    train = manifest[manifest["split"] == "train"]
    valid = manifest[manifest["split"] == "valid"]
    if train.empty:
        train = manifest[manifest["split"] != "test"]
        if train.empty:
            train = manifest
        notes.append(f"no 'train' split in the manifest; training on {len(train)} pair(s) of the other splits")
    if valid.empty:
        ordered = train.sort_values("pair_id")
        if len(ordered) >= 10:
            valid = ordered.iloc[::10]
            train = ordered.drop(valid.index)
            notes.append(f"no 'valid' split; holding out {len(valid)} of the training pairs for validation")
        else:
            valid = train
            notes.append("no 'valid' split and fewer than 10 training pairs; validating on the training pairs")
    for n in notes:
        log.warning(n)
    return train.reset_index(drop=True), valid.reset_index(drop=True), notes


class PatchSampler:
    """Draws (mix, target) patches from memory-mapped shards.

    Args:
        targets_dir: folder holding manifest.parquet and the shards.
        rows: manifest rows to draw from (e.g. the train split).
        channel: shard channel of the target (1 instrumental, 2 vocals).
        n_bins: lowest bins to keep.
        patch_frames: frames per patch.
        skip_silent_target_db: redraw patches whose target energy is this many dB below the mix (None: never).
    """

    def __init__(self, targets_dir: str | Path, rows: pd.DataFrame, channel: int, n_bins: int, patch_frames: int,
                 skip_silent_target_db: float | None = None) -> None:
        if rows.empty:
            raise InputError("no pairs to draw patches from; check the manifest's split column")
        self.targets_dir = Path(targets_dir)
        self.shard = rows["shard"].astype(str).to_numpy()
        self.start = rows["start_frame"].to_numpy(np.int64)
        self.n_frames = rows["n_frames"].to_numpy(np.int64)
        self.channel, self.n_bins, self.patch_frames = int(channel), int(n_bins), int(patch_frames)
        self.skip_db = skip_silent_target_db
        w = np.maximum(self.n_frames - self.patch_frames + 1, 1).astype(np.float64)
        self.p = w / w.sum()
        self._maps: dict[str, np.ndarray] = {}
        self.skipped_silent = 0

    def __getstate__(self):  # memory maps are reopened in each DataLoader worker
        state = dict(self.__dict__)
        state["_maps"] = {}
        return state

    def _array(self, shard: str) -> np.ndarray:
        arr = self._maps.get(shard)
        if arr is None:
            arr = shards.open_shard(self.targets_dir, shard)  # memory map, checked shape and dtype
            if arr.shape[2] < self.n_bins:
                raise InputError(f"shard {shard} has {arr.shape[2]} bins; the model needs at least {self.n_bins}")
            self._maps[shard] = arr
        return arr

    @property
    def total_frames(self) -> int:
        return int(self.n_frames.sum())

    def read(self, i: int, offset_frames: int) -> np.ndarray:
        """Patch of pair `i` from `offset_frames`: float32 (2, n_bins, patch_frames), [mix, target]."""
        arr = self._array(self.shard[i])
        n = int(min(self.patch_frames, self.n_frames[i] - offset_frames))
        s = int(self.start[i] + offset_frames)
        block = np.asarray(arr[s:s + n, [0, self.channel], : self.n_bins], dtype=np.float32)  # (n, 2, bins)
        out = np.zeros((2, self.n_bins, self.patch_frames), np.float32)
        out[:, :, :n] = block.transpose(1, 2, 0)
        return out

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One random patch, float32 (2, n_bins, patch_frames)."""
        for _ in range(_MAX_SILENT_RETRIES):
            i = int(rng.choice(len(self.p), p=self.p))
            off = int(rng.integers(0, max(self.n_frames[i] - self.patch_frames, 0) + 1))
            patch = self.read(i, off)
            if self.skip_db is None or not self._silent(patch):
                return patch
            self.skipped_silent += 1
        return patch

    def _silent(self, patch: np.ndarray) -> bool:
        e_mix = float(np.square(patch[0]).sum())
        e_tgt = float(np.square(patch[1]).sum())
        return e_mix == 0.0 or 10.0 * math.log10(max(e_tgt, 1e-30) / e_mix) < -float(self.skip_db)


class RandomPatches(torch.utils.data.IterableDataset):
    """Endless random patches; each DataLoader worker draws from its own seeded generator.

    Yields:
        (mix, target): float32 tensors of shape (1, n_bins, patch_frames), unnormalised magnitudes.
    """

    def __init__(self, sampler: PatchSampler, seed: int) -> None:
        super().__init__()
        self.sampler, self.seed = sampler, int(seed)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            patch = torch.from_numpy(self.sampler.sample(rng))
            yield patch[0:1], patch[1:2]


def fixed_patches(sampler: PatchSampler, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` seeded patches for validation: (mix, target), each float32 (n, 1, n_bins, patch_frames).

    Patches are spread over pairs round-robin (every pair is used before any repeats) at seeded offsets.
    """
    rng = np.random.default_rng([seed, 10_007])
    order = rng.permutation(len(sampler.n_frames))
    patches = []
    for k in range(n):
        i = int(order[k % len(order)])
        off = int(rng.integers(0, max(sampler.n_frames[i] - sampler.patch_frames, 0) + 1))
        patches.append(sampler.read(i, off))
    arr = torch.from_numpy(np.stack(patches))
    return arr[:, 0:1].contiguous(), arr[:, 1:2].contiguous()
