"""The verify stage: Chromaprint each candidate's audio once, align each pair, classify it.

(Over 500 lines: the fingerprint cache, the pure per-pair tasks and the stage driver belong together.)

    candidates.parquet -> verified.parquet, verify-report.json, similarity.png (+ fingerprint cache)

Per batch of `batch_pairs` candidates (memory stays bounded for any number of pairs):

1. resolve the two audio paths of each pair (`--audio-root` rebases relative paths);
2. look every file up in the fingerprint cache (keyed by path, size, mtime and `max_seconds`);
   the others are decoded and fingerprinted as Dask tasks (each file once per run) and appended
   to the cache as one atomically written Parquet part;
3. compare the pairs (Dask tasks over chunks of pairs): best item offset within
   |duration delta| + `offset_margin_s`, BER there, sub-item offset, overlap, residual share;
4. classify (`classify_pair`): error (a file failed; `reason` names it and why) | too_different
   (overlap too short, absolutely or relative to the shorter track; BER above `max_ber`; or, in the
   ambiguous BER zone, no sharp GCC-PHAT envelope peak) | too_similar (low BER and no excess: the
   "version" is the mix itself) | verified.

The default thresholds come from the realistic generated cases of `pairminer.synth_cases`,
calibrated on one seed and reported on a held-out one (see docs/verify.md for the distributions).
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..audio import resolve_audio_path
from ..errors import AudioError, ConfigError
from .fingerprint import ITEM_S, Fingerprint, compare, envelope_peak_ratio, fingerprint_file, residual_stats
from ..storage import (TableWriter, ensure_dir, is_url, join, open_parquet, remove_file, remove_stale_temps,
                       write_json, write_table)
from ..parallel import dask_runner, opaque_task
from ..runinfo import Timings, versions
from .config import VerifyConfig

log = logging.getLogger(__name__)

# Part of every cache key: bump it when the stored fingerprint or band format changes.
CACHE_FORMAT = "chromaprint2-bands16db-hop455-v2"
STATUSES = ("verified", "too_similar", "too_different", "error")
RESULT_COLUMNS = ("status", "ber", "offset_s", "overlap_s", "overlap_share", "residual_share", "excess_share",
                  "version_gain_db", "second_ber", "align_peak_ratio", "search_radius_s", "reason")
_FLOAT_RESULTS = ("ber", "offset_s", "overlap_s", "overlap_share", "residual_share", "excess_share",
                  "version_gain_db", "second_ber", "align_peak_ratio", "search_radius_s")
# Error categories for the report, matched against AudioError messages (first match wins).
_ERROR_CATEGORIES = (
    ("no audio path", r"no audio_path"),
    ("path refused", r"escapes --audio-root|refused"),
    ("too long", r"over the length cap"),
    ("timeout", r"longer than .* and was stopped"),
    ("file not found", r"file not found|cannot fetch|does not exist"),
    ("zero-byte file", r"zero-byte"),
    ("truncated", r"truncated"),
    ("silent", r"silent"),
    ("too short", r"too short|no audio frames"),
    ("unreadable", r"unreadable|not a decodable|cannot decode|NaN|folder"),
)


@dataclass(frozen=True)
class VerifyResult:
    """Paths and counts of a verify run. `n_decoded` + `n_cached` + `n_file_errors` = `n_files`."""

    verified_path: str
    report_path: str
    plot_path: str | None
    cache_dir: str | None
    n_candidates: int
    n_verified: int
    n_too_similar: int
    n_too_different: int
    n_error: int
    n_files: int
    n_decoded: int
    n_cached: int
    n_file_errors: int

    def summary(self) -> str:
        return (f"verify: {self.n_candidates} candidates -> {self.n_verified} verified, {self.n_too_similar} too "
                f"similar, {self.n_too_different} too different, {self.n_error} errors "
                f"({self.n_decoded} files decoded, {self.n_cached} from cache)\n  wrote {self.verified_path}")


# ----------------------------------------------------------------------------- fingerprint cache

_EDGE_BYTES = 1 << 20


def content_digest(path: str, size: int) -> str:
    """Cheap content check of a local file: blake2b of its first and last MiB plus its size.

    Catches a same-size file replaced with its mtime kept (``cp -p``, ``rsync -a``, ``tar -x``)
    at the cost of reading at most 2 MiB.
    """
    h = hashlib.blake2b(str(size).encode("ascii"), digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(_EDGE_BYTES))
        if size > _EDGE_BYTES:
            f.seek(max(_EDGE_BYTES, size - _EDGE_BYTES))
            h.update(f.read(_EDGE_BYTES))
    return h.hexdigest()


def file_key(path: str, max_seconds: float | None) -> tuple[str, int, int]:
    """(cache key, size in bytes, mtime in ns) of a file; raises AudioError if it is missing.

    The key covers the path, size, mtime, `max_seconds` and, for local files, a digest of the first
    and last MiB (`content_digest`), so replaced content is fingerprinted again.
    """
    digest = ""
    try:
        if is_url(path):
            import fsspec

            fs, p = fsspec.core.url_to_fs(path)
            info = fs.info(p)
            size = int(info.get("size") or 0)
            mt = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("ETag") or ""
            mtime_ns = int(pd.Timestamp(mt).value) if not isinstance(mt, (int, float)) and mt else int(float(mt or 0) * 1e9)
        else:
            st = os.stat(path)
            size, mtime_ns = int(st.st_size), int(st.st_mtime_ns)
            if os.path.isfile(path):
                digest = content_digest(path, size)
    except FileNotFoundError as exc:
        raise AudioError(f"{path}: file not found") from exc
    except ImportError as exc:
        raise AudioError(f"{path}: cannot fetch, no fsspec backend for {path.split('://')[0]}:// is installed "
                         f"({exc}); install it, or give local paths") from exc
    except (OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot stat ({exc})") from exc
    raw = f"{CACHE_FORMAT}\0{path}\0{size}\0{mtime_ns}\0{max_seconds}\0{digest}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest(), size, mtime_ns


class FingerprintCache:
    """A folder of Parquet parts (schema `fingerprints`), each written atomically; appends never rewrite.

    A killed run leaves at most a temporary file (ignored, since it is not named ``part-*.parquet``).
    Duplicate keys across parts are harmless (the first is used). `compact()` merges parts.
    """

    def __init__(self, folder: str):
        self.folder = str(folder)
        ensure_dir(self.folder)
        remove_stale_temps(self.folder)  # a killed run's half-written part

    def parts(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.folder, "part-*.parquet")))

    def lookup(self, keys: Iterable[str]) -> dict[str, Fingerprint]:
        keys = sorted(set(keys))
        found: dict[str, Fingerprint] = {}
        if not keys:
            return found
        for part in self.parts():
            try:
                t = pq.read_table(part, filters=[("key", "in", keys)])
            except (pa.ArrowInvalid, OSError) as exc:
                log.warning("ignoring unreadable fingerprint cache part %s (%s)", part, exc)
                continue
            for rec in t.to_pylist():
                if rec["key"] not in found:
                    found[rec["key"]] = Fingerprint.decode(rec)
        return found

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        write_table(os.path.join(self.folder, name), pd.DataFrame(records), "fingerprints")

    def compact(self, max_parts: int = 32) -> None:
        """Merge the parts into one when there are more than `max_parts` (new part first, then deletes)."""
        parts = self.parts()
        if len(parts) <= max_parts:
            return
        table = pa.concat_tables([pq.read_table(p) for p in parts])
        df = table.to_pandas().drop_duplicates("key", keep="first")
        self.append(df.to_dict("records"))
        for p in parts:
            os.unlink(p)


# ----------------------------------------------------------------------------- tasks (pure)

def fingerprint_task(path: str, max_seconds: float | None, min_seconds: float,
                     max_duration_s: float | None = None) -> dict:
    """Decode and fingerprint one file. Returns {"ok", "fp" or "error", "decode_s"}; never raises on bad audio."""
    t = time.perf_counter()
    try:
        fp = fingerprint_file(path, max_seconds=max_seconds, min_seconds=min_seconds, max_duration_s=max_duration_s)
        return {"ok": True, "fp": fp, "decode_s": time.perf_counter() - t}
    except AudioError as exc:
        return {"ok": False, "error": str(exc), "decode_s": time.perf_counter() - t}
    except (OSError, ValueError, RuntimeError, ImportError, MemoryError) as exc:  # still this file's problem only
        log.debug("fingerprint %s failed", path, exc_info=True)
        return {"ok": False, "error": f"{path}: cannot decode ({type(exc).__name__}: {exc})",
                "decode_s": time.perf_counter() - t}


def fingerprint_chunk_task(paths: list[str], max_seconds: float | None, min_seconds: float,
                           max_duration_s: float | None = None) -> list[dict]:
    """`fingerprint_task` over a chunk of files (one Dask task)."""
    return [fingerprint_task(p, max_seconds, min_seconds, max_duration_s) for p in paths]


# Most items one task takes, and how many tasks per worker core a batch should leave at least.
MAX_ITEMS_PER_TASK = 32
TASKS_PER_CORE = 4


def task_chunk_size(n_items: int, cores: int | None = None) -> int:
    """Items per task for `n_items`: 1 while there are few, up to MAX_ITEMS_PER_TASK for many.

    Keeps at least TASKS_PER_CORE tasks per core (load balance), and the graph of a batch at most
    about n_items / MAX_ITEMS_PER_TASK tasks (client overhead).
    """
    cores = cores or os.cpu_count() or 1
    return int(max(1, min(MAX_ITEMS_PER_TASK, n_items // (TASKS_PER_CORE * cores))))


def classify(ber: float, overlap_s: float, config: VerifyConfig) -> tuple[str, str | None]:
    """The seed's BER-only rule, kept for comparison (benchmarks/calibrate_verify.py --seed-rule).

    The stage decides with `classify_pair`, which also uses the overlap share, the excess share and the
    alignment peak ratio.
    """
    if not np.isfinite(ber) or overlap_s < config.min_overlap_s:
        return "too_different", (f"overlap {overlap_s:.1f} s at the best offset is below min_overlap_s "
                                 f"{config.min_overlap_s:g} s")
    if ber > config.max_ber:
        return "too_different", f"BER {ber:.3f} above max_ber {config.max_ber:g}: not the same recording"
    if ber < config.min_ber:
        return "too_similar", (f"BER {ber:.3f} below min_ber {config.min_ber:g}: the version is the mix's own "
                               "master (metadata confusion)")
    return "verified", None


def search_radius_s(delta_s: float, config: VerifyConfig) -> tuple[float, bool]:
    """Offset search radius for a pair: |duration delta| + margin, capped at `max_offset_s`.

    Returns:
        (radius in seconds, True when the cap cut it).
    """
    want = abs(float(delta_s)) + config.offset_margin_s
    return (min(want, config.max_offset_s), want > config.max_offset_s)


def classify_pair(rec: dict, config: VerifyConfig, kind: str = "instrumental") -> tuple[str, str | None]:
    """Status and reason of a compared pair (both files decoded fine). The rule (docs/verify.md):

    1. too_different: the overlap at the best offset is under `min_overlap_s`, or under
       `min_overlap_share` of the shorter track;
    2. too_different: BER above `max_ber` (`max_ber_acapella` for acapellas: a voice alone shares fewer
       fingerprint bits with its mix than a band does), or, in the ambiguous zone of BER above
       `peak_check_ber`, a GCC-PHAT envelope peak ratio under `min_peak_ratio`
       (`min_peak_ratio_acapella`): no sharp alignment, not the same recording;
    3. too_similar: BER under `min_ber` and an excess share under `max_copy_excess_share`: nothing of
       the mix is missing from the version, it is the mix itself (another master or encode);
    4. verified.
    """
    ber, overlap_s = rec["ber"], rec["overlap_s"]
    acapella = kind == "acapella"
    if not np.isfinite(ber) or overlap_s < config.min_overlap_s:
        return "too_different", (f"overlap {overlap_s:.1f} s at the best offset is below min_overlap_s "
                                 f"{config.min_overlap_s:g} s")
    if rec["overlap_share"] < config.min_overlap_share:
        return "too_different", (f"overlap {overlap_s:.1f} s is {rec['overlap_share']:.0%} of the shorter track, "
                                 f"below min_overlap_share {config.min_overlap_share:g}")
    max_ber, ber_name = ((config.max_ber_acapella, "max_ber_acapella") if acapella else (config.max_ber, "max_ber"))
    if ber > max_ber:
        return "too_different", f"BER {ber:.3f} above {ber_name} {max_ber:g}: not the same recording"
    peak = rec.get("align_peak_ratio", np.nan)
    min_peak, peak_name = ((config.min_peak_ratio_acapella, "min_peak_ratio_acapella") if acapella
                           else (config.min_peak_ratio, "min_peak_ratio"))
    if ber > config.peak_check_ber and np.isfinite(peak) and peak < min_peak:
        return "too_different", (f"BER {ber:.3f} is above peak_check_ber {config.peak_check_ber:g} and the alignment "
                                 f"peak ratio {peak:.2f} below {peak_name} {min_peak:g}: no sharp alignment, not the "
                                 "same recording")
    excess = rec.get("excess_share", np.nan)
    if ber < config.min_ber and not (np.isfinite(excess) and excess >= config.max_copy_excess_share):
        return "too_similar", (f"BER {ber:.3f} below min_ber {config.min_ber:g} and excess share {excess:.4f} below "
                               f"max_copy_excess_share {config.max_copy_excess_share:g}: the version is the mix "
                               "itself (metadata confusion)")
    return "verified", None


def compare_pairs(pairs: list[tuple[int, float]], mix_fps: list[Fingerprint], ver_fps: list[Fingerprint],
                  config: VerifyConfig, kinds: list[str] | None = None) -> list[dict]:
    """Compare a chunk of pairs. `pairs` holds (row index, duration_delta_s) aligned with the fingerprints."""
    out = []
    kinds = kinds or ["instrumental"] * len(pairs)
    for (row, delta_s), m, v, kind in zip(pairs, mix_fps, ver_fps, kinds):
        radius_s, capped = search_radius_s(delta_s, config)
        radius = int(np.ceil(radius_s / ITEM_S))
        shorter_s = min(m.duration_s, v.duration_s)
        need_s = max(config.min_overlap_s, config.min_overlap_share * shorter_s)
        match = compare(m.items, v.items, radius, min_overlap_items=int(np.ceil(need_s / ITEM_S)))
        rs = residual_stats(m, v, match.offset_s / ITEM_S)
        peak = envelope_peak_ratio(m, v, match.offset_s / ITEM_S, radius)
        overlap_share = match.overlap_s / shorter_s if shorter_s > 0 else 0.0
        rec = {"row": row, "ber": match.ber, "offset_s": match.offset_s, "overlap_s": match.overlap_s,
               "overlap_share": float(min(1.0, overlap_share)), "residual_share": rs["residual_share"],
               "excess_share": rs["excess_share"], "version_gain_db": rs["version_gain_db"],
               "second_ber": match.second_ber,
               "align_peak_ratio": float(min(peak, 1e6)) if np.isfinite(peak) or peak == np.inf else np.nan,
               "search_radius_s": radius_s, "mix_s": m.duration_s}
        status, reason = classify_pair(rec, config, kind)
        if capped and status != "verified":
            reason = (reason or "") + (f"; the offset search was capped at max_offset_s {config.max_offset_s:g} s "
                                       f"(|duration delta| + margin is {abs(delta_s) + config.offset_margin_s:.0f} s)")
        rec.update(status=status, reason=reason)
        out.append(rec)
    return out


def error_category(reason: str) -> str:
    for name, pattern in _ERROR_CATEGORIES:
        if re.search(pattern, reason or "", flags=re.IGNORECASE):
            return name
    return "other"


# ----------------------------------------------------------------------------- the stage

def _resolve(path: Any, base_dir: str | None, audio_root: str | None) -> tuple[str | None, str | None]:
    if path is None or (isinstance(path, float) and np.isnan(path)) or str(path) == "":
        return None, "no audio_path given for this track"
    try:
        return resolve_audio_path(str(path), base_dir=base_dir, audio_root=audio_root), None
    except AudioError as exc:
        return None, str(exc)


def run_verify(candidates_path: str | os.PathLike, out_dir: str | os.PathLike, config: VerifyConfig | None = None,
               *, scheduler: str = "threads", progress: bool = True) -> VerifyResult:
    """Verify every candidate pair by listening (Chromaprint) and write verified.parquet.

    Args:
        candidates_path: candidates.parquet from `pairminer discover` (local path or URL).
        out_dir: output folder (local or URL); gets verified.parquet, verify-report.json, similarity.png.
        config: stage options (defaults: `VerifyConfig()`).
        scheduler: threads | processes | synchronous | tcp://host:port.
        progress: show Dask progress bars.

    Returns:
        VerifyResult with output paths and counts (verified + too_similar + too_different + error = candidates).
    """
    session = VerifySession(candidates_path, out_dir, config)
    try:
        with dask_runner(scheduler, progress=progress) as runner:
            for start, batch in session.batches():
                session.batch_done(start, batch, _run_batch(batch, start, session, runner))
        session.close_cache()
    except BaseException:
        session.abort()
        raise
    finally:
        session.remove_tmp_cache()
    return session.finish(scheduler)


class VerifySession:
    """One verify run: its candidates, fingerprint cache, per-file state, counts and outputs.

    `run_verify` drives it with fingerprint and compare tasks; the fused verify+targets path
    (`pairminer.chain`) with one task per pair. Both call `batches`, `lookup` per batch,
    `batch_done` per batch, `close_cache` and `finish`, so they write the same tables.
    """

    def __init__(self, candidates_path: str | os.PathLike, out_dir: str | os.PathLike,
                 config: VerifyConfig | None = None):
        self.config = config = config or VerifyConfig()
        self.timings = timings = Timings()
        self.candidates_path = candidates_path
        self.out_dir = out_dir = str(out_dir)
        ensure_dir(out_dir)
        remove_stale_temps(out_dir)
        with timings.step("read_candidates"):
            # Read in row batches (`batches`): the client never holds the whole candidates table.
            # A verified.parquet (or any table with extra columns) can be verified again: keep the
            # candidate columns, then check each batch against the schema.
            from ..schemas import table_schema

            self._schema = table_schema("candidates")
            self._pf, self._handle = open_parquet(candidates_path)
            self._cand_cols = [c for c in self._schema.names if c in self._pf.schema_arrow.names]
            self.n = int(self._pf.metadata.num_rows)
        self._writer = TableWriter(join(out_dir, "verified.parquet"), "verified")
        self._status_counts: dict[str, int] = {}
        self._by_reason: dict[str, int] = {}
        self._verified_s = 0.0
        self._ber_hist = {st: np.zeros(len(_BER_BINS) - 1, np.int64) for st in STATUSES if st != "error"}
        self.base_dir = None if is_url(candidates_path) else str(Path(candidates_path).resolve().parent)
        self.tmp_cache = None
        if config.no_cache:
            self.cache_dir = self.tmp_cache = os.path.join(out_dir if not is_url(out_dir) else "/tmp",
                                                           f".fingerprint-cache-{uuid.uuid4().hex[:8]}")
        else:
            self.cache_dir = config.cache_dir or join(out_dir, "fingerprint-cache")
        if is_url(self.cache_dir):
            raise ConfigError(f"--cache-dir must be a local folder, got {self.cache_dir}")
        self.cache = FingerprintCache(self.cache_dir)
        self.file_errors: dict[str, str] = {}
        self.seen_files: set[str] = set()
        self.n_decoded = self.n_cached = 0
        self.decoded_audio_s = self.decode_cpu_s = 0.0

    def batches(self) -> Iterable[tuple[int, pd.DataFrame]]:
        """(first row number, candidates) per batch of `batch_pairs` rows, read as they are needed."""
        start = 0
        for rb in self._pf.iter_batches(batch_size=self.config.batch_pairs, columns=self._cand_cols):
            batch = self._schema.conform(pa.Table.from_batches([rb])).to_pandas()
            yield start, batch
            start += len(batch)

    def batch_done(self, start: int, batch: pd.DataFrame, stats: dict) -> None:
        """Count a batch's results and append its rows (candidates + verify columns) to verified.parquet."""
        self.n_decoded += stats["decoded"]
        self.n_cached += stats["cached"]
        self.decoded_audio_s += stats["decoded_audio_s"]
        self.decode_cpu_s += stats["decode_s"]
        with self.timings.step("write"):
            res = pd.DataFrame(stats["results"]).set_index("row").reindex(range(start, start + len(batch)))
            out = self._with_results(batch.reset_index(drop=True).copy(), res.reset_index(drop=True))
            self._writer.write(out)
        status = out["status"].to_numpy()
        for st, k in out["status"].value_counts().items():
            self._status_counts[st] = self._status_counts.get(st, 0) + int(k)
        for r in out.loc[status == "error", "reason"]:
            cat = error_category(r)
            self._by_reason[cat] = self._by_reason.get(cat, 0) + 1
        mix_s = pd.to_numeric(res["mix_s"], errors="coerce").to_numpy()
        self._verified_s += float(np.nansum(np.where(status == "verified", mix_s, 0.0)))
        ber = out["ber"].to_numpy()
        for st, hist in self._ber_hist.items():
            vals = ber[(status == st) & np.isfinite(ber)]
            hist += np.histogram(np.clip(vals, _BER_BINS[0], _BER_BINS[-1]), bins=_BER_BINS)[0]

    def close_cache(self) -> None:
        """After a complete pass: merge the cache's parts when there are many."""
        if self.tmp_cache is None:
            self.cache.compact()

    def remove_tmp_cache(self) -> None:
        """Always, last: remove the throw-away cache of a `no_cache` run (and, after a failure, the half table)."""
        if self.tmp_cache is not None:
            shutil.rmtree(self.tmp_cache, ignore_errors=True)

    def abort(self) -> None:
        """After a failure: no half-written verified.parquet is left, the input is closed."""
        self._writer.abort()
        self.close_input()

    def close_input(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def lookup(self, batch: pd.DataFrame, start: int) -> tuple[list[tuple], dict, dict[str, Fingerprint], list[str], set]:
        """Resolve a batch's paths and look its files up in the cache.

        Returns:
            (rows, keys, fps, todo, new_files): rows are (row, delta_s, mix path, mix error, version
            path, version error, kind); keys maps a path to its (cache key, size, mtime); fps holds the
            cached fingerprints by path; todo lists the paths to decode; new_files the paths first seen here.
        """
        config = self.config
        rows = []
        for i, rec in enumerate(batch.itertuples(index=False)):
            mpath, merr = _resolve(rec.mix_audio_path, self.base_dir, config.audio_root)
            vpath, verr = _resolve(rec.version_audio_path, self.base_dir, config.audio_root)
            rows.append((start + i, float(rec.duration_delta_s), mpath, merr, vpath, verr,
                         str(getattr(rec, "version_kind", "instrumental") or "instrumental").strip().lower()))
        with self.timings.step("cache_lookup"):
            keys: dict[str, tuple[str, int, int]] = {}
            new_files: set[str] = set()
            for _, _, mpath, _, vpath, _, _ in rows:
                for p in (mpath, vpath):
                    if p is None or p in keys or p in self.file_errors:
                        continue
                    if p not in self.seen_files:
                        new_files.add(p)
                        self.seen_files.add(p)
                    try:
                        keys[p] = file_key(p, config.max_seconds)
                    except AudioError as exc:
                        self.file_errors[p] = str(exc)
            cached = self.cache.lookup(k for k, _, _ in keys.values())
        fps: dict[str, Fingerprint] = {p: cached[k[0]] for p, k in keys.items() if k[0] in cached}
        todo = [p for p in keys if p not in fps]
        self.n_cached += sum(1 for p, k in keys.items() if k[0] in cached and p in new_files)
        return rows, keys, fps, todo, new_files

    def cache_record(self, path: str, keys: dict, fp: Fingerprint) -> dict:
        key, size, mtime_ns = keys[path]
        return {"key": key, "path": path, "size_bytes": size, "mtime_ns": mtime_ns,
                "max_seconds": self.config.max_seconds, **fp.encode()}

    def error_result(self, row: int, mpath, merr, vpath, verr) -> dict | None:
        """The error record of a pair whose file(s) failed, naming each file and why; None if both are fine."""
        problems = []
        for side, p, e in (("mix", mpath, merr), ("version", vpath, verr)):
            msg = e or (self.file_errors.get(p) if p is not None else None)
            if msg:
                problems.append(f"{side} {msg}")
        if not problems:
            return None
        return {"row": row, "status": "error", "reason": "; ".join(problems),
                **{c: np.nan for c in _FLOAT_RESULTS}, "mix_s": np.nan}

    def _with_results(self, out: pd.DataFrame, res: pd.DataFrame) -> pd.DataFrame:
        for col in RESULT_COLUMNS:
            out[col] = res[col].to_numpy()
        for col in _FLOAT_RESULTS:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
        out["reason"] = out["reason"].astype(object).where(out["reason"].notna(), None)
        return out

    def finish(self, scheduler: str, extra_timings: dict | None = None) -> VerifyResult:
        """Write verified.parquet, similarity.png and verify-report.json (last: it marks a complete run)."""
        config, timings, n, out_dir = self.config, self.timings, self.n, self.out_dir
        with timings.step("write"):
            remove_file(join(out_dir, "verify-report.json"))  # written last, it marks a complete run
            empty = self._with_results(self._schema.conform(
                self._pf.schema_arrow.empty_table().select(self._cand_cols)).to_pandas(),
                pd.DataFrame(columns=[*RESULT_COLUMNS, "mix_s"]))
            verified_path = self._writer.close(empty)
            self.close_input()
            plot_path = _plot(self._ber_hist, self._status_counts.get("error", 0), n, config,
                              join(out_dir, "similarity.png"))
        tmp_cache, cache_dir, file_errors, seen_files = self.tmp_cache, self.cache_dir, self.file_errors, self.seen_files
        n_decoded, n_cached = self.n_decoded, self.n_cached
        decoded_audio_s, decode_cpu_s = self.decoded_audio_s, self.decode_cpu_s
        candidates_path = self.candidates_path
        counts = self._status_counts
        by_reason = dict(sorted(self._by_reason.items()))
        n_ok = n - int(counts.get("error", 0))
        verified_s = self._verified_s
        total = timings.total_s
        cores = os.cpu_count() or 1
        report = {
            "stage": "verify",
            "inputs": {"candidates": str(candidates_path)},
            "outputs": {"verified": verified_path, "plot": plot_path, "cache_dir": None if tmp_cache else cache_dir},
            "config": config.to_dict(),
            "versions": versions(),
            "scheduler": scheduler,
            "counts": {
                "candidates": n,
                **{s: int(counts.get(s, 0)) for s in STATUSES},
                "errors_by_reason": by_reason,
                "files": len(seen_files),
                "files_decoded": n_decoded,
                "files_cached": n_cached,
                "files_failed": len(file_errors),
            },
            "metadata_confusion_share": (int(counts.get("too_similar", 0)) / n_ok) if n_ok else 0.0,
            "hours": {"verified": verified_s / 3600.0, "decoded": decoded_audio_s / 3600.0},
            "timings_s": {**timings.to_dict(), **(extra_timings or {})},
            "realtime_factor": decoded_audio_s / total if total > 0 else 0.0,
            "realtime_factor_per_core": decoded_audio_s / decode_cpu_s if decode_cpu_s > 0 else None,
            "cpu_cores": cores,
        }
        report_path = join(out_dir, "verify-report.json")
        write_json(report_path, report, "verify-report")
        log.info("verify: %d candidates -> %d verified, %d too similar, %d too different, %d errors", n,
                 counts.get("verified", 0), counts.get("too_similar", 0), counts.get("too_different", 0),
                 counts.get("error", 0))
        return VerifyResult(
            verified_path=verified_path, report_path=report_path, plot_path=plot_path,
            cache_dir=None if tmp_cache else cache_dir, n_candidates=n,
            n_verified=int(counts.get("verified", 0)), n_too_similar=int(counts.get("too_similar", 0)),
            n_too_different=int(counts.get("too_different", 0)), n_error=int(counts.get("error", 0)),
            n_files=len(seen_files), n_decoded=n_decoded, n_cached=n_cached, n_file_errors=len(file_errors),
        )


def _run_batch(batch: pd.DataFrame, start: int, session: VerifySession, runner) -> dict:
    config, cache, file_errors, timings = session.config, session.cache, session.file_errors, session.timings
    rows, keys, fps, todo, _new = session.lookup(batch, start)

    decoded_audio_s = decode_s = 0.0
    if todo:
        with timings.step("fingerprint"):
            # Files in chunks (one per file while there are few): a task per file costs the client
            # ~0.3-1 ms of graph handling, as much as the work itself when the audio is cached or short.
            size = task_chunk_size(len(todo))
            chunks = [todo[c:c + size] for c in range(0, len(todo), size)]
            tasks = [opaque_task(fingerprint_chunk_task, chunk, config.max_seconds, config.min_seconds,
                                 config.max_duration_s, name="fingerprint") for chunk in chunks]
            outs = [o for part in runner.compute(tasks, label="verify: fingerprints", unit="file",
                                                 weights=[len(c) for c in chunks])[0] for o in part]
        new_records = []
        for p, o in zip(todo, outs):
            decode_s += o["decode_s"]
            if not o["ok"]:
                file_errors[p] = o["error"]
                continue
            fp: Fingerprint = o["fp"]
            fps[p] = fp
            decoded_audio_s += fp.duration_s
            new_records.append(session.cache_record(p, keys, fp))
        with timings.step("cache_write"):
            cache.append(new_records)

    # Compare pairs whose two files both fingerprinted; the rest are errors naming the file.
    results, comparable = [], []
    for row, delta, mpath, merr, vpath, verr, kind in rows:
        err = session.error_result(row, mpath, merr, vpath, verr)
        if err is not None:
            results.append(err)
        else:
            comparable.append((row, delta, mpath, vpath, kind))
    with timings.step("compare"):
        tasks = []
        for c in range(0, len(comparable), config.pairs_per_task):
            chunk = comparable[c:c + config.pairs_per_task]
            tasks.append(opaque_task(compare_pairs, [(c[0], c[1]) for c in chunk], [fps[c[2]] for c in chunk],
                                     [fps[c[3]] for c in chunk], config, [c[4] for c in chunk], name="compare"))
        if tasks:
            sizes = [min(config.pairs_per_task, len(comparable) - c) for c in range(0, len(comparable),
                                                                                     config.pairs_per_task)]
            for part in runner.compute(tasks, label="verify: compare", unit="pair",
                                       weights=sizes)[0]:
                results.extend(part)
    return {"results": results, "decoded": sum(1 for p in todo if p in fps), "cached": 0,
            "decoded_audio_s": decoded_audio_s, "decode_s": decode_s}


_BER_BINS = np.linspace(0, 0.6, 61)


def _plot(hists: dict[str, np.ndarray], n_err: int, n: int, config: VerifyConfig, path: str) -> str | None:
    """BER histogram by status (counts per `_BER_BINS` bin, summed over the batches) with the two thresholds."""
    import io as _io

    # The object API with the Agg canvas, not pyplot: no backend selection or figure manager
    # (pyplot's import and set-up were most of the plot's cost in benchmarks/bench_chain.py).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..storage import write_bytes

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    bins = _BER_BINS
    colors = {"verified": "tab:green", "too_similar": "tab:orange", "too_different": "tab:red"}
    for status, color in colors.items():
        counts = hists.get(status)
        if counts is not None and counts.sum():
            ax.hist(bins[:-1], bins=bins, weights=counts, alpha=0.7, color=color,
                    label=f"{status} ({int(counts.sum())})")
    for x, name in ((config.min_ber, "min_ber"), (config.max_ber, "max_ber")):
        ax.axvline(x, color="k", ls="--", lw=1)
        ax.text(x, ax.get_ylim()[1] * 0.95, f" {name}={x:g}", va="top", fontsize=8)
    ax.set_xlabel("bit error rate at the best offset")
    ax.set_ylabel("pairs")
    ax.set_title(f"verify: {n} candidates ({n_err} errors not shown)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", fontsize=8)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_bytes(path, buf.getvalue())
    return path


__all__ = ["VerifyConfig", "VerifyResult", "run_verify", "FingerprintCache", "fingerprint_task", "compare_pairs",
           "classify", "classify_pair", "search_radius_s", "file_key", "content_digest", "error_category", "STATUSES"]
