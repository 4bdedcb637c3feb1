"""verify chained into targets with one decode per file: one Dask task per pair does both stages.

    candidates.parquet -> verified.parquet, verify-report.json, similarity.png, fingerprint cache
                       -> targets/manifest.parquet, targets/shards/, targets/targets-report.json

The outputs are those of `run_verify` followed by `run_targets` on its verified.parquet, table for
table and shard for shard (tests/test_chain.py checks the bytes): the same `VerifySession` and
`TargetsSession` write them. What changes is the work. The separate path decodes every file twice
(verify at 11025 Hz, targets at `TargetsConfig.sr`); here each pair task

1. decodes each file it needs once (`pairminer.audio.load_audio_rates`: one read and downmix,
   one soxr resampler per rate) unless the fingerprint cache already holds it;
2. fingerprints, compares and classifies the pair (`compare_pairs`, the verify rule);
3. when the pair is verified and not yet in the targets manifest, aligns it and computes its targets
   (`compute_pair_audio`) from the audio decoded in step 1. A pair whose two fingerprints came from
   the cache decodes its files at the targets rate only, and only when it is verified.

Memory: the tasks of a verify batch run in groups of about one shard of frames (as `run_targets`
plans them), and each group's frames go to the shard writer before the next group starts, so the
stage holds at most ~2 x shard_mb of targets plus the working set of the running tasks.

The workflow runner uses this path when a stage spec names it (`StageSpec.fused_with`) and both
stages run in the same invocation; each stage keeps its own run.json entry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any


from .audio import DecodeRequest, load_audio_rates
from .errors import AudioError, PairminerError
from .parallel import dask_runner, opaque_task
from .targets.config import TargetsConfig
from .targets.stage import (TargetsSession, _PairOutput, _row_dict, check_mix_duration,
                            compute_pair_audio, decode_requests, estimate_frames)
from .verify.config import VerifyConfig
from .verify.fingerprint import CHROMAPRINT_SR_HZ, Fingerprint, fingerprint_signal
from .verify.stage import VerifySession, compare_pairs, task_chunk_size

log = logging.getLogger(__name__)


@dataclass
class _Job:
    """One pair of a fused task: what verify resolved and whether targets wants it."""

    row: int
    delta_s: float
    kind: str
    mix_path: str
    version_path: str
    mix_fp: Fingerprint | None
    version_fp: Fingerprint | None
    target_row: dict | None  # the pair's candidate row when targets should make it if verified
    pair_id: str = ""


def _fingerprint(path: str, got: Any) -> Fingerprint | str:
    """A fingerprint, or the reason (as `fingerprint_task` words it) why there is none."""
    if isinstance(got, AudioError):
        return str(got)
    y, info = got
    try:
        return fingerprint_signal(y, source_sr_hz=info.source_sr_hz, channels=info.channels)
    except AudioError as exc:
        return str(AudioError(f"{path}: {exc}"))


def fused_pair_task(job: _Job, vconfig: VerifyConfig, tconfig: TargetsConfig) -> dict:
    """Verify one pair and, when it is verified and wanted, make its targets from the same decode.

    Returns {"rec": the verify record (None when a file failed), "fps": {path: new Fingerprint},
    "file_errors": {path: reason}, "targets": _PairOutput or None, "decode_s", "decoded_audio_s"}.
    Never raises on bad audio: a file's problem is a file error, a pair's a targets failure.
    """
    t0 = time.perf_counter()
    out: dict[str, Any] = {"rec": None, "fps": {}, "file_errors": {}, "targets": None, "decoded_audio_s": 0.0}
    vreq = DecodeRequest(CHROMAPRINT_SR_HZ, max_seconds=vconfig.max_seconds, min_seconds=vconfig.min_seconds,
                         max_duration_s=vconfig.max_duration_s)
    treqs = None
    if job.target_row is not None:
        (tm_path, tm_req), (tv_path, tv_req) = decode_requests(job.target_row, tconfig)
        treqs = {"mix": (tm_path, tm_req), "version": (tv_path, tv_req)}
    audio_t: dict[str, Any] = {}  # side -> (y, info) at the targets rate, or an AudioError
    fps = {"mix": job.mix_fp, "version": job.version_fp}
    paths = {"mix": job.mix_path, "version": job.version_path}
    try:
        for side in ("mix", "version"):
            if fps[side] is not None:
                continue
            path = paths[side]
            # The targets rate rides along when targets may need this file and reads the same path.
            with_t = treqs is not None and treqs[side][0] == path
            got = load_audio_rates(path, [vreq, treqs[side][1]] if with_t else [vreq])
            if with_t:
                audio_t[side] = got[1]
            fp = _fingerprint(path, got[0])
            if isinstance(fp, str):
                out["file_errors"][path] = fp
            else:
                fps[side] = out["fps"][path] = fp
                out["decoded_audio_s"] += fp.duration_s
    except (OSError, ValueError, RuntimeError, ImportError, MemoryError) as exc:  # still this pair's files only
        log.debug("decode for pair row %d failed", job.row, exc_info=True)
        for side in ("mix", "version"):
            if fps[side] is None and paths[side] not in out["file_errors"]:
                out["file_errors"][paths[side]] = f"{paths[side]}: cannot decode ({type(exc).__name__}: {exc})"
    if out["file_errors"] or fps["mix"] is None or fps["version"] is None:
        out["decode_s"] = time.perf_counter() - t0
        return out
    rec = compare_pairs([(job.row, job.delta_s)], [fps["mix"]], [fps["version"]], vconfig, [job.kind])[0]
    out["rec"] = rec
    if rec["status"] == "verified" and job.target_row is not None:
        out["targets"] = _targets(job, rec, tconfig, treqs, audio_t)
    out["decode_s"] = time.perf_counter() - t0
    return out


def fused_chunk_task(jobs: list[_Job], vconfig: VerifyConfig, tconfig: TargetsConfig) -> list[dict]:
    """`fused_pair_task` over a chunk of pairs (one Dask task; chunks stay small, see `task_chunk_size`)."""
    return [fused_pair_task(job, vconfig, tconfig) for job in jobs]


def _targets(job: _Job, rec: dict, tconfig: TargetsConfig, treqs: dict, audio_t: dict) -> _PairOutput:
    """`_pair_task` of the targets stage, on the audio this task already decoded where it has it."""
    row = dict(job.target_row, offset_s=float(rec["offset_s"]))
    try:
        check_mix_duration(row, tconfig)
        sig = {}
        for side in ("mix", "version"):  # mix first: the separate path stops at the mix's error
            if side not in audio_t:
                path, req = treqs[side]
                audio_t[side] = load_audio_rates(path, [req])[0]
            got = audio_t[side]
            if isinstance(got, AudioError):
                raise got
            sig[side] = got[0]
        frames, stats = compute_pair_audio(row, tconfig, sig["mix"], sig["version"])
        return _PairOutput(frames=frames, stats=stats)
    except PairminerError as exc:
        return _PairOutput(error=str(exc))
    except (ValueError, RuntimeError, MemoryError, OSError) as exc:
        log.debug("pair %s failed", row.get("pair_id"), exc_info=True)
        return _PairOutput(error=f"{type(exc).__name__}: {exc}")


def _groups(jobs: list[_Job], tconfig: TargetsConfig, capacity_frames: int) -> list[list[_Job]]:
    """Jobs in groups of about one shard of target frames (jobs without targets cost nothing here)."""
    groups, cur, cur_frames = [], [], 0
    for job in jobs:
        est = 0
        if job.target_row is not None:
            est = estimate_frames(job.target_row, tconfig)
        if cur and est and cur_frames + est > capacity_frames:
            groups.append(cur)
            cur, cur_frames = [], 0
        cur.append(job)
        cur_frames += est
    if cur:
        groups.append(cur)
    return groups


def run_verify_targets(candidates_path: str, out_dir: str, targets_dir: str, verify_config: VerifyConfig | None = None,
                       targets_config: TargetsConfig | None = None, *, scheduler: str = "threads",
                       progress: bool = True) -> dict[str, Any]:
    """Run verify and targets as one pass over the audio (see the module docstring).

    Args:
        candidates_path: candidates.parquet from discover.
        out_dir: verify's output folder (verified.parquet, verify-report.json, similarity.png, cache).
        targets_dir: the targets folder (local); a rerun skips pairs already in its manifest.
        verify_config, targets_config: the two stages' options.
        scheduler: Dask scheduler (threads, processes, synchronous or tcp://host:port).
        progress: show a progress bar.

    Returns:
        {"verify": VerifyResult, "targets": TargetsResult}, as the two stages run separately return them.
    """
    from .progress import Progress

    vconfig = verify_config or VerifyConfig()
    tconfig = targets_config or TargetsConfig()
    vs = VerifySession(candidates_path, out_dir, vconfig)
    ts = TargetsSession(targets_dir, tconfig)
    with ts.timings.step("read_input"):
        ts.load_existing()
    ts.open_writer()
    verified_ids: set[str] = set()
    n_verified = 0
    try:
        # Two bars, as the two stages show them alone: verify counts candidates; targets counts verified
        # pairs, whose total is an upper bound (made so far + candidates not yet classified) until the end.
        with dask_runner(scheduler, progress=progress) as runner, ts.timings.step("compute_and_write"), \
                Progress("targets", vs.n, unit="pair", enabled=progress) as tbar, \
                Progress("verify", vs.n, unit="pair", enabled=progress) as bar:
            n_seen = 0
            for start, batch in vs.batches():
                rows, keys, fps, todo, _new = vs.lookup(batch, start)
                records = batch.to_dict("records")
                todo_set = set(todo)
                jobs, results = [], []
                for (row, delta, mpath, merr, vpath, verr, kind), cand in zip(rows, records):
                    err = vs.error_result(row, mpath, merr, vpath, verr)
                    if err is not None:
                        results.append(err)
                        bar.update(1)
                        n_seen += 1
                        continue
                    target_row = _row_dict_plain(cand)
                    if str(target_row["pair_id"]) in ts.done_ids:  # in the manifest already: verify only
                        target_row = None
                    jobs.append(_Job(row, delta, kind, mpath, vpath, fps.get(mpath), fps.get(vpath), target_row,
                                     str(cand["pair_id"])))
                decoded_s = decode_s = 0.0
                n_decoded = 0
                for group in _groups(jobs, tconfig, ts.capacity):
                    # A file fingerprinted by an earlier group of this batch is not decoded again for verify.
                    for job in group:
                        job.mix_fp = job.mix_fp or fps.get(job.mix_path)
                        job.version_fp = job.version_fp or fps.get(job.version_path)
                    size = task_chunk_size(len(group))
                    chunks = [group[c:c + size] for c in range(0, len(group), size)]
                    tasks = [opaque_task(fused_chunk_task, chunk, vconfig, tconfig, name="verify-targets")
                             for chunk in chunks]
                    with vs.timings.step("verify_and_targets"):
                        outs = [o for part in runner.compute(tasks, label=f"{len(group)} pair(s)", progress=bar,
                                                             weights=[len(c) for c in chunks])[0] for o in part]
                    new_records = []
                    for job, o in zip(group, outs):
                        decode_s += o["decode_s"]
                        decoded_s += o["decoded_audio_s"]
                        for p, fp in o["fps"].items():
                            if p in todo_set and p not in fps:
                                fps[p] = fp
                                n_decoded += 1
                                new_records.append(vs.cache_record(p, keys, fp))
                        for p, reason in o["file_errors"].items():
                            vs.file_errors.setdefault(p, reason)
                        if o["rec"] is None:
                            mp, vp = job.mix_path, job.version_path
                            results.append(vs.error_result(job.row, mp, None, vp, None))
                        else:
                            results.append(o["rec"])
                    with vs.timings.step("cache_write"):
                        vs.cache.append(new_records)
                    # targets, in candidate order (as run_targets reads verified.parquet)
                    for job, o in zip(group, outs):
                        n_seen += 1
                        if o["rec"] is None or o["rec"]["status"] != "verified":
                            continue
                        n_verified += 1
                        tbar.set_total(tbar.done + 1 + vs.n - n_seen)
                        tbar.update(1)
                        verified_ids.add(job.pair_id)
                        if ts.wanted(job.pair_id):  # counts skips (in the manifest) and duplicates as run_targets
                            ts.add(dict(job.target_row, offset_s=float(o["rec"]["offset_s"])), o["targets"])
                    del outs, tasks
                tbar.set_total(tbar.done + vs.n - n_seen)
                vs.batch_done(start, batch, {"results": results, "decoded": n_decoded, "cached": 0,
                                             "decoded_audio_s": decoded_s, "decode_s": decode_s})
        ts.close_writer()
        vs.close_cache()
    except BaseException:
        vs.abort()
        raise
    finally:
        vs.remove_tmp_cache()
    ts.drop_stale(verified_ids)
    vres = vs.finish(scheduler)
    tres = ts.finish(vres.verified_path, n_verified, vs.n, scheduler)
    return {"verify": vres, "targets": tres}


def _row_dict_plain(cand: dict) -> dict:
    """A candidate record as `run_targets` sees the same row of verified.parquet (NaN -> None, numpy -> Python)."""
    import pandas as pd

    return _row_dict(pd.Series(cand))
