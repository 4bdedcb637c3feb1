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

    The pairs are built and scored in chunks of at most `_CHUNK_PAIRS` (consecutive versions, whose
    windows overlap), keeping only the matches: memory is bounded by the chunk, not by (versions) x
    (originals in their windows), which grows quadratically with one artist's size.

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
    o_codes = _artist_codes(part, vs["vkeys"], detected.get("artist_keys"))
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
    parts = _PartsCache(part, sel)
    cols = ["track_id", "artist", "title", "duration_s", "row_number"] + [c for c in OPTIONAL if c in part.column_names]
    frames, blocked, within, above = [], 0, 0, 0
    u_lo, u_hi = np.where(capped, 0, lo), np.where(capped, 0, hi)  # the capped versions are paired below
    for a, b in _chunks(np.maximum(u_hi - u_lo, 0), _CHUNK_PAIRS):
        vi, opos = _range_pairs(u_lo[a:b], u_hi[a:b])
        vi = vi + a
        oi = order[opos]  # index into sel
        blocked += len(vi)
        delta = vs["dur"][vi] - o_dur[oi]
        keep = np.abs(delta) < width[vi]
        vi, oi, delta = vi[keep], oi[keep], delta[keep]
        del opos, keep
        within += len(vi)
        got = _score_chunk(part, sel, parts, vi, oi, delta, vs, ts, cols)
        above += got[1]
        if got[0] is not None:
            frames.append(got[0])
    if capped.any():
        cvi, coi, cdelta, cblocked = _capped_pairs(part, sel, order, o_dur, o_codes, lo, hi, capped, vs, cfg, parts)
        blocked += cblocked
        for a, b in _chunks(np.ones(len(cvi), np.int64), _CHUNK_PAIRS):
            within += b - a
            got = _score_chunk(part, sel, parts, cvi[a:b], coi[a:b], cdelta[a:b], vs, ts, cols)
            above += got[1]
            if got[0] is not None:
                frames.append(got[0])
    index = {"sel": sel, "order": order, "comp": comp_sorted, "dur": o_dur, **parts.index()}
    capped_rows = vs["row"][capped]
    if within == 0:
        return {**empty, "index": index, "blocked": blocked, "capped_versions": capped_rows}
    pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return {"pairs": pairs, "index": index, "originals": n_orig, "blocked": blocked,
            "within": within, "above": above, "capped_versions": capped_rows}


_CHUNK_PAIRS = 1_000_000  # pairs built and scored at once per partition task (a bounded working set)


def _chunks(n: np.ndarray, budget: int):
    """[a, b) ranges of consecutive items whose sizes `n` sum to at most `budget` (at least one item each)."""
    total = int(n.sum()) if len(n) else 0
    if total <= budget:
        if total:
            yield 0, len(n)
        return
    cum = np.cumsum(n)
    a = 0
    while a < len(n):
        base = int(cum[a - 1]) if a else 0
        b = max(int(np.searchsorted(cum, base + budget, side="right")), a + 1)
        if int(cum[b - 1]) > base:
            yield a, b
        a = b


class _PartsCache:
    """The title parts (base, recording key, edit key, base length) of the partition's originals, by
    index into `sel`, computed once each as the chunks need them."""

    def __init__(self, part: pa.Table, sel: np.ndarray):
        self.part, self.sel = part, sel
        self.have = np.zeros(len(sel), dtype=bool)
        self.base = np.empty(len(sel), dtype=object)
        self.rec = np.empty(len(sel), dtype=object)
        self.edit = np.empty(len(sel), dtype=object)
        self.length = np.zeros(len(sel), dtype=np.int64)

    def ensure(self, oi: np.ndarray) -> None:
        need = np.unique(oi[~self.have[oi]])
        if len(need) == 0:
            return
        base_a, rec_a, edit_a = _title_parts_hybrid(self.part.column("title").take(pa.array(self.sel[need], pa.int64())))
        self.base[need] = np.asarray(base_a.to_numpy(zero_copy_only=False), dtype=object)
        self.rec[need] = rec_a
        self.edit[need] = edit_a
        self.length[need] = pc.utf8_length(base_a).to_numpy(zero_copy_only=False).astype(np.int64)
        self.have[need] = True

    def index(self) -> dict[str, Any]:
        """The parts computed so far, by sorted partition position (for near_miss_scan to reuse)."""
        at = np.flatnonzero(self.have)
        return {"parts_pos": self.sel[at], "parts_base": self.base[at], "parts_rec": self.rec[at],
                "parts_len": self.length[at], "parts_edit": self.edit[at]}


def _score_chunk(part: pa.Table, sel: np.ndarray, parts: _PartsCache, vi: np.ndarray, oi: np.ndarray,
                 delta: np.ndarray, vs: dict[str, Any], ts: TitleScorer, cols: list[str]
                 ) -> tuple[pd.DataFrame | None, int]:
    """Score one chunk of (version, original) pairs within the window: (the matches as pair rows, count)."""
    if len(vi) == 0:
        return None, 0
    parts.ensure(oi)
    o_base, o_rec, o_edit, o_len = parts.base[oi], parts.rec[oi], parts.edit[oi], parts.length[oi]
    score, rec_ok = ts.compare(vs["match"][vi], vs["rec"][vi], o_base, o_rec, vs["match_len"][vi], o_len,
                               vs["edit"][vi], o_edit)
    hit = ts.is_match(score, rec_ok)
    above = int(hit.sum())
    if not above:
        return None, 0
    o_pos = sel[oi[hit]]
    mix = part.select(cols).take(pa.array(o_pos, pa.int64())).to_pandas()
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
    return pd.concat([pairs, mix.reset_index(drop=True)], axis=1), above


_CAPPED_KEEP = 64


def _group_by_key_then_duration(keys: np.ndarray, dur: np.ndarray):
    """Positions sorted by (key, duration), with {key: group number} and the group bounds."""
    uniq, inv = np.unique(keys.astype(str), return_inverse=True)
    order = np.lexsort((dur, inv))
    bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
    return {u: j for j, u in enumerate(uniq.tolist())}, order, dur[order], bounds


def _capped_pairs(part: pa.Table, sel: np.ndarray, order: np.ndarray, o_dur: np.ndarray, o_codes: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray, capped: np.ndarray, vs: dict[str, Any], cfg: DiscoverConfig,
                  parts: _PartsCache | None = None):
    """Pairs of the capped versions: the originals of exactly their base title (and artist) within their
    window, the nearest `_CAPPED_KEEP` in duration (all score 100 with each other, so best_match needs no
    more).

    The originals of all capped windows are keyed once and sorted by (artist code, base title,
    duration, position), so each capped version costs a few binary searches: memory is linear in the
    partition, never (capped versions) x (their windows).
    """
    cap = min(cfg.max_block_comparisons, _CAPPED_KEEP)
    parts = parts if parts is not None else _PartsCache(part, sel)
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 0)
    ci = np.flatnonzero(capped)
    # sorted positions inside any capped window (a difference array over the sorted originals)
    mark = np.zeros(len(sel) + 1, dtype=np.int64)
    np.add.at(mark, lo[ci], 1)
    np.add.at(mark, hi[ci], -1)
    spos = np.flatnonzero(np.cumsum(mark[:-1]) > 0)  # sorted positions, ascending
    if len(spos) == 0:
        return none
    oi = order[spos]
    parts.ensure(oi)
    tid, titles = pd.factorize(parts.base[oi])
    n_t = np.int64(len(titles))
    gkey = o_codes[sel[oi]].astype(np.int64) * n_t + tid.astype(np.int64)
    srt = np.lexsort((spos, o_dur[oi], gkey))
    g_sorted, d_sorted, oi_sorted = gkey[srt], o_dur[oi][srt], oi[srt]
    v_tid = pd.Index(titles).get_indexer(vs["match"][ci])
    widths = vs["window"]
    vis, ois, deltas, blocked = [], [], [], 0
    for i, t in zip(ci.tolist(), v_tid.tolist()):
        if t < 0:
            continue
        g = int(vs["code"][i]) * int(n_t) + t
        gs, ge = np.searchsorted(g_sorted, g, side="left"), np.searchsorted(g_sorted, g, side="right")
        if gs == ge:
            continue
        dur_sorted = d_sorted[gs:ge]
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
        cand = oi_sorted[gs + near_idx]
        blocked += len(cand)
        vis.append(np.full(len(cand), i, dtype=np.int64))
        ois.append(cand)
        deltas.append(v - o_dur[cand])
    if not vis:
        return none
    return np.concatenate(vis), np.concatenate(ois), np.concatenate(deltas), blocked
