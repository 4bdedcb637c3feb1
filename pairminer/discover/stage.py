"""The discover stage: catalog in, candidate (mix, version) pairs out.

(Over 500 lines: the graph's per-partition tasks — split, block/score, near-miss scan — share the sorted
block arrays and are kept beside the driver that wires them; splitting the near-miss scan out is the next step.)

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
from .text import (ARTIST_ASCII_SYMBOLS, DEFAULT_KEYWORDS, MAX_TITLE_CHARS, VersionDetector,  # noqa: F401
                   artist_key, match_key, original_parts)
from .config import DiscoverConfig, SCORERS, OPTIONAL
from .scoring import RapidfuzzScorer, TitleScorer, ratio_can_reach  # noqa: F401  (ratio_can_reach: public)

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
    return {"versions": sub, "is_version": is_version, "duration_counts": duration_counts(part)}


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


# Titles/artists that are ASCII and carry no decoration or separator fold with Arrow kernels alone;
# the rest go through the Python normal form. Both paths give identical keys.
_TITLE_NEEDS_PY = r"[^\x00-\x7f]|[-~(\[{<]|(?i)\b(?:feat|ft|featuring)\b"
# Artists: printable ASCII is handled entirely by Arrow (the credit split included).
_ARTIST_NEEDS_PY = r"[^\x20-\x7e]"
# text._ARTIST_SPLIT_RE with ".*$" after each alternative: removes everything from the first separator.
_ARTIST_SPLIT_TAIL = (r"(?i)\s+(?:feat\.?|ft\.?|featuring|with|x|vs\.?|versus)\s+.*$|\s*[&,;/+].*$"
                      r"|\s*\((?:feat|ft)\.?\s.*$")


def _fold_ascii(col: pa.Array, keep: str = "") -> pa.Array:
    low = pc.utf8_lower(col)
    return pc.utf8_trim(pc.replace_substring_regex(low, r"[^a-z0-9" + re.escape(keep) + r"]+", " "), " ")


def _raw_ascii(col: pa.Array) -> pa.Array:
    """text.raw_key for ASCII strings: lower-cased, control characters and whitespace runs to one space."""
    low = pc.utf8_lower(col)
    return pc.utf8_trim(pc.replace_substring_regex(low, r"[\x00-\x20\x7f]+", " "), " ")


def _or_raw(keys: pa.Array, col: pa.Array) -> pa.Array:
    empty = pc.equal(pc.utf8_length(keys), 0)
    if pc.any(empty).as_py():
        keys = pc.replace_with_mask(keys, empty, _raw_ascii(col.filter(empty)))
    return keys


# One trailing decoration on a plain printable-ASCII head: "Song - Remastered 2009", "Song (Live)",
# "Song [feat. X]". Neither part holds a decoration character ("-~()[]{}<>"), so `text._peel` splits
# exactly there and only once: the base is the Arrow fold of the head (no "feat" word in it) and the
# qualifier keys depend on the decoration alone, so they are modelled once per distinct decoration.
_PLAIN = "[" + "".join(re.escape(chr(c)) for c in range(0x20, 0x7f) if chr(c) not in "-~()[]{}<>") + "]"
_ONE_DECORATION = (rf"^(?P<head>{_PLAIN}*[A-Za-z0-9]{_PLAIN}*?)(?: +- +(?P<dash>{_PLAIN}*[^ \-~()\[\]{{}}<>])"
                   rf"| *[(\[{{<](?P<group>{_PLAIN}*)[)\]}}>])$")
_FEAT_WORD = r"(?i)\b(?:feat|ft|featuring)\b"


def _one_decoration_parts(col: pa.Array) -> tuple[np.ndarray, pa.Array, np.ndarray, np.ndarray]:
    """For the titles of `col` that hold one plain decoration (see `_ONE_DECORATION`): (mask, base as
    Arrow strings, recording keys, edit keys), identical to `text.original_parts` (a test checks this)."""
    m = pc.extract_regex(col, _ONE_DECORATION)
    ok = pc.is_valid(m)
    if len(col):
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(col), 100_000))  # text._MAX_RAW_CHARS
    head = pc.struct_field(m, "head")
    ok = pc.and_(ok, pc.invert(pc.match_substring_regex(head, _FEAT_WORD))).fill_null(False)
    ok_np = ok.to_numpy(zero_copy_only=False)
    if not ok_np.any():
        return ok_np, pa.array([], pa.string()), np.zeros(0, object), np.zeros(0, object)
    head, dash, group = (pc.struct_field(m, f).filter(ok) for f in ("head", "dash", "group"))
    base = pc.utf8_slice_codeunits(_fold_ascii(head), 0, MAX_TITLE_CHARS)
    is_dash = pc.greater(pc.utf8_length(dash), 0).fill_null(False)
    deco = pc.if_else(is_dash, pc.binary_join_element_wise("x - ", dash, ""),
                      pc.binary_join_element_wise("x (", group, ")", ""))
    enc = pc.dictionary_encode(deco)
    parts = [original_parts(d) for d in enc.dictionary.to_pylist()]
    ind = enc.indices.to_numpy(zero_copy_only=False)
    rec = np.array([p.recording_key for p in parts], dtype=object)[ind]
    edit = np.array([p.edit_key for p in parts], dtype=object)[ind]
    return ok_np, base, rec, edit


def _title_parts_hybrid(col: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(base as Arrow strings, recording keys, edit keys as object ndarrays) of original titles: Arrow
    kernels for plain ASCII titles (no decoration possible: base = fold, else the raw characters) and
    for one plain trailing decoration, `text.original_parts` once per distinct remaining title. All
    paths give identical keys (a test checks this). Each title is folded by one path only."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    needs_py = pc.match_substring_regex(col, _TITLE_NEEDS_PY).fill_null(False)
    rec = np.full(len(col), "", dtype=object)
    edit = np.full(len(col), "", dtype=object)
    if not pc.any(needs_py).as_py():
        return pc.utf8_slice_codeunits(_or_raw(_fold_ascii(col), col), 0, MAX_TITLE_CHARS), rec, edit  # ASCII: chars
    needs_np = needs_py.to_numpy(zero_copy_only=False)
    plain_at, at = np.flatnonzero(~needs_np), np.flatnonzero(needs_np)
    plain = col.take(pa.array(plain_at, pa.int64()))
    pieces, where = [pc.utf8_slice_codeunits(_or_raw(_fold_ascii(plain), plain), 0, MAX_TITLE_CHARS)], [plain_at]
    ok, fast_base, fast_rec, fast_edit = _one_decoration_parts(col.take(pa.array(at, pa.int64())))
    if ok.any():
        fast_at = at[ok]
        pieces.append(fast_base)
        where.append(fast_at)
        rec[fast_at] = fast_rec
        edit[fast_at] = fast_edit
        at = at[~ok]
    if len(at):
        sub = pc.dictionary_encode(col.take(pa.array(at, pa.int64())))
        parts = [original_parts(v) for v in sub.dictionary.to_pylist()]
        ind = sub.indices.to_numpy(zero_copy_only=False)
        pieces.append(pa.array(np.array([p.base for p in parts], dtype=object)[ind], pa.string()))
        where.append(at)
        rec[at] = np.array([p.recording_key for p in parts], dtype=object)[ind]
        edit[at] = np.array([p.edit_key for p in parts], dtype=object)[ind]
    # the pieces in path order, put back in the order of `col`
    order = np.empty(len(col), dtype=np.int64)
    order[np.concatenate(where)] = np.arange(len(col))
    base = pa.concat_arrays([x.cast(pa.string()) for x in pieces]).take(pa.array(order, pa.int64()))
    return base, rec, edit


def _keys_hybrid(col: pa.Array, needs_py_pattern: str, py_fn, post=None) -> pa.Array:
    """Base titles as an Arrow string array (kept for callers of the former API: `match_key` only)."""
    return _title_parts_hybrid(col)[0]


def _artist_key_arrow(col: pa.Array) -> pa.Array:
    """text.artist_key for printable-ASCII credits, with Arrow kernels only."""
    keep = ARTIST_ASCII_SYMBOLS
    primary = _fold_ascii(pc.replace_substring_regex(col, _ARTIST_SPLIT_TAIL, "", max_replacements=1), keep)
    key = pc.replace_substring_regex(primary, r"^the ", "")
    empty = pc.equal(pc.utf8_length(key), 0)
    if pc.any(empty).as_py():  # artist_key falls back to the whole credit, then to its raw characters
        whole = col.filter(empty)
        key = pc.replace_with_mask(key, empty, _or_raw(_fold_ascii(whole, keep), whole))
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
    index.update(parts_pos=uniq_pos, parts_base=uniq_base, parts_rec=rec_a, parts_len=uniq_len)
    score, rec_ok = ts.compare(vs["match"][vi], vs["rec"][vi], o_base, o_rec, vs["match_len"][vi], o_len)
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
    u_base, u_rec, u_len = _parts_reusing(part, uniq_pos, idx)
    o_base, o_rec = u_base[inverse], u_rec[inverse]
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
    rec_ok = us["rec"][vi] == o_rec
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
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base, recording key, base length) of the originals at sorted positions `uniq_pos`, reusing
    those the block pass already modelled."""
    known_pos = idx["parts_pos"]
    at = np.searchsorted(known_pos, uniq_pos)
    known = (at < len(known_pos)) & (known_pos[np.minimum(at, max(len(known_pos) - 1, 0))] == uniq_pos) \
        if len(known_pos) else np.zeros(len(uniq_pos), dtype=bool)
    base = np.empty(len(uniq_pos), dtype=object)
    rec = np.empty(len(uniq_pos), dtype=object)
    length = np.zeros(len(uniq_pos), dtype=np.int64)
    if known.any():
        base[known] = idx["parts_base"][at[known]]
        rec[known] = idx["parts_rec"][at[known]]
        length[known] = idx["parts_len"][at[known]]
    if (~known).any():
        b, r, _ = _title_parts_hybrid(part.column("title").take(pa.array(uniq_pos[~known])))
        base[~known] = np.asarray(b.to_numpy(zero_copy_only=False), dtype=object)
        rec[~known] = r
        length[~known] = pc.utf8_length(b).to_numpy(zero_copy_only=False)
    return base, rec, length


def _without_codes(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k not in ("codes", "index")}


NEAR_MISS_REASONS = ("delta_over_window", "score_below_min", "recording_qualifier_mismatch")


def near_misses_frame(versions: pd.DataFrame, matched_rows: set, found: list[pd.DataFrame], resolution_s: float,
                      cfg: DiscoverConfig) -> pd.DataFrame:
    """One row per version that found no pair: its best same-artist original and why it missed."""
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


def best_match(pairs: pd.DataFrame, versions: pd.DataFrame, cfg: DiscoverConfig) -> pd.DataFrame:
    """Each version keeps its best original: highest score, then the same edit qualifiers ("Radio Edit"
    with "Instrumental Radio Edit"), then smallest |delta|, then lowest mix id."""
    if pairs.empty:
        return pairs
    p = pairs.assign(abs_delta=pairs["duration_delta_s"].abs())
    p = p.sort_values(["version_row", "title_score", "edit_agrees", "abs_delta", "mix_track_id"],
                      ascending=[True, False, False, True, True], kind="mergesort")
    best_score = p.groupby("version_row", sort=False)["title_score"].transform("max")
    near = (p["title_score"] >= best_score - cfg.ambiguity_margin).groupby(p["version_row"]).transform("sum")
    p["n_near_best"] = near.astype(np.int32)
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


def _unmatched(vs: dict[str, Any], best: pd.DataFrame) -> dict[str, Any]:
    return unmatched_side(vs, set(best["version_row"].tolist()) if len(best) else set())


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
        misses = near_misses_frame(versions_df, matched, list(found), float(resolution_s), cfg)
    capped_rows = np.unique(np.concatenate([r["capped_versions"] for r in results])) if results else np.zeros(0)
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
