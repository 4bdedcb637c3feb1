"""The blocked-pairs gate: count, before any pair is built, the pairs the big artists' blocks will make,
and refuse a run over `max_blocked_pairs` with the artist to blame."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import CatalogError
from .config import DiscoverConfig
from .blocks import _CAPPED_KEEP, _ms

log = logging.getLogger(__name__)


_HIST_MIN_ROWS = 1000  # artists with fewer originals in a partition are left out of the pre-count


def big_artist_durations(part: pa.Table, row_keys: tuple[pa.Array, np.ndarray], is_orig: np.ndarray
                         ) -> dict[str, Any]:
    """For the artists with at least `_HIST_MIN_ROWS` originals in this partition: how many originals
    have each duration (in ms). Small: at most one entry per distinct duration of a large artist. It lets
    `check_blocked_pairs` count the pairs the block step will build before it starts."""
    keys, idx = row_keys
    kenc = pc.dictionary_encode(keys)
    group = kenc.indices.to_numpy(zero_copy_only=False).astype(np.int64)[idx]
    n_groups = len(kenc.dictionary)
    counts = np.bincount(group[is_orig], minlength=n_groups)
    big = np.flatnonzero(counts >= _HIST_MIN_ROWS)
    if len(big) == 0:
        return {"keys": [], "packed": np.zeros(0, np.int64), "counts": np.zeros(0, np.int64), "rows": []}
    rank = np.full(n_groups, -1, dtype=np.int64)
    rank[big] = np.arange(len(big))
    r = rank[group]
    rows = np.flatnonzero(is_orig & (r >= 0))
    dur = part.column("duration_s").take(pa.array(rows, pa.int64())).to_numpy(zero_copy_only=False)
    packed, n = np.unique((r[rows] << 28) | _ms(dur), return_counts=True)
    return {"keys": kenc.dictionary.take(pa.array(big, pa.int64())).to_pylist(), "packed": packed,
            "counts": n.astype(np.int64), "rows": counts[big].tolist()}


def _artist_hist(detected: dict[str, Any]) -> dict[str, Any]:
    return detected["artist_hist"]


def blocked_pairs_estimate(side: dict[str, Any], hists: list[dict[str, Any]], cfg: DiscoverConfig
                           ) -> tuple[int, list[tuple[str, int, int, int]]]:
    """The pairs the block step will build for the versions of the large artists (those with
    `_HIST_MIN_ROWS`+ originals in a partition), partition by partition as `block_window_score` builds
    them: a version's originals within its window, or at most `_CAPPED_KEEP` when that is over
    `max_block_comparisons`. Returns (pairs, [(artist key, originals, versions, pairs)], largest first)."""
    per_key: dict[str, list[int]] = {}
    vkey_at = {k: j for j, k in enumerate(side["vkeys"].tolist())}
    r = np.ceil(side["window"] * 1000).astype(np.int64) + 1
    v_ms = _ms(side["dur"])
    for h in hists:
        for rank, key in enumerate(h["keys"]):
            code = vkey_at.get(key)
            if code is None:
                continue
            at = np.flatnonzero(side["code"] == code)
            got = per_key.setdefault(key, [0, len(at), 0])
            got[0] += h["rows"][rank]
            a, b = np.searchsorted(h["packed"], [rank << 28, (rank + 1) << 28])
            ms, cum = h["packed"][a:b] & (2**28 - 1), np.r_[0, np.cumsum(h["counts"][a:b])]
            lo = np.searchsorted(ms, np.maximum(v_ms[at] - r[at], 0), side="left")
            hi = np.searchsorted(ms, np.minimum(v_ms[at] + r[at], 2**28 - 1), side="right")
            n = cum[hi] - cum[lo]
            got[2] += int(np.where(n > cfg.max_block_comparisons, np.minimum(n, _CAPPED_KEEP), n).sum())
    rows = sorted(((k, o, v, p) for k, (o, v, p) in per_key.items()), key=lambda t: (-t[3], t[0]))
    return sum(t[3] for t in rows), rows


def check_blocked_pairs(side: dict[str, Any], hists: list[dict[str, Any]], cfg: DiscoverConfig) -> dict[str, Any]:
    """Refuse, before any pair is built, a catalog whose large artists would block more than
    `max_blocked_pairs` pairs (one artist's million tracks: the pairs grow with its size squared).
    Returns `side` unchanged (the block tasks wait on it)."""
    total, rows = blocked_pairs_estimate(side, hists, cfg)
    if total > cfg.max_blocked_pairs:
        key, n_orig, n_ver, pairs = rows[0]
        others = f" ({total:,} over all large artists)" if len(rows) > 1 else ""
        raise CatalogError(
            f"the artist {key!r} holds {n_orig:,} originals: comparing its {n_ver:,} versions with the originals "
            f"within their duration windows is {pairs:,} pairs{others}, over discover.max_blocked_pairs = "
            f"{cfg.max_blocked_pairs:,}; raise it (e.g. --max-blocked-pairs {10 ** math.ceil(math.log10(total))}; "
            "time grows with the pairs, memory does not), lower --max-block-comparisons (versions in larger "
            "windows are then compared by exact title only), or give the artists ids (artist_id column)")
    return side
