"""The discover stage: catalog in, candidate (mix, version) pairs out.

Dask graph, one task per catalog partition and step, computed in one call:

    detect[i]   = split_partition(partition i)           -> versions of i (small), originals mask, duration counts
    versions    = concat_versions(detect[*])             -> every version (~1% of the catalog)
    resolution  = resolve_resolution(detect[*])          -> 0 or 1 s (whole-second catalogs), or the override
    side        = version_side(versions, resolution)     -> sorted arrays, broadcast to every task
    scored[i]   = block_window_score(partition i, side)  -> matches (score >= min_score, recording qualifiers equal)
    best        = best_match(concat(scored[*]))          -> one original per version
    near[i]     = near_miss_scan(partition i, scored[i], side without the matched versions)

Blocking joins the small version side against each partition's originals on artist key x duration:
the originals are sorted by (artist code, duration in ms) and each version looks its window up by
binary search, so there is no shuffle and a block costs (versions in it) x (originals in its window),
never (block size)^2; a version whose window holds more than `max_block_comparisons` originals is
compared by exact base title only. Titles are compared through the scorer unit (`scoring.py`).

This module is the driver (the graph, the output frames); the block/score task is in `blocks.py`, the
near-miss scan in `near.py`, the Arrow artist/title keys in `keys.py`.
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
from ..errors import AudioError, CatalogError, ConfigError
from ..runinfo import Timings, versions
from .text import (ARTIST_ASCII_SYMBOLS, DEFAULT_KEYWORDS, MAX_TITLE_CHARS, VersionDetector,  # noqa: F401
                   artist_key, match_key, original_parts)
from .config import DiscoverConfig, SCORERS, OPTIONAL
from .scoring import RapidfuzzScorer, TitleScorer, ratio_can_reach  # noqa: F401  (ratio_can_reach: public)
# The per-partition tasks live beside this driver; their names stay importable from here (tests, callers).
from .keys import artist_row_keys
from .keys import (_ARTIST_NEEDS_PY, _ARTIST_SPLIT_TAIL, _FEAT_WORD, _ONE_DECORATION, _PLAIN,  # noqa: F401
                   _TITLE_NEEDS_PY, _artist_codes, _artist_key_arrow, _artist_key_values, _fold_ascii,
                   _keys_hybrid, _one_decoration_parts, _or_raw, _raw_ascii, _title_parts_hybrid)
from .blocks import (_CAPPED_KEEP, _MS_MAX, _capped_pairs, _group_by_key_then_duration, _ms,  # noqa: F401
                     _range_pairs, _title_scorer, _window_ranges, block_window_score)
from .near import (NEAR_MISS_REASONS, _NEAR_MISS_CAP, _parts_reusing, _unmatched,  # noqa: F401
                   near_miss_scan, near_misses_frame, unmatched_side)

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
    near_misses_path: str = ""

    def summary(self) -> str:
        c = self.counts
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(c["versions_by_kind"].items())) or "none"
        return (
            f"discover: {c['rows_read']:,} rows read, {c['rows_rejected']:,} rejected; "
            f"{c['originals']:,} originals, versions: {kinds}\n"
            f"  {c['blocked_pairs']:,} pairs blocked -> {c['within_window']:,} within the duration window -> "
            f"{c['above_score']:,} above the title score -> {c['kept']:,} candidates "
            f"({c['ambiguous']:,} ambiguous), {self.hours['kept_mix'] + self.hours['kept_version']:.2f} h of audio\n"
            f"  window |delta| < {c['window_s']:g} s"
            + (f" (durations are whole seconds: max_delta {c['window_s'] - c['duration_resolution_s']:g} s widened by "
               f"{c['duration_resolution_s']:g} s)" if c["duration_resolution_s"] else "")
            + f"; {c['near_misses']:,} versions unpaired (near_misses.parquet: "
            + ", ".join(f"{n:,} {r}" for r, n in c["near_misses_by_reason"].items()) + ")"
            + (f"; {c['capped_versions']:,} versions in oversized blocks compared by exact title only"
               if c["capped_versions"] else "") + "\n"
            f"  wrote {self.candidates_path}"
        )


# ----------------------------------------------------------------------------------------------
# Dask tasks (module-level functions so dask.distributed workers can import them)


def duration_counts(part: pa.Table) -> tuple[int, int]:
    """(rows whose duration is a whole number of seconds, rows) of one partition."""
    d = part.column("duration_s")
    if part.num_rows == 0:
        return 0, 0
    integral = pc.sum(pc.equal(pc.floor(d), d).cast(pa.int64())).as_py() or 0
    return int(integral), int(part.num_rows)


def detect_duration_resolution(counts: list[tuple[int, int]], *, share: float = 0.99, min_rows: int = 100) -> float:
    """The duration resolution of a catalog from per-block (integral rows, rows) counts.

    Returns 1.0 when at least `share` of the rows hold whole seconds (and there are `min_rows` or more:
    a handful of round numbers says nothing), else 0.0. Coarser resolutions are not guessed; give
    `--duration-resolution` for those.
    """
    integral = sum(c[0] for c in counts)
    total = sum(c[1] for c in counts)
    return 1.0 if total >= min_rows and integral >= share * total else 0.0


def split_partition(part: pa.Table, detector: VersionDetector) -> dict[str, Any]:
    """Find the versions in one partition.

    Returns:
        {"versions": DataFrame of version rows with kind/match_title/recording_key/edit_key/artist_key,
         "is_version": bool ndarray (len(part),), "duration_counts": (integral rows, rows)}
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
        m = detector.parse(t)
        if m.kind:
            is_version[i] = True
            rows.append((int(i), m.kind, m.base, m.recording_key, m.edit_key))
    idx = np.array([r[0] for r in rows], dtype=np.int64)
    sub = part.take(pa.array(idx, pa.int64())).to_pandas(types_mapper=None)
    for j, name in enumerate(("kind", "match_title", "recording_key", "edit_key"), start=1):
        sub[name] = [r[j] for r in rows]
    ids = sub["artist_id"] if "artist_id" in sub else pd.Series([None] * len(sub))
    sub["artist_key"] = [artist_key(a, i or None) for a, i in zip(sub["artist"], ids)]
    row_keys = artist_row_keys(part)
    return {"versions": sub, "is_version": is_version, "duration_counts": duration_counts(part),
            "artist_keys": row_keys, "artist_hist": big_artist_durations(part, row_keys, ~is_version)}


from .gate import (  # noqa: F401 - re-exported: they were defined here
    _HIST_MIN_ROWS, big_artist_durations, _artist_hist, blocked_pairs_estimate, check_blocked_pairs)

def resolve_resolution(detected: list[dict[str, Any]], cfg: DiscoverConfig) -> float:
    override = cfg.resolution_override()
    if override is not None:
        return override
    return detect_duration_resolution([d["duration_counts"] for d in detected])


def concat_versions(detected: list[dict[str, Any]]) -> pd.DataFrame:
    frames = [d["versions"] for d in detected if len(d["versions"])]
    if not frames:
        return pd.DataFrame(columns=["row_number", "track_id", "artist", "title", "kind", "match_title",
                                     "recording_key", "edit_key", "artist_key", "duration_s"])
    return pd.concat(frames, ignore_index=True)


def version_side(versions: pd.DataFrame, cfg: DiscoverConfig, resolution_s: float = 0.0) -> dict[str, Any]:
    """The versions as plain arrays for the join, built once and broadcast to every partition task.

    Sorted by block (artist code, duration bucket) so the binary searches walk memory in order. The
    window is `max_delta + resolution_s` (a rounded delta may hide up to one resolution step).
    """
    window = float(cfg.widest_delta) + float(resolution_s)
    v = versions[versions["match_title"].str.len() > 0] if len(versions) else versions
    vkeys = pd.unique(v["artist_key"].to_numpy(dtype=object)) if len(v) else np.array([], dtype=object)
    dur = v["duration_s"].to_numpy(dtype=np.float64) if len(v) else np.zeros(0)
    codes = pd.Index(vkeys).get_indexer(v["artist_key"].to_numpy(dtype=object)) if len(v) else np.zeros(0, int)
    block = (codes.astype(np.int64) << 32) + np.floor(dur / window).astype(np.int64)
    order = np.argsort(block, kind="stable")

    def arr(name: str, dtype: Any) -> np.ndarray:
        return v[name].to_numpy(dtype=dtype)[order] if len(v) else np.array([], dtype=dtype)

    return {
        "vkeys": vkeys,
        "code": codes.astype(np.int64)[order],
        "block": block[order],
        "dur": dur[order],
        "match": arr("match_title", object),
        "match_len": v["match_title"].str.len().to_numpy(dtype=np.int64)[order] if len(v) else np.zeros(0, np.int64),
        "rec": arr("recording_key", object),
        "edit": arr("edit_key", object),
        "row": arr("row_number", np.int64),
        "key": arr("artist_key", object),
        # per-version duration window: max_delta (max_delta_acapella for acapellas) + the resolution
        "window": (np.array([cfg.delta_for(k) for k in v["kind"].to_numpy(dtype=object)], np.float64)[order]
                   + float(resolution_s) if len(v) else np.zeros(0)),
        "widest": window,
        "resolution": float(resolution_s),
    }


def _without_codes(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k not in ("codes", "index")}


def _release(album: pd.Series | None, artist: pd.Series) -> pd.Series:
    """The release a row is on: its album where the catalog names one, else its raw artist credit (a
    soundtrack catalog puts the album title there)."""
    art = "artist:" + artist.astype(str)
    if album is None:
        return art
    alb = album.where(album.notna(), "").astype(str).str.strip()
    return ("album:" + alb).where(alb != "", art)


def best_match(pairs: pd.DataFrame, versions: pd.DataFrame, cfg: DiscoverConfig) -> pd.DataFrame:
    """Each version keeps its best original. Among the originals within `ambiguity_margin` of its best
    score: the one on the version's own release (same album, or the same raw artist credit when the
    catalog has no album), then the highest score, then the same edit qualifiers ("Radio Edit" with
    "Instrumental Radio Edit"), then a full-length mix over a TV/game/movie-size one, then the smallest
    |delta|, then the lowest mix id."""
    if pairs.empty:
        return pairs
    p = pairs.assign(abs_delta=pairs["duration_delta_s"].abs())
    best_score = p.groupby("version_row", sort=False)["title_score"].transform("max")
    p["near_best"] = p["title_score"] >= best_score - cfg.ambiguity_margin
    vrel = pd.Series(_release(versions["album"] if "album" in versions.columns else None, versions["artist"]).to_numpy(),
                     index=versions["row_number"].to_numpy())
    mrel = _release(p["mix_album"] if "mix_album" in p.columns else None, p["mix_artist"])
    p["same_release"] = mrel.to_numpy() == vrel.reindex(p["version_row"].to_numpy()).to_numpy()
    if "mix_full_length" not in p.columns:
        p["mix_full_length"] = True
    p = p.sort_values(["version_row", "near_best", "same_release", "title_score", "edit_agrees", "mix_full_length",
                       "abs_delta", "mix_track_id"],
                      ascending=[True, False, False, False, False, False, True, True], kind="mergesort")
    p["n_near_best"] = p.groupby("version_row", sort=False)["near_best"].transform("sum").astype(np.int32)
    best = p.drop_duplicates("version_row", keep="first")
    vcols = ["row_number", "track_id", "artist", "title", "duration_s", "kind", "match_title", "recording_key"] + [
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


def _escape_id(ids: pd.Series) -> pd.Series:
    return ids.str.replace("%", "%25", regex=False).str.replace("_", "%5F", regex=False)


def make_pair_ids(mix_ids: pd.Series, version_ids: pd.Series) -> pd.Series:
    """'<mix>__<version>' with "%" and "_" percent-escaped inside each id, so no two pairs share an id
    (unescaped, ("a__b", "c") and ("a", "b__c") would both read "a__b__c"). Ids without "_" or "%" read
    as they are."""
    return _escape_id(mix_ids.astype(str)) + "__" + _escape_id(version_ids.astype(str))


def _candidates_frame(best: pd.DataFrame, cat: Catalog, cfg: DiscoverConfig) -> tuple[pd.DataFrame, int]:
    def col(name: str) -> pd.Series:
        return best[name] if name in best.columns else pd.Series([None] * len(best), index=best.index)

    genre = col("mix_genre").where(col("mix_genre").notna() & (col("mix_genre").astype(str).str.strip() != ""),
                                   col("v_genre"))
    mix_audio, r1 = _resolve(col("mix_audio_path"), cat.base_dir, cfg.audio_root)
    ver_audio, r2 = _resolve(col("v_audio_path"), cat.base_dir, cfg.audio_root)
    df = pd.DataFrame({
        "pair_id": make_pair_ids(best["mix_track_id"].astype(str), best["v_track_id"].astype(str)),
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


def _concat_pairs(results: list[dict[str, Any]]) -> pd.DataFrame:
    frames = [r["pairs"] for r in results if len(r["pairs"])]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


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
            delayed = dask.delayed
            det = [delayed(split_partition, pure=True)(p, detector, dask_key_name=f"split-{i}")
                   for i, p in enumerate(parts)]
            versions_d = delayed(concat_versions, pure=True)(det, dask_key_name="versions")
            res_d = delayed(resolve_resolution, pure=True)(det, cfg, dask_key_name="duration-resolution")
            side_d = delayed(version_side, pure=True)(versions_d, cfg, res_d, dask_key_name="version-side")
            # the total cap on blocked pairs, counted from the large artists' durations before any pair is built
            hists = [delayed(_artist_hist, pure=True)(d, dask_key_name=f"artist-hist-{i}") for i, d in enumerate(det)]
            side_d = delayed(check_blocked_pairs, pure=True)(side_d, hists, cfg, dask_key_name="blocked-pairs-cap")
            # read again on the workers once the side is known (never held across the barrier)
            parts_again = reading.after(side_d)
            scored = [delayed(block_window_score, pure=True)(p, d, side_d, cfg, dask_key_name=f"score-{i}")
                      for i, (p, d) in enumerate(zip(parts_again, det))]
            light = [delayed(_without_codes, pure=True)(r, dask_key_name=f"scored-{i}")
                     for i, r in enumerate(scored)]
            pairs_d = delayed(_concat_pairs, pure=True)(light, dask_key_name="pairs")
            best_d = delayed(best_match, pure=True)(pairs_d, versions_d, cfg, dask_key_name="best")
            us_d = delayed(_unmatched, pure=True)(side_d, best_d, dask_key_name="unmatched-side")
            # a third read, gated on the unmatched side, so that no partition is held across `best`
            parts_late = reading.after(us_d, name="part-late")
            near = [delayed(near_miss_scan, pure=True)(p, r, us_d, cfg, dask_key_name=f"near-{i}")
                    for i, (p, r) in enumerate(zip(parts_late, scored))]
            versions_df, resolution_s, results, best, found = runner.compute(
                versions_d, res_d, light, best_d, near, label="discover")
    with timings.step("best_match"):
        window_s = float(cfg.max_delta) + float(resolution_s)
        cands, refused = (_candidates_frame(best, cat, cfg) if len(best) else (None, 0))
        if cands is None:
            from ..schemas import table_schema

            cands = table_schema("candidates").arrow_schema().empty_table().to_pandas()
        matched = set(best["version_row"].tolist()) if len(best) else set()
        capped_rows = np.unique(np.concatenate([r["capped_versions"] for r in results])) if results else np.zeros(0)
        misses = near_misses_frame(versions_df, matched, list(found), float(resolution_s), cfg, capped_rows=capped_rows)
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
        "near_misses": int(len(misses)),
        "near_misses_by_reason": {r: int((misses["reason"] == r).sum()) for r in NEAR_MISS_REASONS},
        "capped_versions": int(len(capped_rows)),
        "duration_resolution_s": float(resolution_s),
        "window_s": window_s,
        "audio_paths_refused": refused,
    }
    assert counts["rows_read"] == counts["rows_used"] + counts["rows_rejected"]
    hours = {
        "catalog": round(cat.duration_s_total / 3600, 4),
        "kept_mix": round(float(cands["mix_duration_s"].sum()) / 3600, 4) if len(cands) else 0.0,
        "kept_version": round(float(cands["version_duration_s"].sum()) / 3600, 4) if len(cands) else 0.0,
    }
    cand_path = pio.join(out_dir, "candidates.parquet")
    nm_path = pio.join(out_dir, "near_misses.parquet")
    rej_path = pio.join(out_dir, "rejects.parquet")
    rep_path = pio.join(out_dir, "discover-report.json")
    with timings.step("write"):
        pio.remove_file(rep_path)  # written last: present only when the tables beside it are complete
        pio.write_table(rej_path, cat.rejects, "rejects")
        pio.write_table(cand_path, cands, "candidates")
        pio.write_table(nm_path, misses, "near_misses")
        result = DiscoverResult(out_dir, cand_path, rej_path, rep_path, counts, hours, near_misses_path=nm_path)
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
            "outputs": {"candidates": "candidates.parquet", "rejects": "rejects.parquet",
                        "near_misses": "near_misses.parquet"},
        }, schema="discover-report")
    result.timings_s = timings.to_dict()
    return result
