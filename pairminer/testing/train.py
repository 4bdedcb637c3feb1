"""Training fixtures: a tiny model configuration and a tiny targets folder written through the real ShardWriter.

Shared by the training, separation and training-reliability tests (tests/train/).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pairminer.shards import ShardWriter

TINY = dict(n_bins=64, patch_frames=64, base_channels=8, batch_size=2, num_workers=0, valid_patches=4, log_every=5)


def make_targets(folder: Path, *, n_pairs: int = 6, n_fft: int = 128, hop: int = 96, sr_hz: int = 8000,
                 seed: int = 0, splits: tuple[str, ...] | None = None, frames: tuple[int, int] = (80, 200),
                 covers: list[tuple[int, int]] | None = None, cover_columns: bool = True,
                 capacity_frames: int = 400) -> Path:
    """Tiny targets folder written through the real ShardWriter: shards/*.npy + manifest.parquet.

    Instrumental: a low-pass noise floor with beat-like amplitude bursts. Vocals: a harmonic comb whose
    fundamental bin glides, switched on and off in phrases. |mix| = vocals + instrumental, so the vocal
    target max(|mix| - |inst|, 0) is exactly the comb. Each pair gets cover_start_frame/cover_stop_frame
    (`covers[i]`, default the whole pair) unless `cover_columns` is False (an old manifest).
    """
    rng = np.random.default_rng(seed)
    bins = n_fft // 2 + 1
    f = np.arange(bins)
    rows = []
    splits = splits or tuple(["train"] * (n_pairs - 2) + ["valid", "test"])

    def on_seal(rel, entries):
        for key, start, n in entries:
            rows[key].update(shard=rel, start_frame=start, n_frames=n)

    writer = ShardWriter(folder, bins, capacity_frames=capacity_frames, on_seal=on_seal)
    for i in range(n_pairs):
        n = int(rng.integers(*frames))
        beat = 0.3 + (rng.random(n) < 0.25) * rng.uniform(0.5, 1.0, n)
        inst = beat[:, None] * np.exp(-f / 25.0)[None] * rng.uniform(0.5, 1.0, (n, bins))
        f0 = 4 + 3 * (1 + np.sin(np.arange(n) / rng.uniform(5, 15)))
        comb = np.zeros((n, bins))
        for k in range(1, 8):
            comb += np.exp(-0.5 * ((f[None] - k * f0[:, None]) / 0.7) ** 2) / k
        on = np.repeat(rng.random(n // 10 + 1) < 0.6, 10)[:n]
        voc = 1.5 * comb * on[:, None]
        row = {"pair_id": f"m{i}__v{i}", "mix_track_id": f"m{i}", "version_track_id": f"v{i}",
               "version_kind": "instrumental", "artist": f"artist {i}", "genre": "pop",
               "sr_hz": sr_hz, "n_fft": n_fft, "hop": hop, "window": "hann", "split": splits[i]}
        if cover_columns:
            lo, hi = covers[i] if covers else (0, n)
            row.update(cover_start_frame=lo, cover_stop_frame=hi)
        rows.append(row)
        writer.add(i, np.stack([inst + voc, inst, voc], axis=1))
    writer.close()
    pd.DataFrame(rows).to_parquet(folder / "manifest.parquet")
    return folder
