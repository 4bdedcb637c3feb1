"""The near-miss task of discover: for each version that found no pair, its best same-artist original
past the window and why it missed (`NEAR_MISS_REASONS`), reusing the block pass's sorted originals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .blocks import _ms, _range_pairs, _title_scorer, _window_ranges
from .config import DiscoverConfig
from .keys import _title_parts_hybrid
from .scoring import qualifiers_agree


def unmatched_side(vs: dict[str, Any], matched_rows: set) -> dict[str, Any]:
    keep = np.array([r not in matched_rows for r in vs["row"].tolist()], dtype=bool)
    return {k: (v[keep] if isinstance(v, np.ndarray) and k != "vkeys" else v) for k, v in vs.items()}


_NEAR_MISS_CAP = 64  # originals looked at per unmatched version and partition, the nearest in duration


def near_miss_scan(part: pa.Table, scored: dict[str, Any], us: dict[str, Any], cfg: DiscoverConfig) -> pd.DataFrame:
    """For each unmatched version, the best same-artist original up to `near_miss_range_s` past the window.

    Reuses the partition's originals sorted by (artist code, duration in ms) from `block_window_score`
    and looks each version's range up with binary search; at most `_NEAR_MISS_CAP` originals per
    version (the nearest in duration).
    """
    idx = scored.get("index")
    if len(us["row"]) == 0 or idx is None or len(idx["sel"]) == 0:
        return pd.DataFrame()
    ts = _title_scorer(cfg)
    sel, order, comp_sorted, o_dur = idx["sel"], idx["order"], idx["comp"], idx["dur"]
    lo, hi = _window_ranges(comp_sorted, us["code"], us["dur"], us["window"] + cfg.near_miss_range_s)
    mid = np.searchsorted(comp_sorted, (us["code"] << 28) | _ms(us["dur"]))
    lo = np.maximum(lo, mid - _NEAR_MISS_CAP // 2)
    hi = np.minimum(hi, lo + _NEAR_MISS_CAP)
    vi, opos = _range_pairs(lo, hi)
    if len(vi) == 0:
        return pd.DataFrame()
    oi = order[opos]
    o_pos = sel[oi]
    delta = us["dur"][vi] - o_dur[oi]
    inside = np.abs(delta) < us["window"][vi]
    uniq_pos, inverse = np.unique(o_pos, return_inverse=True)
    u_base, u_rec, u_len, u_edit = _parts_reusing(part, uniq_pos, idx)
    o_base, o_rec, o_edit = u_base[inverse], u_rec[inverse], u_edit[inverse]
    # Inside the window every pair is scored (a near miss reports its true score); outside it only
    # pairs that can reach min_score, with rapidfuzz's score_cutoff (NaN: below min_score, not scored).
    from rapidfuzz import fuzz, process

    fn = getattr(fuzz, cfg.scorer)
    v_base = us["match"][vi]
    score = np.full(len(vi), np.nan)
    if inside.any():
        score[inside] = process.cpdist(v_base[inside], o_base[inside], scorer=fn, workers=1)
    lv = us["match_len"][vi]
    lo_len = u_len[inverse]
    out = ~inside & ts.scorer.can_reach(lv, lo_len)
    if out.any():
        got = process.cpdist(v_base[out], o_base[out], scorer=fn, workers=1, score_cutoff=cfg.min_score)
        score[out] = np.where(got >= cfg.min_score, got, np.nan)
    rec_ok = (us["rec"][vi] == o_rec) & qualifiers_agree(np.nan_to_num(score, nan=-1.0), cfg.min_score, v_base,
                                                         o_base, us["edit"][vi], o_edit)
    good = np.nan_to_num(score, nan=-1.0) >= cfg.min_score
    # Rank: a title match with the right recording (the window missed it) first, then a title match
    # with other recording qualifiers, then the best score; ties by |delta|.
    rank = np.where(good & rec_ok, 0, np.where(good, 1, 2))
    o = np.lexsort((np.abs(delta), -np.nan_to_num(score, nan=-1.0), rank, vi))
    first = o[np.r_[True, vi[o][1:] != vi[o][:-1]]]
    t = part.select(["track_id", "title"]).take(pa.array(o_pos[first], pa.int64()))
    return pd.DataFrame({
        "version_row": us["row"][vi[first]], "mix_track_id": t.column("track_id").to_pylist(),
        "mix_title": t.column("title").to_pylist(), "delta_s": delta[first], "score": score[first],
        "rec_ok": rec_ok[first], "rank": rank[first],
    })


def _parts_reusing(part: pa.Table, uniq_pos: np.ndarray, idx: dict[str, Any]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(base, recording key, base length, edit key) of the originals at sorted positions `uniq_pos`, reusing
    those the block pass already modelled."""
    known_pos = idx["parts_pos"]
    at = np.searchsorted(known_pos, uniq_pos)
    known = (at < len(known_pos)) & (known_pos[np.minimum(at, max(len(known_pos) - 1, 0))] == uniq_pos) \
        if len(known_pos) else np.zeros(len(uniq_pos), dtype=bool)
    base = np.empty(len(uniq_pos), dtype=object)
    rec = np.empty(len(uniq_pos), dtype=object)
    edit = np.empty(len(uniq_pos), dtype=object)
    length = np.zeros(len(uniq_pos), dtype=np.int64)
    if known.any():
        base[known] = idx["parts_base"][at[known]]
        rec[known] = idx["parts_rec"][at[known]]
        edit[known] = idx["parts_edit"][at[known]]
        length[known] = idx["parts_len"][at[known]]
    if (~known).any():
        b, r, e = _title_parts_hybrid(part.column("title").take(pa.array(uniq_pos[~known])))
        base[~known] = np.asarray(b.to_numpy(zero_copy_only=False), dtype=object)
        rec[~known] = r
        edit[~known] = e
        length[~known] = pc.utf8_length(b).to_numpy(zero_copy_only=False)
    return base, rec, length, edit


NEAR_MISS_REASONS = ("delta_over_window", "score_below_min", "recording_qualifier_mismatch", "block_capped")


def near_misses_frame(versions: pd.DataFrame, matched_rows: set, found: list[pd.DataFrame], resolution_s: float,
                      cfg: DiscoverConfig, capped_rows: Any = ()) -> pd.DataFrame:
    """One row per version that found no pair: its best same-artist original and why it missed.

    A capped version (its window held more than `max_block_comparisons` originals, `capped_rows`) was
    compared only with the originals of exactly its base title, so the originals it was not compared
    with say nothing about its durations: its reason is `block_capped`, unless an original of its title
    inside the window names another recording (`recording_qualifier_mismatch`)."""
    v = versions[~versions["row_number"].isin(matched_rows)] if len(versions) else versions
    cols = ["version_track_id", "version_title", "version_kind", "artist", "version_duration_s", "mix_track_id",
            "mix_title", "delta_s", "over_window_s", "score", "reason", "version_row"]
    if not len(v):
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    frames = [f for f in found if len(f)]
    if frames:
        f = pd.concat(frames, ignore_index=True)
        f = f.assign(abs_delta=f["delta_s"].abs(), score_rank=f["score"].fillna(-1.0)).sort_values(
            ["version_row", "rank", "score_rank", "abs_delta", "mix_track_id"],
            ascending=[True, True, False, True, True],
            kind="mergesort").drop_duplicates("version_row")
    else:
        f = pd.DataFrame(columns=["version_row", "mix_track_id", "mix_title", "delta_s", "score", "rec_ok", "rank"])
    m = v[["row_number", "track_id", "title", "kind", "artist", "duration_s"]].merge(
        f, left_on="row_number", right_on="version_row", how="left")
    has = m["mix_track_id"].notna()
    good = has & (m["score"] >= cfg.min_score)
    rec_ok = m["rec_ok"].fillna(True).astype(bool)
    reason = np.where(good & ~rec_ok, "recording_qualifier_mismatch",
                      np.where(good | ~has, "delta_over_window", "score_below_min"))
    delta = m["delta_s"].astype(float)
    window_s = np.array([cfg.delta_for(k) for k in m["kind"].tolist()], dtype=np.float64) + float(resolution_s)
    capped = m["row_number"].isin(np.asarray(capped_rows)).to_numpy()
    if capped.any():
        inside = (delta.abs().to_numpy() < window_s)
        reason = np.where(capped & ~((reason == "recording_qualifier_mismatch") & inside), "block_capped", reason)
    over = np.where(has, np.maximum(delta.abs().to_numpy() - window_s, 0.0), np.nan)
    out = pd.DataFrame({
        "version_track_id": m["track_id"].astype(str), "version_title": m["title"], "version_kind": m["kind"],
        "artist": m["artist"], "version_duration_s": m["duration_s"].astype(float),
        "mix_track_id": m["mix_track_id"].where(has, None), "mix_title": m["mix_title"].where(has, None),
        "delta_s": delta.where(has, np.nan), "over_window_s": over,
        "score": m["score"].astype(float).round(4).where(has, np.nan), "reason": reason,
        "version_row": m["row_number"].astype(np.int64),
    })
    return out.sort_values("version_track_id", kind="mergesort").reset_index(drop=True)


def _unmatched(vs: dict[str, Any], best: pd.DataFrame) -> dict[str, Any]:
    return unmatched_side(vs, set(best["version_row"].tolist()) if len(best) else set())
