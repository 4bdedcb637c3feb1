"""The STFT shard format of `pairminer targets` and the data-loading API the trainer uses.

Layout of a targets folder::

    OUT/targets/
      manifest.parquet          one row per pair (schemas/manifest.schema.json)
      targets-report.json
      shards/shard-000000.npy   float16, shape (frames, 3, n_fft // 2 + 1)
      shards/shard-000001.npy   ...

Each shard is a plain NumPy ``.npy`` file (memory-mappable with ``np.load(path, mmap_mode="r")``)
holding the frames of whole pairs back to back: a pair never spans two shards. Channel 0 is
``|mix|``, channel 1 the instrumental target, channel 2 the vocal target, all STFT magnitudes on the
mix's timeline. A pair's frames are ``shard[start_frame : start_frame + n_frames]``; of those, only
``[cover_start_frame, cover_stop_frame)`` (relative to the pair's first frame) have a valid target:
the frames where the aligned version exists. Outside that range the target channels hold zeros
and must not be trained on. `FORMAT_VERSION` is written to the manifest.

A shard is written under a temporary name and renamed when it is complete, and the manifest only
ever names sealed shards, so a killed run leaves no torn shard behind.

This module needs only numpy, pandas and pyarrow: the trainer imports it on GPU machines that have
no audio or Dask stack.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .errors import InputError, OutputError

log = logging.getLogger(__name__)

SHARD_DIR = "shards"
MANIFEST_NAME = "manifest.parquet"
CHANNELS = ("mix", "instrumental", "vocals")
N_CHANNELS = len(CHANNELS)
# Channel indices, derived from CHANNELS (the one home of the layout).
MIX, INSTRUMENTAL, VOCALS = (CHANNELS.index(c) for c in ("mix", "instrumental", "vocals"))
# Version of the shard contents, written to every manifest row and part of the targets stage's
# freshness: bump it when what the frames mean changes (2: frames outside the version's coverage hold
# zero targets, and the manifest names the covered range; 3: where the pair cancels, the targets are
# the magnitudes of the aligned waveform stems, `target_method` in the manifest).
FORMAT_VERSION = 3
# Largest finite float16: targets above it would be stored as inf.
FLOAT16_MAX = float(np.finfo(np.float16).max)
SHARD_DTYPE = np.dtype("<f2")
_SHARD_RE = re.compile(r"^shard-(\d{6,})\.npy$")


def shard_relpath(index: int) -> str:
    """Path of shard number `index` relative to the targets folder, e.g. ``shards/shard-000003.npy``."""
    return f"{SHARD_DIR}/shard-{index:06d}.npy"


def shard_index(relpath: str) -> int:
    """The number of a shard from its (relative) path; -1 when the name is not a shard name."""
    m = _SHARD_RE.match(Path(relpath).name)
    return int(m.group(1)) if m else -1


def frame_bytes(n_fft: int) -> int:
    """Bytes of one frame in a shard: N_CHANNELS x (n_fft // 2 + 1) bins x float16."""
    return N_CHANNELS * (n_fft // 2 + 1) * SHARD_DTYPE.itemsize


def covered_frames(row: Mapping[str, Any]) -> tuple[int, int]:
    """[start, stop) of a manifest row's covered frames, relative to its first frame (all frames for old manifests)."""
    n = int(row["n_frames"])
    start = row.get("cover_start_frame") if hasattr(row, "get") else None
    stop = row.get("cover_stop_frame") if hasattr(row, "get") else None
    try:
        start = int(start) if start is not None and start == start else 0
        stop = int(stop) if stop is not None and stop == stop else n
    except (TypeError, ValueError):
        start, stop = 0, n
    return max(0, min(start, n)), max(0, min(stop, n))


def shard_capacity_frames(shard_mb: float, n_fft: int) -> int:
    """How many frames fill a shard of about `shard_mb` MiB (at least 1)."""
    return max(1, int(shard_mb * 2**20) // frame_bytes(n_fft))


class ShardWriter:
    """Appends whole pairs to fixed-capacity float16 shards and seals each one atomically.

    A shard holds at most `capacity_frames` frames (a single pair longer than that gets a shard of its
    own). Frames are buffered in memory until the shard is sealed, so memory stays below one shard.

    Args:
        targets_dir: the targets folder; shards go to ``<targets_dir>/shards/``.
        bins: frequency bins per frame (``n_fft // 2 + 1``).
        capacity_frames: frames per shard.
        first_index: number of the first shard this writer creates.
        on_seal: called as ``on_seal(relpath, entries)`` after a shard is renamed into place, where
            entries are the ``(key, start_frame, n_frames)`` of the pairs it holds. The stage commits
            the manifest there, so the manifest never names an unsealed shard.
    """

    def __init__(self, targets_dir: str | os.PathLike, bins: int, capacity_frames: int, *, first_index: int = 0,
                 on_seal: Callable[[str, list[tuple[Any, int, int]]], None] | None = None):
        self.targets_dir = Path(targets_dir)
        self.bins = int(bins)
        self.capacity_frames = int(capacity_frames)
        self.next_index = int(first_index)
        self.on_seal = on_seal
        self._parts: list[np.ndarray] = []
        self._entries: list[tuple[Any, int, int]] = []
        self._frames = 0
        self.sealed: list[str] = []
        self.bytes_written = 0
        (self.targets_dir / SHARD_DIR).mkdir(parents=True, exist_ok=True)

    @property
    def buffered_frames(self) -> int:
        return self._frames

    def add(self, key: Any, frames: np.ndarray) -> None:
        """Queue one pair's frames, shape (n_frames, 3, bins); seals the current shard first if it would overflow."""
        if frames.ndim != 3 or frames.shape[1:] != (N_CHANNELS, self.bins):
            raise ValueError(f"pair {key}: frames have shape {frames.shape}, expected (n, {N_CHANNELS}, {self.bins})")
        n = int(frames.shape[0])
        if self._frames and self._frames + n > self.capacity_frames:
            self.seal()
        self._parts.append(np.ascontiguousarray(frames, dtype=SHARD_DTYPE))
        self._entries.append((key, self._frames, n))
        self._frames += n
        if self._frames >= self.capacity_frames:
            self.seal()

    def seal(self) -> str | None:
        """Write the buffered pairs as the next shard (temp name, fsync, rename). Returns its relative path."""
        if not self._parts:
            return None
        rel = shard_relpath(self.next_index)
        final = self.targets_dir / rel
        data = np.concatenate(self._parts, axis=0) if len(self._parts) > 1 else self._parts[0]
        from .storage import atomic_path  # the one atomic writer (umask-honouring, temp removed on failure)

        try:
            with atomic_path(final) as tmp, open(tmp, "wb") as f:
                np.save(f, data, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise OutputError(f"cannot write shard {final}: {exc.strerror}; free disk space or choose another -o") from exc
        entries = self._entries
        self.sealed.append(rel)
        self.bytes_written += final.stat().st_size
        self.next_index += 1
        self._parts, self._entries, self._frames = [], [], 0
        log.debug("sealed %s: %d pairs, %d frames", rel, len(entries), data.shape[0])
        if self.on_seal is not None:
            self.on_seal(rel, entries)
        return rel

    def close(self) -> None:
        """Seal whatever is buffered."""
        self.seal()


def remove_unreferenced(targets_dir: str | os.PathLike, referenced: Iterable[str]) -> list[str]:
    """Delete shard files and leftover temporary files that the manifest does not name.

    They come from a run killed after sealing a shard but before committing the manifest; their
    pairs are not in the manifest, so the rerun makes them again. Returns the removed relative paths.
    """
    folder = Path(targets_dir) / SHARD_DIR
    if not folder.is_dir():
        return []
    keep = {Path(r).name for r in referenced}
    removed = []
    for p in sorted(folder.iterdir()):
        stale_tmp = p.name.startswith(".shard-") and p.name.endswith(".tmp")
        orphan = shard_index(p.name) >= 0 and p.name not in keep
        if p.is_file() and (stale_tmp or orphan):
            p.unlink()
            removed.append(f"{SHARD_DIR}/{p.name}")
    if removed:
        log.info("removed %d shard file(s) not named by the manifest: %s", len(removed), ", ".join(removed))
    return removed


def read_manifest(targets_dir: str | os.PathLike):
    """Read ``<targets_dir>/manifest.parquet`` as a pandas DataFrame (one row per pair).

    Raises:
        InputError: the folder has no readable manifest.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(targets_dir) / MANIFEST_NAME
    if not path.exists():
        raise InputError(f"{path} does not exist; run `pairminer targets` to make {targets_dir} first")
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path} is not a readable Parquet file ({exc}); rerun `pairminer targets`") from exc


@functools.lru_cache(maxsize=64)
def _open_shard(path: str, mtime_ns: int, size: int) -> np.ndarray:
    # mtime and size are part of the key so that a replaced file is opened afresh.
    return np.load(path, mmap_mode="r", allow_pickle=False)


def open_shard(targets_dir: str | os.PathLike, relpath: str) -> np.ndarray:
    """Memory-map one shard read-only: float16 array of shape (frames, 3, bins)."""
    path = Path(targets_dir) / relpath
    try:
        st = path.stat()
        arr = _open_shard(str(path), st.st_mtime_ns, st.st_size)
    except FileNotFoundError as exc:
        raise InputError(f"shard {path} is missing; rerun `pairminer targets` on {targets_dir}") from exc
    except ValueError as exc:
        raise InputError(f"shard {path} is not a valid .npy file ({exc}); delete it and rerun `pairminer targets`") from exc
    if arr.ndim != 3 or arr.shape[1] != N_CHANNELS or arr.dtype != SHARD_DTYPE:
        raise InputError(f"shard {path} has shape {arr.shape} and dtype {arr.dtype}, expected (frames, 3, bins) float16")
    return arr


def read_pair_frames(targets_dir: str | os.PathLike, manifest_row: Mapping[str, Any]) -> np.ndarray:
    """One pair's frames from its manifest row.

    Args:
        targets_dir: the targets folder holding manifest.parquet and shards/.
        manifest_row: a row of `read_manifest` (a pandas Series or any mapping with ``shard``,
            ``start_frame`` and ``n_frames``).

    Returns:
        Read-only float16 array, shape (n_frames, 3, n_fft // 2 + 1): channel 0 = |mix|,
        1 = instrumental target, 2 = vocal target; frame i starts at mix sample i * hop (centred STFT).
        It is a view of a memory map; copy it (``np.array(x, dtype=np.float32)``) to keep or modify it.
    """
    shard = open_shard(targets_dir, str(manifest_row["shard"]))
    start, n = int(manifest_row["start_frame"]), int(manifest_row["n_frames"])
    if start < 0 or n <= 0 or start + n > shard.shape[0]:
        raise InputError(
            f"pair {manifest_row.get('pair_id', '?')}: frames {start}..{start + n} are outside {manifest_row['shard']} "
            f"({shard.shape[0]} frames); the manifest does not match its shards, rerun `pairminer targets`"
        )
    return shard[start:start + n]
