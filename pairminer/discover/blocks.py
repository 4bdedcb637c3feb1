"""The block/score task of discover: one partition's originals joined against every version.

The originals are sorted by (artist code, duration in ms) packed into one int64 and each version looks
its duration window up by binary search (see `stage.py` for the graph); a version whose window holds more
than `max_block_comparisons` originals is compared by exact base title only (`_capped_pairs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .config import DiscoverConfig, OPTIONAL
from .keys import _artist_codes, _title_parts_hybrid
from .scoring import RapidfuzzScorer, TitleScorer, is_short


def _title_scorer(cfg: DiscoverConfig) -> TitleScorer:
    """The scorer unit for comparing parts (the versions were modelled with cfg.detector() already)."""
    return TitleScorer(None, RapidfuzzScorer(cfg.scorer, cfg.min_score))


_MS_MAX = 2**27 - 1  # 37 h in ms: durations are packed in 28 bits next to the artist code


def _ms(dur_s: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(dur_s, dtype=np.float64) * 1000), 0, _MS_MAX).astype(np.int64)


def _window_ranges(comp_sorted: np.ndarray, code: np.ndarray, dur_s: np.ndarray, reach_s: Any
                   ) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) positions of the originals with the same code and |duration - dur_s| <= reach_s (+1 ms)."""
    r = np.ceil(np.asarray(reach_s, dtype=np.float64) * 1000).astype(np.int64) + 1
    v = _ms(dur_s)
    lo = np.searchsorted(comp_sorted, (code << 28) | np.maximum(v - r, 0), side="left")
    hi = np.searchsorted(comp_sorted, (code << 28) | np.minimum(v + r, 2**28 - 1), side="right")
    return lo, hi


def _range_pairs(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, position) for every position lo[i] .. hi[i]-1, flattened."""
    n = np.maximum(hi - lo, 0)
    vi = np.repeat(np.arange(len(lo)), n)
    within_run = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    return vi, np.repeat(lo, n) + within_run


def block_window_score(part: pa.Table, detected: dict[str, Any], vs: dict[str, Any],
                       cfg: DiscoverConfig) -> dict[str, Any]:
    """Join one partition's originals against all versions, apply the window and the title score.

    A version with more than `max_block_comparisons` originals in its window (a placeholder duration,
    one artist's 100k tracks) is capped: it is compared only with the originals of exactly its base
    title, at most 64 of them (the nearest in duration).

    Returns:
        {"pairs": DataFrame of matches (version_row, mix fields..., title_score, duration_delta_s),
          "index": the originals sorted by (artist code, duration) for near_miss_scan,
         "originals": int, "blocked": int, "within": int, "above": int, "capped_versions": ndarray of rows}
    """
    ts = _title_scorer(cfg)
    is_orig = ~detected["is_version"]
    n_orig = int(is_orig.sum())
    empty = {"pairs": pd.DataFrame(),
             "originals": n_orig, "blocked": 0, "within": 0, "above": 0, "capped_versions": np.zeros(0, np.int64)}
    if len(vs["block"]) == 0 or n_orig == 0:
        return empty
    o_codes = _artist_codes(part, vs["vkeys"])
    o_codes[~is_orig] = -1
    in_block = o_codes >= 0
    if not in_block.any():
        return empty
    width = vs["window"]  # per version
    # Originals sorted once by (artist code, duration in ms) packed into one int64; every version looks
    # its window up with two binary searches, so a block costs (versions) x (originals in the window).
    sel = np.flatnonzero(in_block)
    o_dur = part.column("duration_s").take(pa.array(sel, pa.int64())).to_numpy(zero_copy_only=False)
    comp = (o_codes[sel] << 28) | _ms(o_dur)
    order = np.argsort(comp, kind="stable")
    comp_sorted = comp[order]
    lo, hi = _window_ranges(comp_sorted, vs["code"], vs["dur"], width)
    capped = (hi - lo) > cfg.max_block_comparisons
    vi, opos = _range_pairs(np.where(capped, 0, lo), np.where(capped, 0, hi))
    oi = order[opos]  # index into sel
    blocked = len(vi)
    delta = vs["dur"][vi] - o_dur[oi]
    keep = np.abs(delta) < width[vi]
    vi, oi, delta = vi[keep], oi[keep], delta[keep]
    if capped.any():
        cvi, coi, cdelta, cblocked = _capped_pairs(part, sel, order, o_dur, lo, hi, capped, vs, cfg)
        vi, oi, delta = np.concatenate([vi, cvi]), np.concatenate([oi, coi]), np.concatenate([delta, cdelta])
        blocked += cblocked
    index = {"sel": sel, "order": order, "comp": comp_sorted, "dur": o_dur, "parts_pos": np.zeros(0, np.int64)}
    within = len(vi)
    if within == 0:
        return {**empty, "index": index, "blocked": blocked, "capped_versions": vs["row"][capped]}
    o_pos = sel[oi]
    uniq_pos, inverse = np.unique(o_pos, return_inverse=True)
    base_a, rec_a, edit_a = _title_parts_hybrid(part.column("title").take(pa.array(uniq_pos)))
    uniq_base = np.asarray(base_a.to_numpy(zero_copy_only=False), dtype=object)
    uniq_len = pc.utf8_length(base_a).to_numpy(zero_copy_only=False).astype(np.int64)
    o_base, o_rec, o_edit, o_len = uniq_base[inverse], rec_a[inverse], edit_a[inverse], uniq_len[inverse]
    index.update(parts_pos=uniq_pos, parts_base=uniq_base, parts_rec=rec_a, parts_len=uniq_len, parts_edit=edit_a)
    score, rec_ok = ts.compare(vs["match"][vi], vs["rec"][vi], o_base, o_rec, vs["match_len"][vi], o_len,
                               vs["edit"][vi], o_edit)
    hit = ts.is_match(score, rec_ok)
    above = int(hit.sum())
    cols = ["track_id", "artist", "title", "duration_s", "row_number"] + [c for c in OPTIONAL if c in part.column_names]
    mix = part.select(cols).take(pa.array(o_pos[hit], pa.int64())).to_pandas()
    mix.columns = ["mix_" + c for c in mix.columns]
    pairs = pd.DataFrame({
        "version_row": vs["row"][vi[hit]],
        "o_match": o_base[hit],
        "title_score": score[hit].astype(np.float64),
        "duration_delta_s": delta[hit],
        "edit_agrees": (o_edit[hit] == vs["edit"][vi[hit]]),
        "mix_full_length": np.array([not is_short(e) for e in o_edit[hit].tolist()], dtype=bool),
        "artist_key": vs["key"][vi[hit]],
    })
    pairs = pd.concat([pairs, mix.reset_index(drop=True)], axis=1)
    return {"pairs": pairs, "index": index, "originals": n_orig, "blocked": blocked,
            "within": within, "above": above, "capped_versions": vs["row"][capped]}


_CAPPED_KEEP = 64


def _group_by_key_then_duration(keys: np.ndarray, dur: np.ndarray):
    """Positions sorted by (key, duration), with {key: group number} and the group bounds."""
    uniq, inv = np.unique(keys.astype(str), return_inverse=True)
    order = np.lexsort((dur, inv))
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    return {u: j for j, u in enumerate(uniq.tolist())}, order, dur[order], bounds


def _capped_pairs(part: pa.Table, sel: np.ndarray, order: np.ndarray, o_dur: np.ndarray, lo: np.ndarray,
                  hi: np.ndarray, capped: np.ndarray, vs: dict[str, Any], cfg: DiscoverConfig):
    """Pairs of the capped versions: exact base-title grouping within their block, the nearest
    `_CAPPED_KEEP` in duration (all score 100 with each other, so best_match needs no more)."""
    cap = min(cfg.max_block_comparisons, _CAPPED_KEEP)
    widths = vs["window"]
    vis, ois, deltas, blocked = [], [], [], 0
    keyed = np.empty(len(sel), dtype=object)  # base title per original, filled as capped blocks need it
    have = np.zeros(len(sel), dtype=bool)
    groups: dict[tuple[int, int], dict[str, np.ndarray]] = {}  # versions sharing a window share its index
    for i in np.flatnonzero(capped).tolist():
        span = (int(lo[i]), int(hi[i]))
        cand_all = order[span[0]:span[1]]  # indices into sel
        if span not in groups:
            need = cand_all[~have[cand_all]]
            if len(need):
                titles = part.column("title").take(pa.array(sel[need], pa.int64()))
                keyed[need] = np.asarray(_title_parts_hybrid(titles)[0].to_numpy(zero_copy_only=False), dtype=object)
                have[need] = True
            groups[span] = _group_by_key_then_duration(keyed[cand_all], o_dur[cand_all])
        key_at, o_sorted, d_sorted, bounds = groups[span]
        j = key_at.get(vs["match"][i])
        if j is None:
            continue
        # the group's originals sorted by duration: the window, then the `cap` nearest, by binary search
        pos_sorted, dur_sorted = o_sorted[bounds[j]:bounds[j + 1]], d_sorted[bounds[j]:bounds[j + 1]]
        v, width = vs["dur"][i], widths[i]
        a = np.searchsorted(dur_sorted, v - width, side="right")
        b = np.searchsorted(dur_sorted, v + width, side="left")
        if b - a > cap:
            mid = np.searchsorted(dur_sorted, v)
            a2 = max(a, min(mid - cap, b - 2 * cap))
            near_idx = np.arange(a2, min(b, a2 + 2 * cap))
            near_idx = near_idx[np.argsort(np.abs(dur_sorted[near_idx] - v), kind="stable")[:cap]]
        else:
            near_idx = np.arange(a, b)
        cand = cand_all[pos_sorted[near_idx]]
        d = v - o_dur[cand]
        blocked += len(cand)
        vis.append(np.full(len(cand), i, dtype=np.int64))
        ois.append(cand)
        deltas.append(d)
    if not vis:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 0
    return np.concatenate(vis), np.concatenate(ois), np.concatenate(deltas), blocked
