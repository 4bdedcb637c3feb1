"""The `targets` stage: verified pairs -> aligned STFT magnitude targets in shards + manifest.parquet.

(Over 500 lines: the pair math, the TargetsSession commit protocol shared with pairminer.chain, and the driver.)

For every row of verified.parquet with ``status == "verified"``:

1. decode the mix and the version once (mono, soxr to `sr`), see `pairminer.audio.load_audio`;
2. refine the fingerprint offset to the sample (GCC-PHAT, `pairminer.targets.align.refine_offset`) and put
   the version on the mix's timeline, zero-padded where it is missing;
3. STFT both (`librosa.stft`, centred), estimate the gain g with `pairminer.targets.align.estimate_gain`;
4. channels: 0 = |mix|, 1 = g|instrumental|, 2 = max(|mix| - g|instrumental|, 0); for acapella pairs
   2 = g|acapella| and 1 = max(|mix| - g|acapella|, 0);
5. append the pair's frames (float16, (frames, 3, n_fft // 2 + 1)) to the current shard
   (`pairminer.shards.ShardWriter`).

Commit protocol (resumability): shards are sealed atomically (temp name + rename) and, right after
each seal, manifest.parquet is rewritten atomically with the pairs of that shard added. The manifest
therefore only names complete shards; a killed run loses at most the pairs of the unsealed shard,
and the rerun skips every pair in the manifest, deletes shard files the manifest does not name and
makes the rest. Pairs that fail are listed with their reason in targets-report.json and retried by a
rerun.

Memory: pairs are computed in Dask batches of about one shard's worth of frames, so the stage holds
at most ~2 x shard_mb of targets (one batch of results and one shard buffer) plus the per-task
working set of the running workers.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import shards as shardlib
from ..errors import AudioError, ConfigError, InputError, OutputError, PairminerError
from ..storage import ensure_dir, is_url, read_table, remove_file, remove_stale_temps, write_json, write_table
from ..parallel import check_scheduler, dask_runner, opaque_task
from ..runinfo import Timings, versions
from .config import TargetsConfig

log = logging.getLogger(__name__)

REPORT_NAME = "targets-report.json"
SPLIT_NAMES = ("train", "valid", "test")
REQUIRED_COLUMNS = ("pair_id", "mix_track_id", "version_track_id", "version_kind", "artist", "status",
                    "offset_s", "mix_audio_path", "version_audio_path")
# Length assumed for planning batches when the input has no mix_duration_s.
_DEFAULT_DURATION_S = 240.0


@dataclass
class TargetsResult:
    """What `run_targets` made.

    Attributes:
        out_dir: the targets folder.
        manifest_path: its manifest.parquet.
        report_path: its targets-report.json.
        shards: relative paths of every shard the manifest names.
        counts: verified_in, written, skipped_existing, failed (verified_in = the other three summed).
        hours: hours of mix audio in the manifest (all runs).
        frames: frames in the manifest.
        bytes: bytes of the shards the manifest names.
        failures: ``{"pair_id", "reason"}`` per failed pair of this run.
    """

    out_dir: str
    manifest_path: str
    report_path: str
    shards: list[str]
    counts: dict[str, int]
    hours: float
    frames: int
    bytes: int
    failures: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        c = self.counts
        return (
            f"targets: {c['written']} pair(s) written, {c['skipped_existing']} already done, {c['failed']} failed "
            f"(of {c['verified_in']} verified); {self.hours:.2f} h, {self.frames} frames in {len(self.shards)} "
            f"shard(s), {self.bytes / 2**20:.1f} MiB -> {self.manifest_path}"
        )


def assign_split(artist_key: str, fractions: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0) -> str:
    """Deterministic split of an artist: a hash of (seed, artist_key) mapped onto the cumulative fractions."""
    digest = hashlib.blake2b(f"{seed}\x1f{artist_key}".encode("utf-8"), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    acc = 0.0
    for name, frac in zip(SPLIT_NAMES, fractions):
        acc += frac
        if u < acc:
            return name
    return next(n for n, f in zip(reversed(SPLIT_NAMES), reversed(fractions)) if f > 0)


def _artist_key(row: dict) -> str:
    key = row.get("artist_key")
    if isinstance(key, str) and key:
        return key
    return " ".join(str(row.get("artist") or "").casefold().split())


@dataclass
class _PairOutput:
    frames: np.ndarray | None = None
    stats: dict[str, Any] | None = None
    error: str | None = None


def compute_pair(row: dict, config: TargetsConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode, align, gain-match and STFT one pair.

    Args:
        row: a verified.parquet row (dict) with the REQUIRED_COLUMNS.
        config: the stage config.

    Returns:
        (frames, stats): frames is float16 of shape (n_frames, 3, n_fft // 2 + 1) on the mix's timeline
        (frame i centred on mix sample i * hop); stats holds offset_s, gain_db and the quality figures.

    Raises:
        AudioError: a file cannot be decoded, or the pair is unusable (too short, no overlap).
    """
    from ..audio import load_audio

    check_mix_duration(row, config)
    (mpath, mreq), (vpath, vreq) = decode_requests(row, config)
    # The length cap is read from the headers first, so a small file that holds hours is never decoded.
    mix, _ = load_audio(mpath, mreq.sr_hz, max_duration_s=mreq.max_duration_s)
    ver, _ = load_audio(vpath, vreq.sr_hz, max_duration_s=vreq.max_duration_s)
    return compute_pair_audio(row, config, mix, ver)


def check_mix_duration(row: dict, config: TargetsConfig) -> None:
    """Refuse (AudioError) a pair whose mix_duration_s is over `max_duration_s`, before any decode."""
    dur = row.get("mix_duration_s")
    if dur is not None and np.isfinite(dur) and dur > config.max_duration_s:
        raise AudioError(f"mix is {dur:.0f} s long, over max_duration_s={config.max_duration_s:.0f}; raise it to keep it")


def decode_requests(row: dict, config: TargetsConfig) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """((mix path, DecodeRequest), (version path, DecodeRequest)): what `compute_pair` decodes, and how."""
    from ..audio import DecodeRequest, resolve_audio_path

    mix = resolve_audio_path(row["mix_audio_path"], audio_root=config.audio_root)
    ver = resolve_audio_path(row["version_audio_path"], audio_root=config.audio_root)
    return ((mix, DecodeRequest(config.sr, max_duration_s=config.max_duration_s)),
            (ver, DecodeRequest(config.sr, max_duration_s=config.max_duration_s + config.search_window_s + 3600.0)))


def compute_pair_audio(row: dict, config: TargetsConfig, mix: np.ndarray, ver: np.ndarray
                       ) -> tuple[np.ndarray, dict[str, Any]]:
    """`compute_pair` on audio already decoded (mono float32 at `config.sr`, as `load_audio` gives it)."""
    import librosa

    from .align import estimate_gain, refine_offset, shift_onto

    sr = config.sr
    if len(mix) > config.max_duration_s * sr:
        raise AudioError(f"mix is over max_duration_s={config.max_duration_s:.0f} s long; raise it to keep it")
    coarse_s = float(row["offset_s"]) if row.get("offset_s") is not None and np.isfinite(row["offset_s"]) else 0.0
    al = refine_offset(mix, ver, sr, coarse_s, config.search_window_s)
    d = al.offset_samples
    cover_lo, cover_hi = max(0, -d), min(len(mix), len(ver) - d)
    covered = max(0, cover_hi - cover_lo)
    if covered <= 0:
        raise AudioError(f"the version does not overlap the mix at offset {al.offset_s:.3f} s")
    aligned = shift_onto(ver, d, len(mix))
    del ver
    stft = dict(n_fft=config.n_fft, hop_length=config.hop, window=config.window, center=True)
    mix_mag = np.abs(librosa.stft(mix, **stft))
    ver_mag = np.abs(librosa.stft(aligned, **stft))
    del aligned
    n_frames = mix_mag.shape[1]
    if n_frames < config.min_frames:
        raise AudioError(f"too short: {n_frames} STFT frames, need min_frames={config.min_frames}")
    g = estimate_gain(mix_mag, ver_mag)
    if not np.isfinite(g) or g <= 0:
        raise AudioError("cannot estimate a gain: the aligned version or the mix is silent where they overlap")
    ver_mag *= np.float32(g)
    rest = np.maximum(mix_mag - ver_mag, 0.0)
    acapella = str(row.get("version_kind", "")).strip().lower() == "acapella"
    inst, vocal = (rest, ver_mag) if acapella else (ver_mag, rest)
    c0, c1 = covered_frame_range(cover_lo, cover_hi, len(mix), n_frames, config.n_fft, config.hop)
    if c1 - c0 < config.min_frames:
        raise AudioError(f"the version covers only {max(0, c1 - c0)} STFT frames of the mix (need min_frames="
                         f"{config.min_frames}) at offset {al.offset_s:.3f} s")
    # Where the version is missing there is no valid target (not vocal = mix): zeros, outside the manifest's range.
    for mag in (inst, vocal):
        mag[:, :c0] = 0.0
        mag[:, c1:] = 0.0
    peak = max(float(mix_mag.max()), float(inst.max()), float(vocal.max()))
    if not np.isfinite(peak):
        raise AudioError("the STFT holds NaN or infinity; check the files")
    if peak > shardlib.FLOAT16_MAX:
        raise AudioError(f"STFT magnitudes reach {peak:.3g}, beyond float16 ({shardlib.FLOAT16_MAX:.0f}): the audio is "
                         "far outside [-1, 1] (a float WAV holding integer-scale samples?); rescale the file to "
                         "[-1, 1] and rerun")

    frames = np.empty((n_frames, shardlib.N_CHANNELS, config.bins), dtype=shardlib.SHARD_DTYPE)
    for ch, mag in ((shardlib.MIX, mix_mag), (shardlib.INSTRUMENTAL, inst), (shardlib.VOCALS, vocal)):
        frames[:, ch, :] = mag.T
    mix_e = np.square(mix_mag[:, c0:c1], dtype=np.float64).sum(axis=0)
    voc_e = np.square(vocal[:, c0:c1], dtype=np.float64).sum(axis=0)
    active = mix_e > mix_e.max() * 1e-8
    has_voc = active & (voc_e >= mix_e * 10 ** (config.vocal_frame_db / 10))
    stats = {
        "duration_s": len(mix) / sr,
        "offset_s": al.offset_s,
        "fingerprint_offset_s": coarse_s,
        "gain_db": 20.0 * math.log10(g),
        "align_peak_ratio": al.peak_ratio if np.isfinite(al.peak_ratio) else 1e9,
        "align_at_edge": bool(al.at_edge),
        "version_coverage": covered / len(mix),
        "vocal_energy_ratio": float(voc_e.sum() / mix_e.sum()) if mix_e.sum() > 0 else 0.0,
        "vocal_frame_share": float(has_voc.sum() / max(1, active.sum())),
        "n_frames": n_frames,
        "cover_start_frame": int(c0),
        "cover_stop_frame": int(c1),
    }
    if al.at_edge:
        log.warning("pair %s: offset peak at the edge of the +-%.2f s search window; the alignment may be wrong",
                    row["pair_id"], config.search_window_s)
    return frames, stats


def covered_frame_range(lo: int, hi: int, n_samples: int, n_frames: int, n_fft: int, hop: int) -> tuple[int, int]:
    """[start, stop) of the centred STFT frames whose whole window lies where the version exists.

    Args:
        lo, hi: mix samples [lo, hi) where the aligned version has audio.
        n_samples: the mix's length; at its two ends the padding is the same for both signals, so a
            version that reaches an end covers the frames there.
        n_frames: frames of the mix's STFT (frame i centred on sample i * hop).
        n_fft, hop: STFT size and hop.
    """
    half = n_fft // 2
    start = 0 if lo <= 0 else -(-(lo + half) // hop)
    stop = n_frames if hi >= n_samples else (hi - half) // hop + 1
    return int(min(max(start, 0), n_frames)), int(min(max(stop, 0), n_frames))


def _pair_task(row: dict, config: TargetsConfig) -> _PairOutput:
    """Dask task: compute_pair with every expected failure turned into a reason."""
    try:
        frames, stats = compute_pair(row, config)
        return _PairOutput(frames=frames, stats=stats)
    except PairminerError as exc:
        return _PairOutput(error=str(exc))
    except (ValueError, RuntimeError, MemoryError, OSError) as exc:
        log.debug("pair %s failed", row.get("pair_id"), exc_info=True)
        return _PairOutput(error=f"{type(exc).__name__}: {exc}")


# Rows of verified.parquet read per batch (the client holds one batch, not the table).
READ_BATCH_ROWS = 20_000


def _verified_ids(verified_path: str):
    """(pair_ids of the verified rows as an Arrow array, rows in the file, ParquetFile, handle to close).

    Reads only the pair_id and status columns; checks the required columns up front.
    """
    import pyarrow.compute as pc

    from ..storage import open_parquet

    pf, handle = open_parquet(verified_path)
    missing = [c for c in REQUIRED_COLUMNS if c not in pf.schema_arrow.names]
    if missing:
        if handle is not None:
            handle.close()
        raise InputError(f"{verified_path} lacks column(s) {', '.join(missing)}; give the verified.parquet written "
                         "by `pairminer verify`")
    t = pf.read(columns=["pair_id", "status"])
    ids = t.filter(pc.equal(pc.cast(t["status"], "string"), "verified"))["pair_id"]
    return pc.cast(ids, "string").combine_chunks(), int(pf.metadata.num_rows), pf, handle


def _verified_batches(pf) -> Any:
    """The verified rows of verified.parquet as row dicts, one list per batch of READ_BATCH_ROWS rows."""
    for rb in pf.iter_batches(batch_size=READ_BATCH_ROWS):
        df = rb.to_pandas()
        df = df[df["status"].astype(str) == "verified"].reset_index(drop=True)
        yield [_row_dict(r) for _, r in df.iterrows()]


def _row_dict(row: pd.Series) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and math.isnan(v):
            v = None
        elif v is pd.NA or v is pd.NaT:
            v = None
        elif hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


def _load_existing_manifest(out_dir: Path, config: TargetsConfig) -> pd.DataFrame | None:
    path = out_dir / shardlib.MANIFEST_NAME
    if not path.exists():
        return None
    raw = read_table(path)
    if "format_version" not in raw.column_names or len(raw) and set(
            raw.column("format_version").to_pylist()) != {shardlib.FORMAT_VERSION}:
        # Frames of another shard format: not fresh. Drop them (their shards go as unreferenced) and remake.
        have = sorted(set(raw.column("format_version").to_pylist())) if "format_version" in raw.column_names else [1]
        log.warning("targets: %s holds shard format %s, not %d; remaking its %d pair(s)", path, have,
                    shardlib.FORMAT_VERSION, len(raw))
        remove_file(path)
        return None
    manifest = read_table(path, "manifest").to_pandas()
    if len(manifest):
        for col, want in (("sr_hz", config.sr), ("n_fft", config.n_fft), ("hop", config.hop),
                          ("window", config.window)):
            have = set(manifest[col].unique())
            if have != {want}:
                raise ConfigError(
                    f"{out_dir} already holds targets made with {col}={sorted(have)}, not {want}; use another "
                    "-o folder, or delete that one to remake it"
                )
    return manifest


def _plan_batches(rows: list[dict], config: TargetsConfig, capacity_frames: int) -> list[list[dict]]:
    """Group pending pairs into batches of about one shard of frames (bounds the memory of a batch)."""
    batches, cur, cur_frames = [], [], 0
    for row in rows:
        est = estimate_frames(row, config)
        if cur and cur_frames + est > capacity_frames:
            batches.append(cur)
            cur, cur_frames = [], 0
        cur.append(row)
        cur_frames += est
    if cur:
        batches.append(cur)
    return batches


def estimate_frames(row: dict, config: TargetsConfig) -> int:
    """STFT frames a pair will take, from its catalog duration (capped), before it is decoded."""
    dur = row.get("mix_duration_s")
    dur = float(dur) if dur is not None and np.isfinite(dur) else _DEFAULT_DURATION_S
    return int(min(dur, config.max_duration_s) * config.sr / config.hop) + 1


def _manifest_row(row: dict, stats: dict, shard: str, start: int, config: TargetsConfig) -> dict:
    key = _artist_key(row)
    return {
        "pair_id": row["pair_id"],
        "mix_track_id": str(row["mix_track_id"]),
        "version_track_id": str(row["version_track_id"]),
        "version_kind": row["version_kind"],
        "artist": row["artist"],
        "artist_key": key,
        "genre": row.get("genre"),
        "split": assign_split(key, tuple(config.splits), config.split_seed),
        "shard": shard,
        "start_frame": start,
        "n_frames": stats["n_frames"],
        "sr_hz": config.sr,
        "n_fft": config.n_fft,
        "hop": config.hop,
        "window": config.window,
        "duration_s": stats["duration_s"],
        "offset_s": stats["offset_s"],
        "fingerprint_offset_s": stats["fingerprint_offset_s"],
        "gain_db": stats["gain_db"],
        "align_peak_ratio": stats["align_peak_ratio"],
        "version_coverage": stats["version_coverage"],
        "vocal_energy_ratio": stats["vocal_energy_ratio"],
        "vocal_frame_share": stats["vocal_frame_share"],
        "cover_start_frame": stats["cover_start_frame"],
        "cover_stop_frame": stats["cover_stop_frame"],
        "format_version": shardlib.FORMAT_VERSION,
        "mix_audio_path": row.get("mix_audio_path"),
        "version_audio_path": row.get("version_audio_path"),
    }


def run_targets(verified_path: str | os.PathLike, out_dir: str | os.PathLike, config: TargetsConfig | None = None, *,
                scheduler: str = "threads", progress: bool = True) -> TargetsResult:
    """Make STFT targets for every verified pair: shards/, manifest.parquet and targets-report.json in `out_dir`.

    Args:
        verified_path: verified.parquet from `pairminer verify` (local path or fsspec URL).
        out_dir: the targets folder (local). A rerun on the same folder skips pairs already in its manifest.
        config: stage options (defaults: TargetsConfig()).
        scheduler: Dask scheduler (threads, processes, synchronous or tcp://host:port).
        progress: show a progress bar per batch.

    Returns:
        TargetsResult with the paths and counts.

    Raises:
        InputError: verified.parquet is missing or lacks columns.
        ConfigError: bad options, or out_dir holds targets made with other STFT parameters.
        OutputError: out_dir cannot be written.
    """
    config = config or TargetsConfig()
    check_scheduler(scheduler)
    session = TargetsSession(out_dir, config)
    with session.timings.step("read_input"):
        verified_ids, rows_in, pf, handle = _verified_ids(str(verified_path))
        session.load_existing()
    n_verified = len(verified_ids)
    session.drop_stale(verified_ids)
    del verified_ids
    session.open_writer()

    from ..progress import Progress

    try:
        with session.timings.step("compute_and_write"), dask_runner(scheduler, progress=progress) as runner, \
                Progress("targets", n_verified, unit="pair", enabled=progress) as bar:
            # Per partition of verified.parquet: the client holds one batch of rows and one graph at a time.
            for rows in _verified_batches(pf):
                before = session.skipped + len(session.failures)
                pending = session.plan(rows)
                bar.update(session.skipped + len(session.failures) - before)
                for batch in _plan_batches(pending, config, session.capacity):
                    tasks = [opaque_task(_pair_task, row, config, name="targets-pair") for row in batch]
                    results = runner.compute(*tasks, label=f"{len(batch)} pair(s)", progress=bar)
                    for row, res in zip(batch, results):
                        session.add(row, res)
                    del results, tasks
            session.close_writer()
    finally:
        if handle is not None:
            handle.close()
    log.info("targets: %d verified pairs, %d already done, %d made or failed", n_verified, session.skipped,
             n_verified - session.skipped)
    return session.finish(str(verified_path), n_verified, rows_in, scheduler)


class TargetsSession:
    """The targets folder of one run: its manifest, shard writer, commit protocol and report.

    `run_targets` drives it from verified.parquet; the fused verify+targets path (`pairminer.chain`)
    drives it from pairs verified in the same tasks. Order: `load_existing`, `drop_stale` (when the
    verified pairs are known up front), `open_writer`, `plan`, `add` per computed pair,
    `close_writer`, `drop_stale` (when they are known only now), `finish`.
    """

    def __init__(self, out_dir: str | os.PathLike, config: TargetsConfig):
        config.check()
        if is_url(out_dir):
            raise OutputError(f"{out_dir}: targets writes memory-mappable shards and needs a local -o folder")
        self.config = config
        self.out = out = Path(out_dir)
        ensure_dir(out)
        remove_stale_temps(out)  # e.g. a manifest a killed run was writing
        remove_file(out / REPORT_NAME)  # written last, it marks a complete run; the manifest changes below
        self.timings = Timings()
        self.existing: pd.DataFrame | None = None
        self.manifest_parts: list[pd.DataFrame] = []
        self.dropped_stale = 0
        self.failures: list[dict[str, str]] = []
        self.skipped = 0
        self.done_ids: set[str] = set()
        self.waiting: dict[str, tuple[dict, dict]] = {}
        self.written_stats: list[dict] = []
        self.capacity = shardlib.shard_capacity_frames(config.shard_mb, config.n_fft)
        self.writer: shardlib.ShardWriter | None = None
        self._seen: set[str] = set()

    def load_existing(self) -> None:
        self.existing = _load_existing_manifest(self.out, self.config)
        self._sync_existing()

    def _sync_existing(self) -> None:
        ex = self.existing
        self.done_ids = set(ex["pair_id"]) if ex is not None else set()
        self.manifest_parts = [ex] if ex is not None and len(ex) else []

    def drop_stale(self, verified_ids: Any) -> None:
        """Drop manifest rows whose pair is no longer verified (they must not stay in the training data)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        manifest = (pd.concat(self.manifest_parts, ignore_index=True) if self.manifest_parts else None)
        if manifest is None or not len(manifest):
            return
        ids = verified_ids if isinstance(verified_ids, (pa.Array, pa.ChunkedArray)) else pa.array(
            sorted(verified_ids), pa.string())
        keep = pc.is_in(pa.array(manifest["pair_id"].astype(str).tolist(), pa.string()), value_set=ids)
        stale = ~np.asarray(keep.to_numpy(zero_copy_only=False), dtype=bool)
        n = int(stale.sum())
        if not n:
            return
        self.dropped_stale += n
        log.warning("targets: dropping %d manifest row(s) whose pair is no longer verified", n)
        kept = manifest[~stale].reset_index(drop=True)
        write_table(self.out / shardlib.MANIFEST_NAME, kept, "manifest")
        self.manifest_parts = [kept] if len(kept) else []
        self.done_ids -= set(manifest.loc[stale, "pair_id"])
        if self.writer is not None:  # called after the writer closed: clear shards nobody names any more
            shardlib.remove_unreferenced(self.out, sorted(set(kept["shard"])))

    def open_writer(self) -> None:
        parts = self.manifest_parts
        referenced = sorted(set(pd.concat(parts)["shard"])) if parts else []
        shardlib.remove_unreferenced(self.out, referenced)
        first_index = max((shardlib.shard_index(s) for s in referenced), default=-1) + 1
        self.writer = shardlib.ShardWriter(self.out, self.config.bins, self.capacity, first_index=first_index,
                                           on_seal=self._commit)

    def _commit(self, relpath: str, entries: list[tuple[Any, int, int]]) -> None:
        rows = []
        for pid, start, _n in entries:
            row, stats = self.waiting.pop(pid)
            rows.append(_manifest_row(row, stats, relpath, start, self.config))
            self.written_stats.append(stats)
        self.manifest_parts.append(pd.DataFrame(rows))
        write_table(self.out / shardlib.MANIFEST_NAME, pd.concat(self.manifest_parts, ignore_index=True), "manifest")

    def wanted(self, pair_id: str) -> bool | None:
        """True: make this pair; False: already in the manifest (counted as skipped); None: a duplicate (a failure)."""
        pid = str(pair_id)
        if pid in self.done_ids:
            self.skipped += 1
            return False
        if pid in self._seen:
            self.failures.append({"pair_id": pid, "reason": "duplicate pair_id in the input; only its first row is used"})
            return None
        self._seen.add(pid)
        return True

    def plan(self, rows: Any) -> list[dict]:
        """The rows still to make, in order (skips and duplicates are counted)."""
        return [row for row in rows if self.wanted(row["pair_id"])]

    def add(self, row: dict, res: "_PairOutput") -> None:
        if res.error is not None:
            log.warning("pair %s failed: %s", row["pair_id"], res.error)
            self.failures.append({"pair_id": str(row["pair_id"]), "reason": res.error})
            return
        self.waiting[row["pair_id"]] = (row, res.stats)
        self.writer.add(row["pair_id"], res.frames)

    def close_writer(self) -> None:
        self.writer.close()

    def finish(self, verified_path: str, n_verified: int, rows_in: int, scheduler: str) -> "TargetsResult":
        """Write the final manifest (if none yet) and targets-report.json; return the result."""
        config, out, timings, failures = self.config, self.out, self.timings, self.failures
        if not self.manifest_parts:  # nothing ever written: still leave an empty, schema-valid manifest
            write_table(out / shardlib.MANIFEST_NAME, pd.DataFrame([], columns=_manifest_columns()), "manifest")
        manifest = shardlib.read_manifest(out)
        splits = [assign_split(k, tuple(config.splits), config.split_seed) for k in manifest["artist_key"]]
        if splits != manifest["split"].tolist():  # splits or split_seed changed since those pairs were written
            manifest["split"] = splits
            write_table(out / shardlib.MANIFEST_NAME, manifest, "manifest")
        shard_list = sorted(set(manifest["shard"]))
        total_bytes = sum((out / s).stat().st_size for s in shard_list)
        processed_s = float(sum(s["duration_s"] for s in self.written_stats))
        counts = {"verified_in": n_verified, "written": len(self.written_stats), "skipped_existing": self.skipped,
                  "failed": len(failures)}
        assert counts["verified_in"] == counts["written"] + counts["skipped_existing"] + counts["failed"], counts
        wall = timings.steps.get("compute_and_write", 0.0)
        cores = _n_cores(scheduler)
        rtf = processed_s / wall if processed_s > 0 and wall > 0 else None
        report = {
            "stage": "targets",
            "config": config.to_dict(),
            "versions": versions(),
            "inputs": {"verified": str(verified_path), "rows_in": rows_in, "not_verified": rows_in - n_verified,
                       "dropped_stale": self.dropped_stale},
            "counts": counts,
            "failures": failures,
            "hours": float(manifest["duration_s"].sum()) / 3600.0 if len(manifest) else 0.0,
            "hours_written": processed_s / 3600.0,
            "frames": int(manifest["n_frames"].sum()) if len(manifest) else 0,
            "bytes": int(total_bytes),
            "shards": len(shard_list),
            "splits": {k: int(v) for k, v in manifest["split"].value_counts().items()} if len(manifest) else {},
            "timings_s": timings.to_dict(),
            "realtime_factor": rtf,
            "realtime_factor_per_core": rtf / cores if rtf is not None else None,
            "cores": cores,
        }
        report_path = out / REPORT_NAME
        write_json(report_path, report, "targets-report")
        log.info("targets: %d written, %d skipped, %d failed; %.2f h in %d shard(s)", counts["written"], self.skipped,
                 len(failures), report["hours"], len(shard_list))
        return TargetsResult(out_dir=str(out), manifest_path=str(out / shardlib.MANIFEST_NAME),
                             report_path=str(report_path), shards=shard_list, counts=counts, hours=report["hours"],
                             frames=report["frames"], bytes=report["bytes"], failures=failures)


def _n_cores(scheduler: str) -> int:
    if scheduler == "synchronous":
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _manifest_columns() -> list[str]:
    from ..schemas import table_schema

    return table_schema("manifest").names
