"""Training data: the targets stage's manifest and memory-mapped float16 shards, as random patches.

Shard format (written by `pairminer targets`): ``TARGETS_DIR/<shard>.npy``, float16, shape
(frames, 3, n_fft//2+1); manifest rows own frames [start_frame, start_frame + n_frames); channel 0 is
|mix|, 1 the instrumental target, 2 the vocal target (STFT magnitudes).

Covered frames: when the manifest has ``cover_start_frame`` / ``cover_stop_frame`` (frame indices
relative to the pair's first frame, half-open), patches are drawn only inside [cover_start, cover_stop)
(the frames where verify found the version aligned with the mix); without them the whole pair is
covered. A pair with an empty cover is never drawn.

Patches: every patch start position inside a cover is equally likely (a pair with covered length L
has ``max(L - patch_frames + 1, 1)`` positions), so every covered frame is about equally likely. One
uniform integer over all positions and a binary search in their cumulative sum pick the pair and the
offset together: O(log pairs) per draw, no per-draw O(pairs) work. A patch is read as one contiguous
block of the shard (``shard[s : s + patch_frames]``, all channels and bins), then sliced in memory.
Only the lowest `n_bins` bins are kept. Pairs shorter than a patch are zero-padded.

Augmentation (`augment_prob` of the patches): the mix is rebuilt from the two targets as
``g_v * V + g_i * I`` with per-source gains uniform in +-augment_gain_db, and with probability
`remix_prob` the instrumental I comes from another random pair ("remixing"). Approximation: the
magnitude of a sum is not the sum of magnitudes (|v + i| <= |v| + |i|, equal only where the phases
agree), so a rebuilt mix lacks the real mix's phase cancellations; the other patches keep the real
|mix| so the network also sees those. The target is the gained source (g_v * V or g_i * I).

Batches are a pure function of (seed, step): batch `step` is drawn with ``default_rng([seed, step])``,
so a resumed run reads exactly the batches an uninterrupted run would, whatever the number of workers.
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
COVER_COLUMNS = ("cover_start_frame", "cover_stop_frame")
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
            raise InputError(f"the manifest mixes {col} values {vals}: its shards were made with different STFT "
                             "settings; train on one targets folder made with one --sr/--n-fft/--hop "
                             "(rerun `pairminer targets` into a fresh -o for the other setting)")
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


def covered_spans(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per pair (cover_start, cover_stop) frames relative to the pair, clipped to [0, n_frames].

    Without the cover columns (manifests before verify recorded covers) the whole pair is covered.
    """
    n = rows["n_frames"].to_numpy(np.int64)
    if not all(c in rows.columns for c in COVER_COLUMNS):
        return np.zeros_like(n), n.copy()
    lo = pd.to_numeric(rows[COVER_COLUMNS[0]], errors="coerce").fillna(0).to_numpy(np.int64)
    hi = pd.to_numeric(rows[COVER_COLUMNS[1]], errors="coerce").fillna(-1).to_numpy(np.int64)
    hi = np.where(hi < 0, n, hi)  # a missing stop means "to the end"
    lo = np.clip(lo, 0, n)
    hi = np.clip(hi, lo, n)
    return lo, hi


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
        self.pair_id = rows["pair_id"].astype(str).to_numpy()
        self.shard = rows["shard"].astype(str).to_numpy()
        self.start = rows["start_frame"].to_numpy(np.int64)
        self.n_frames = rows["n_frames"].to_numpy(np.int64)
        self.cover_lo, self.cover_hi = covered_spans(rows)
        self.channel, self.n_bins, self.patch_frames = int(channel), int(n_bins), int(patch_frames)
        self.skip_db = skip_silent_target_db
        covered = self.cover_hi - self.cover_lo
        if not (covered > 0).any():
            raise InputError("no pair has covered frames (cover_start_frame >= cover_stop_frame everywhere); "
                             "check the verify stage's alignment report")
        # patch start positions per pair; 0 for pairs with nothing covered
        positions = np.where(covered > 0, np.maximum(covered - self.patch_frames + 1, 1), 0)
        self.cum_positions = np.cumsum(positions)
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
        """Covered frames (the frames patches are drawn from)."""
        return int((self.cover_hi - self.cover_lo).sum())

    def block(self, i: int, offset_frames: int) -> np.ndarray:
        """All channels of pair `i` from `offset_frames` (relative to the pair): float32 (3, n_bins, patch_frames).

        Frames past the pair's cover (or its end) are zeros.

        Reads one contiguous block of the shard; raises InputError naming the pair when it holds inf/NaN.
        """
        arr = self._array(self.shard[i])
        n = int(max(0, min(self.patch_frames, self.cover_hi[i] - offset_frames)))  # uncovered frames stay 0
        s = int(self.start[i] + offset_frames)
        if s + n > arr.shape[0]:
            raise InputError(f"pair {self.pair_id[i]}: frames {s}..{s + n} are outside {self.shard[i]} "
                             f"({arr.shape[0]} frames); the manifest does not match its shards, rerun `pairminer targets`")
        raw = np.asarray(arr[s:s + n])  # (n, 3, all bins): one contiguous read
        out = np.zeros((3, self.n_bins, self.patch_frames), np.float32)
        out[:, :, :n] = raw[:, :, : self.n_bins].transpose(1, 2, 0)
        if not np.isfinite(out).all():
            raise InputError(f"pair {self.pair_id[i]} in {self.shard[i]} holds inf or NaN magnitudes (a value "
                             "overflowed float16 when the targets were made); rerun `pairminer targets` with the "
                             "fixed pair, or drop it from the manifest")
        return out

    def read(self, i: int, offset_frames: int) -> np.ndarray:
        """Patch of pair `i` from `offset_frames`: float32 (2, n_bins, patch_frames), [mix, target]."""
        b = self.block(i, offset_frames)
        return b[[0, self.channel]]

    def draw(self, rng: np.random.Generator) -> tuple[int, int]:
        """A random (pair index, offset frames) inside the covers; every covered start equally likely."""
        k = int(rng.integers(0, int(self.cum_positions[-1])))
        i = int(np.searchsorted(self.cum_positions, k, side="right"))
        before = int(self.cum_positions[i - 1]) if i else 0
        return i, int(self.cover_lo[i]) + (k - before)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One random patch, float32 (3, n_bins, patch_frames): [mix, instrumental, vocals]."""
        for _ in range(_MAX_SILENT_RETRIES):
            block = self.block(*self.draw(rng))
            if self.skip_db is None or not self._silent(block[[0, self.channel]]):
                return block
            self.skipped_silent += 1
        return block

    def _silent(self, patch: np.ndarray) -> bool:
        e_mix = float(np.square(patch[0]).sum())
        e_tgt = float(np.square(patch[1]).sum())
        return e_mix == 0.0 or 10.0 * math.log10(max(e_tgt, 1e-30) / e_mix) < -float(self.skip_db)


def augment(block: np.ndarray, other: np.ndarray | None, rng: np.random.Generator, gain_db: float) -> np.ndarray:
    """Rebuild a patch's mix from its targets with random source gains (see the module docstring).

    Args:
        block: (3, bins, frames) [mix, instrumental, vocals] of one patch.
        other: a second patch whose instrumental replaces this one's (remixing), or None.
        gain_db: gains uniform in +-gain_db per source.

    Returns:
        (3, bins, frames): [g_v * V + g_i * I, g_i * I, g_v * V].
    """
    g_v, g_i = 10.0 ** (rng.uniform(-gain_db, gain_db, 2) / 20.0)
    inst = (other if other is not None else block)[1] * g_i
    voc = block[2] * g_v
    return np.stack([voc + inst, inst, voc])


class PatchBatches(torch.utils.data.Dataset):
    """Batch number `step` -> (mix, target), each float32 (batch, 1, n_bins, patch_frames), unnormalised.

    The batch is a pure function of (seed, step), so any worker count and any resume point give the
    same data. A bad pair does not raise inside a worker (where the message would carry a traceback):
    the batch carries the message instead and the training loop raises it.
    """

    def __init__(self, sampler: PatchSampler, batch_size: int, seed: int, *, augment_prob: float = 0.0,
                 augment_gain_db: float = 0.0, remix_prob: float = 0.0) -> None:
        self.sampler, self.batch_size, self.seed = sampler, int(batch_size), int(seed)
        self.augment_prob, self.gain_db, self.remix_prob = float(augment_prob), float(augment_gain_db), float(remix_prob)

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int):
        rng = np.random.default_rng([self.seed, 7919, int(step)])
        ch = self.sampler.channel
        out = np.empty((self.batch_size, 2, self.sampler.n_bins, self.sampler.patch_frames), np.float32)
        try:
            for b in range(self.batch_size):
                block = self.sampler.sample(rng)
                if self.augment_prob and rng.random() < self.augment_prob:
                    other = self.sampler.sample(rng) if rng.random() < self.remix_prob else None
                    block = augment(block, other, rng, self.gain_db)
                out[b, 0], out[b, 1] = block[0], block[ch]
        except InputError as exc:
            return torch.zeros(0), torch.zeros(0), str(exc)
        t = torch.from_numpy(out)
        return t[:, 0:1], t[:, 1:2], ""


def fixed_patches(sampler: PatchSampler, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` seeded patches for validation: (mix, target), each float32 (n, 1, n_bins, patch_frames).

    Patches are spread over pairs round-robin (every pair with covered frames is used before any
    repeats) at seeded offsets inside the cover.
    """
    rng = np.random.default_rng([seed, 10_007])
    usable = np.flatnonzero(sampler.cover_hi > sampler.cover_lo)
    order = usable[rng.permutation(len(usable))]
    patches = []
    for k in range(n):
        i = int(order[k % len(order)])
        lo, hi = int(sampler.cover_lo[i]), int(sampler.cover_hi[i])
        off = lo + int(rng.integers(0, max(hi - lo - sampler.patch_frames, 0) + 1))
        patches.append(sampler.read(i, off))
    arr = torch.from_numpy(np.stack(patches))
    return arr[:, 0:1].contiguous(), arr[:, 1:2].contiguous()
