"""The discover stage: catalog in, candidate (mix, version) pairs out.

Dask graph, one task per catalog partition and step:

    read (client, multi-threaded Arrow)                 -> partitions of validated rows
    detect[i]   = split_partition(partition i)          -> versions of i (small) + originals mask
    versions    = concat_versions(detect[*])            -> every version (~1% of the catalog)
    side        = version_side(versions)                 -> sorted arrays, broadcast to every task
    pairs[i]    = block_window_score(partition i, side) -> scored pairs above min_score
    best        = best_match(concat(pairs[*]))           (client; small)

Blocking joins the small version side against each partition's originals on artist key x duration
bucket (the version's bucket and its two neighbours, bucket width = max_delta), so there is no shuffle
and a block costs (versions in it) x (originals in three buckets), never (block size)^2.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import storage as pio
from .catalog import Catalog, read_partitions
from ..config import StageConfig
from ..errors import AudioError, ConfigError
from ..runinfo import Timings, versions
from .text import DEFAULT_KEYWORDS, VersionDetector, artist_key, match_key
from .config import DiscoverConfig, SCORERS, OPTIONAL

log = logging.getLogger(__name__)


@dataclass
class DiscoverResult:
    out_dir: str
    candidates_path: str
    rejects_path: str
    report_path: str
    counts: dict[str, Any]
    hours: dict[str, float]
    timings_s: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        c = self.counts
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(c["versions_by_kind"].items())) or "none"
        return (
            f"discover: {c['rows_read']:,} rows read, {c['rows_rejected']:,} rejected; "
            f"{c['originals']:,} originals, versions: {kinds}\n"
            f"  {c['blocked_pairs']:,} pairs blocked -> {c['within_window']:,} within the duration window -> "
            f"{c['above_score']:,} above the title score -> {c['kept']:,} candidates "
            f"({c['ambiguous']:,} ambiguous), {self.hours['kept_mix'] + self.hours['kept_version']:.2f} h of audio\n"
            f"  wrote {self.candidates_path}"
        )


# ----------------------------------------------------------------------------------------------
# Dask tasks (module-level functions so dask.distributed workers can import them)


def split_partition(part: pa.Table, detector: VersionDetector) -> dict[str, Any]:
    """Find the versions in one partition.

    Returns:
        {"versions": DataFrame of version rows with kind/match_title/artist_key,
         "is_version": bool ndarray (len(part),)}
    """
    titles = part.column("title")
    tokens = detector.prefilter_tokens()
    tokens = [t for t in tokens if not any(o != t and o in t for o in tokens)]  # substrings suffice
    pattern = "[^\\x00-\\x7f]|" + "|".join(re.escape(t) for t in tokens)
    mask = pc.match_substring_regex(titles, pattern, ignore_case=True)
    cand_idx = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    is_version = np.zeros(part.num_rows, dtype=bool)
    rows = []
    cand_titles = titles.take(pa.array(cand_idx, pa.int64())).to_pylist()
    for i, t in zip(cand_idx, cand_titles):
        m = detector.analyse(t)
        if m.kind:
            is_version[i] = True
            rows.append((int(i), m.kind, m.match_title))
    idx = np.array([r[0] for r in rows], dtype=np.int64)
    sub = part.take(pa.array(idx, pa.int64())).to_pandas(types_mapper=None)
    sub["kind"] = [r[1] for r in rows]
    sub["match_title"] = [r[2] for r in rows]
    ids = sub["artist_id"] if "artist_id" in sub else pd.Series([None] * len(sub))
    sub["artist_key"] = [artist_key(a, i or None) for a, i in zip(sub["artist"], ids)]
    return {"versions": sub, "is_version": is_version}


def concat_versions(detected: list[dict[str, Any]]) -> pd.DataFrame:
    frames = [d["versions"] for d in detected if len(d["versions"])]
    if not frames:
        return pd.DataFrame(columns=["row_number", "kind", "match_title", "artist_key", "duration_s"])
    return pd.concat(frames, ignore_index=True)


def version_side(versions: pd.DataFrame, cfg: DiscoverConfig) -> dict[str, np.ndarray]:
    """The versions as plain arrays for the join, built once and broadcast to every partition task.

    Sorted by block (artist code, duration bucket) so the binary searches walk memory in order.
    """
    v = versions[versions["match_title"].str.len() > 0] if len(versions) else versions
    vkeys = pd.unique(v["artist_key"].to_numpy(dtype=object)) if len(v) else np.array([], dtype=object)
    dur = v["duration_s"].to_numpy(dtype=np.float64) if len(v) else np.zeros(0)
    codes = pd.Index(vkeys).get_indexer(v["artist_key"].to_numpy(dtype=object)) if len(v) else np.zeros(0, int)
    block = (codes.astype(np.int64) << 32) + np.floor(dur / cfg.widest_delta).astype(np.int64)
    order = np.argsort(block, kind="stable")
    return {
        "vkeys": vkeys,
        "block": block[order],
        "dur": dur[order],
        "match": v["match_title"].to_numpy(dtype=object)[order] if len(v) else np.array([], dtype=object),
        "match_len": v["match_title"].str.len().to_numpy(dtype=np.int64)[order] if len(v) else np.zeros(0, np.int64),
        "row": v["row_number"].to_numpy(dtype=np.int64)[order] if len(v) else np.zeros(0, np.int64),
        "key": v["artist_key"].to_numpy(dtype=object)[order] if len(v) else np.array([], dtype=object),
        # per-version duration window (max_delta, or max_delta_acapella for acapellas)
        "window": (np.array([cfg.delta_for(k) for k in v["kind"].to_numpy(dtype=object)], np.float64)[order]
                   if len(v) else np.zeros(0)),
    }


# Titles/artists that are ASCII and carry no decoration or separator fold with Arrow kernels alone;
# the rest go through the Python normal form. Both paths give identical keys.
_TITLE_NEEDS_PY = r"[^\x00-\x7f]|[-~(\[{]|(?i)\b(?:feat|ft|featuring)\b"
# Artists: printable ASCII is handled entirely by Arrow (the credit split included).
_ARTIST_NEEDS_PY = r"[^\x20-\x7e]"
# text._ARTIST_SPLIT_RE with ".*$" after each alternative: removes everything from the first separator.
_ARTIST_SPLIT_TAIL = (r"(?i)\s+(?:feat\.?|ft\.?|featuring|with|x|vs\.?|versus)\s+.*$|\s*[&,;/+].*$"
                      r"|\s*\((?:feat|ft)\.?\s.*$")


def _fold_ascii(col: pa.Array) -> pa.Array:
    low = pc.utf8_lower(col)
    return pc.utf8_trim(pc.replace_substring_regex(low, r"[^a-z0-9]+", " "), " ")


def _keys_hybrid(col: pa.Array, needs_py_pattern: str, py_fn, post=None) -> pa.Array:
    """Keys as an Arrow string array: Arrow kernels for simple strings, `py_fn` for the others.

    `py_fn` runs once per distinct string that needs it.
    """
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    needs_py = pc.match_substring_regex(col, needs_py_pattern).fill_null(False)
    keys = _fold_ascii(col)
    if post is not None:
        keys = post(keys)
    if pc.any(needs_py).as_py():
        sub = pc.dictionary_encode(col.filter(needs_py))
        uniq = np.array([py_fn(v) for v in sub.dictionary.to_pylist()], dtype=object)
        repl = pa.array(uniq[sub.indices.to_numpy(zero_copy_only=False)], pa.string())
        keys = pc.replace_with_mask(keys, needs_py, repl)
    return keys


def _artist_key_arrow(col: pa.Array) -> pa.Array:
    """text.artist_key for printable-ASCII credits, with Arrow kernels only."""
    primary = _fold_ascii(pc.replace_substring_regex(col, _ARTIST_SPLIT_TAIL, "", max_replacements=1))
    key = pc.replace_substring_regex(primary, r"^the ", "")
    empty = pc.equal(pc.utf8_length(key), 0)
    if pc.any(empty).as_py():  # artist_key falls back to the fold of the whole credit
        key = pc.replace_with_mask(key, empty, _fold_ascii(col.filter(empty)))
    return key


def _artist_key_values(col: pa.Array) -> pa.Array:
    """artist_key of each value: Arrow for printable ASCII, Python (text.artist_key) for the rest."""
    keys = _artist_key_arrow(col)
    needs_py = pc.match_substring_regex(col, _ARTIST_NEEDS_PY).fill_null(False)
    if pc.any(needs_py).as_py():
        py = [artist_key(v) for v in col.filter(needs_py).to_pylist()]
        keys = pc.replace_with_mask(keys, needs_py, pa.array(py, pa.string()))
    return keys


def _artist_codes(part: pa.Table, vkeys: np.ndarray) -> np.ndarray:
    """Per row, the index of its artist key in `vkeys`, or -1. Each distinct credit is keyed once."""
    enc = pc.dictionary_encode(part.column("artist").combine_chunks())
    dict_codes = pc.index_in(_artist_key_values(enc.dictionary), value_set=pa.array(vkeys, pa.string()))
    dict_codes = dict_codes.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    codes = dict_codes[enc.indices.to_numpy(zero_copy_only=False)]
    if "artist_id" in part.column_names:
        ids = pc.utf8_trim_whitespace(part.column("artist_id").combine_chunks())
        has_id = pc.and_(pc.is_valid(ids), pc.greater(pc.utf8_length(ids), 0)).fill_null(False)
        if pc.any(has_id).as_py():
            id_keys = pc.binary_join_element_wise("id:", ids, "")
            id_codes = pc.index_in(id_keys, value_set=pa.array(vkeys, pa.string())).fill_null(-1)
            codes = np.where(has_id.to_numpy(zero_copy_only=False),
                             id_codes.to_numpy(zero_copy_only=False).astype(np.int64), codes)
    return codes


def ratio_can_reach(len_a: np.ndarray, len_b: np.ndarray, min_score: float) -> np.ndarray:
    """False where two strings of these lengths cannot reach `min_score` with rapidfuzz's fuzz.ratio.

    ratio = 100 * (1 - indel / (la + lb)) and the indel distance is at least |la - lb|.
    """
    la, lb = np.asarray(len_a, dtype=np.float64), np.asarray(len_b, dtype=np.float64)
    return np.abs(la - lb) <= (1.0 - min_score / 100.0) * (la + lb) + 1e-9


def block_window_score(part: pa.Table, detected: dict[str, Any], vs: dict[str, np.ndarray],
                       cfg: DiscoverConfig) -> dict[str, Any]:
    """Join one partition's originals against all versions, apply the window and the title score.

    Returns:
        {"pairs": DataFrame (version_row, mix fields..., title_score, duration_delta_s),
         "originals": int, "blocked": int, "within": int, "above": int}
    """
    from rapidfuzz import fuzz, process

    is_orig = ~detected["is_version"]
    n_orig = int(is_orig.sum())
    empty = {"pairs": pd.DataFrame(), "originals": n_orig, "blocked": 0, "within": 0, "above": 0}
    if len(vs["block"]) == 0 or n_orig == 0:
        return empty
    o_codes = _artist_codes(part, vs["vkeys"])
    in_block = (o_codes >= 0) & is_orig
    if not in_block.any():
        return empty
    width = cfg.widest_delta
    # Blocks are (artist code, duration bucket) packed into one int64; sorted once, then every version
    # looks up its bucket and the two neighbours with binary search (|delta| < width spans at most those).
    sel = np.flatnonzero(in_block)
    sel_arr = pa.array(sel, pa.int64())
    o_dur = part.column("duration_s").take(sel_arr).to_numpy(zero_copy_only=False)
    o_block = (o_codes[sel] << 32) + \
        np.floor(o_dur / width).astype(np.int64)
    order = np.argsort(o_block, kind="stable")
    o_block_sorted = o_block[order]
    v_dur, v_block = vs["dur"], vs["block"]
    v_idx_parts, o_idx_parts = [], []
    for d in (-1, 0, 1):
        lo = np.searchsorted(o_block_sorted, v_block + d, side="left")
        hi = np.searchsorted(o_block_sorted, v_block + d, side="right")
        n = hi - lo
        if n.sum() == 0:
            continue
        vi = np.repeat(np.arange(len(v_block)), n)
        # positions lo[i] .. hi[i]-1 for each version i, flattened
        within_run = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        v_idx_parts.append(vi)
        o_idx_parts.append(order[np.repeat(lo, n) + within_run])
    if not v_idx_parts:
        return empty
    vi = np.concatenate(v_idx_parts)
    oi = np.concatenate(o_idx_parts)  # index into sel
    blocked = len(vi)
    delta = v_dur[vi] - o_dur[oi]
    keep = np.abs(delta) < (vs["window"][vi] if "window" in vs else width)
    vi, oi, delta = vi[keep], oi[keep], delta[keep]
    within = len(vi)
    if within == 0:
        return {**empty, "blocked": blocked}
    o_pos = sel[oi]
    uniq_pos, inverse = np.unique(o_pos, return_inverse=True)
    uniq_arrow = _keys_hybrid(part.column("title").take(pa.array(uniq_pos)), _TITLE_NEEDS_PY, match_key)
    if cfg.scorer == "ratio":
        # fuzz.ratio = 100 * (1 - indel / (la + lb)) and indel >= |la - lb|: pairs whose lengths differ
        # by more than (1 - min_score/100) * (la + lb) cannot reach min_score, so skip scoring them.
        lo = pc.utf8_length(uniq_arrow).to_numpy(zero_copy_only=False)[inverse]
        can = ratio_can_reach(vs["match_len"][vi], lo, cfg.min_score)
        vi, oi, delta, o_pos, inverse = vi[can], oi[can], delta[can], o_pos[can], inverse[can]
    uniq_keys = np.asarray(uniq_arrow.to_numpy(zero_copy_only=False), dtype=object)
    o_match = uniq_keys[inverse]
    v_match = vs["match"][vi]
    scorer = getattr(fuzz, cfg.scorer)
    score = process.cpdist(v_match, o_match, scorer=scorer, workers=1) if len(vi) else np.zeros(0)
    hit = score >= cfg.min_score
    above = int(hit.sum())
    cols = ["track_id", "artist", "title", "duration_s", "row_number"] + [c for c in OPTIONAL if c in part.column_names]
    mix = part.select(cols).take(pa.array(o_pos[hit], pa.int64())).to_pandas()
    mix.columns = ["mix_" + c for c in mix.columns]
    pairs = pd.DataFrame({
        "version_row": vs["row"][vi[hit]],
        "o_match": o_match[hit],
        "title_score": score[hit].astype(np.float64),
        "duration_delta_s": delta[hit],
        "artist_key": vs["key"][vi[hit]],
    })
    pairs = pd.concat([pairs, mix.reset_index(drop=True)], axis=1)
    return {"pairs": pairs, "originals": n_orig, "blocked": blocked, "within": within, "above": above}


def best_match(pairs: pd.DataFrame, versions: pd.DataFrame, cfg: DiscoverConfig) -> pd.DataFrame:
    """Each version keeps its best original: highest score, then smallest |delta|, then lowest mix id."""
    if pairs.empty:
        return pairs
    p = pairs.assign(abs_delta=pairs["duration_delta_s"].abs())
    p = p.sort_values(["version_row", "title_score", "abs_delta", "mix_track_id"],
                      ascending=[True, False, True, True], kind="mergesort")
    best_score = p.groupby("version_row", sort=False)["title_score"].transform("max")
    near = (p["title_score"] >= best_score - cfg.ambiguity_margin).groupby(p["version_row"]).transform("sum")
    p["n_near_best"] = near.astype(np.int32)
    best = p.drop_duplicates("version_row", keep="first")
    vcols = ["row_number", "track_id", "artist", "title", "duration_s", "kind", "match_title"] + [
        c for c in OPTIONAL if c in versions.columns]
    v = versions[vcols].add_prefix("v_")
    return best.merge(v, left_on="version_row", right_on="v_row_number", how="left")


# ----------------------------------------------------------------------------------------------


def _resolve(paths: pd.Series, base_dir: str, audio_root: str | None) -> tuple[list, int]:
    from ..audio import resolve_audio_path

    out, refused = [], 0
    for p in paths.tolist():
        if p is None or (isinstance(p, float) and math.isnan(p)) or not str(p).strip():
            out.append(None)
            continue
        try:
            out.append(resolve_audio_path(str(p).strip(), base_dir=base_dir, audio_root=audio_root))
        except AudioError as exc:
            log.warning("%s", exc)
            refused += 1
            out.append(None)
    return out, refused


def _candidates_frame(best: pd.DataFrame, cat: Catalog, cfg: DiscoverConfig) -> tuple[pd.DataFrame, int]:
    def col(name: str) -> pd.Series:
        return best[name] if name in best.columns else pd.Series([None] * len(best), index=best.index)

    genre = col("mix_genre").where(col("mix_genre").notna() & (col("mix_genre").astype(str).str.strip() != ""),
                                   col("v_genre"))
    mix_audio, r1 = _resolve(col("mix_audio_path"), cat.base_dir, cfg.audio_root)
    ver_audio, r2 = _resolve(col("v_audio_path"), cat.base_dir, cfg.audio_root)
    df = pd.DataFrame({
        "pair_id": best["mix_track_id"].astype(str) + "__" + best["v_track_id"].astype(str),
        "mix_track_id": best["mix_track_id"].astype(str),
        "version_track_id": best["v_track_id"].astype(str),
        "version_kind": best["v_kind"],
        "artist": best["mix_artist"],
        "artist_key": best["artist_key"],
        "mix_title": best["mix_title"],
        "version_title": best["v_title"],
        "mix_match_title": best["o_match"],
        "version_match_title": best["v_match_title"],
        "genre": genre.where(genre.notna(), None),
        "mix_duration_s": best["mix_duration_s"].astype(float),
        "version_duration_s": best["v_duration_s"].astype(float),
        "duration_delta_s": best["duration_delta_s"].astype(float),
        "title_score": best["title_score"].astype(float).round(4),
        "n_near_best": best["n_near_best"].astype(np.int32),
        "mix_audio_path": mix_audio,
        "version_audio_path": ver_audio,
        "mix_row": best["mix_row_number"].astype(np.int64),
        "version_row": best["version_row"].astype(np.int64),
    })
    df = df.sort_values(["version_track_id", "mix_track_id"], kind="mergesort").reset_index(drop=True)
    return df, r1 + r2


def run_discover(catalog: str | Path, out_dir: str | Path, config: DiscoverConfig | None = None, *,
                 scheduler: str = "threads", progress: bool = True) -> DiscoverResult:
    """Find candidate (mix, version) pairs in a catalog.

    Args:
        catalog: CSV or Parquet catalog, local path or fsspec URL.
        out_dir: output folder; receives candidates.parquet, rejects.parquet, discover-report.json.
        config: stage options (defaults if None).
        scheduler: threads | processes | synchronous | tcp://host:port.
        progress: show a progress bar while the Dask graph runs.

    Returns:
        DiscoverResult with output paths, funnel counts and hours.
    """
    import dask

    from ..parallel import dask_runner

    cfg = config or DiscoverConfig()
    out_dir = str(out_dir)
    pio.ensure_dir(out_dir)
    pio.remove_stale_temps(out_dir)
    timings = Timings()
    detector = cfg.detector()
    with dask_runner(scheduler, progress=progress) as runner:
        with timings.step("read"):
            reading = read_partitions(catalog, runner, columns=cfg.columns, duration_unit=cfg.duration_unit,
                                      partition_rows=cfg.partition_rows)
        cat = reading.catalog
        n = cat.rows_used
        parts = reading.parts
        with timings.step("match"):
            split = dask.delayed(split_partition, pure=True)
            score = dask.delayed(block_window_score, pure=True)
            det = [split(p, detector, dask_key_name=f"split-{i}") for i, p in enumerate(parts)]
            versions_d = dask.delayed(concat_versions, pure=True)(det, dask_key_name="versions")
            side_d = dask.delayed(version_side, pure=True)(versions_d, cfg, dask_key_name="version-side")
            # read again on the workers once the side is known (never held across the barrier)
            parts_again = reading.after(side_d)
            scored = [score(p, d, side_d, cfg, dask_key_name=f"score-{i}")
                      for i, (p, d) in enumerate(zip(parts_again, det))]
            versions_df, results = runner.compute(versions_d, scored, label="discover")
    with timings.step("best_match"):
        frames = [r["pairs"] for r in results if len(r["pairs"])]
        pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        best = best_match(pairs, versions_df, cfg)
        cands, refused = (_candidates_frame(best, cat, cfg) if len(best) else (None, 0))
        if cands is None:
            from ..schemas import table_schema

            cands = table_schema("candidates").arrow_schema().empty_table().to_pandas()
    by_kind = versions_df["kind"].value_counts().sort_index().to_dict() if len(versions_df) else {}
    counts = {
        "rows_read": cat.rows_read,
        "rows_rejected": cat.rejects.num_rows,
        "rows_used": n,
        "rejected_by_reason": dict(sorted(pd.Series(cat.rejects.column("reason_code").to_pylist(), dtype=object)
                                          .value_counts().to_dict().items())),
        "originals": sum(r["originals"] for r in results),
        "versions": int(len(versions_df)),
        "versions_by_kind": {str(k): int(v) for k, v in by_kind.items()},
        "versions_without_title": int((versions_df["match_title"].str.len() == 0).sum()) if len(versions_df) else 0,
        "blocked_pairs": sum(r["blocked"] for r in results),
        "within_window": sum(r["within"] for r in results),
        "above_score": sum(r["above"] for r in results),
        "kept": int(len(cands)),
        "ambiguous": int((cands["n_near_best"] > 1).sum()) if len(cands) else 0,
        "audio_paths_refused": refused,
    }
    assert counts["rows_read"] == counts["rows_used"] + counts["rows_rejected"]
    hours = {
        "catalog": round(cat.duration_s_total / 3600, 4),
        "kept_mix": round(float(cands["mix_duration_s"].sum()) / 3600, 4) if len(cands) else 0.0,
        "kept_version": round(float(cands["version_duration_s"].sum()) / 3600, 4) if len(cands) else 0.0,
    }
    cand_path = pio.join(out_dir, "candidates.parquet")
    rej_path = pio.join(out_dir, "rejects.parquet")
    rep_path = pio.join(out_dir, "discover-report.json")
    with timings.step("write"):
        pio.remove_file(rep_path)  # written last: present only when the tables beside it are complete
        pio.write_table(rej_path, cat.rejects, "rejects")
        pio.write_table(cand_path, cands, "candidates")
        result = DiscoverResult(out_dir, cand_path, rej_path, rep_path, counts, hours)
        result.timings_s = timings.to_dict()
        pio.write_json(rep_path, {
            "stage": "discover",
            "config": cfg.to_dict(),
            "versions": versions(),
            "input": {"path": str(catalog), "format": cat.fmt},
            "scheduler": scheduler,
            "counts": counts,
            "hours": hours,
            "timings_s": result.timings_s,
            "outputs": {"candidates": "candidates.parquet", "rejects": "rejects.parquet"},
        }, schema="discover-report")
    result.timings_s = timings.to_dict()
    return result
