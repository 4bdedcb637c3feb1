"""Planning verify and targets for 10^6 candidates with the audio faked: graph-building time and client memory.

Issue 15, "Scale of the audio stages": verify and targets plan their work per partition of candidates
(row batches of the Parquet input, `VerifyConfig.batch_pairs` / `targets.stage.READ_BATCH_ROWS`), so
the client never builds a million-task graph. This benchmark writes --rows synthetic candidates (no
audio files), fakes the audio work (file stat, fingerprint, compare, the targets pair task: cheap,
deterministic stand-ins; `--verified-share` of the pairs come out verified, each with a 1-frame
target), then runs, in this process, under the `threads` scheduler:

* verify (`run_verify`) and targets (`run_targets`) as the stages plan them, and the chained one-pass
  path (`pairminer.audiopass.run.run_pass` with both);
* the baseline: one graph for all candidates at once (a `dask.delayed` per pair, as a plan without
  partitions builds it), built only, not computed.

It reports, per run: wall time, graph-building time (time spent creating Dask tasks), the largest
graph handed to the scheduler, and the peak RSS of the process above its level before the run
(sampled every 20 ms). Prints a JSON line at the end.

    .venv/bin/python benchmarks/bench_audio_plan.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Peak RSS above the starting level, sampled by a thread."""

    def __init__(self, every_s: float = 0.02):
        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()

    def __enter__(self):
        self.base = rss_bytes()
        self.peak = self.base
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.every_s)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def above_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def write_candidates(path: Path, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pairminer.schemas import table_schema

    i = np.arange(n)
    ids = np.char.add("m", i.astype(str))
    vids = np.char.add("v", i.astype(str))
    dur = 180.0 + (i % 60)
    df = pd.DataFrame({
        "pair_id": np.char.add(np.char.add(ids, "__"), vids), "mix_track_id": ids, "version_track_id": vids,
        "version_kind": "instrumental", "artist": np.char.add("Artist ", (i // 3).astype(str)),
        "artist_key": np.char.add("artist ", (i // 3).astype(str)), "mix_title": "Song",
        "version_title": "Song (Instrumental)", "mix_match_title": "song", "version_match_title": "song",
        "genre": "Pop", "mix_duration_s": dur, "version_duration_s": dur + 0.5, "duration_delta_s": 0.5,
        "title_score": 100.0, "n_near_best": 1, "mix_audio_path": np.char.add(np.char.add("/fake/mix", i.astype(str)), ".flac"),
        "version_audio_path": np.char.add(np.char.add("/fake/inst", i.astype(str)), ".flac"), "mix_row": 2 * i,
        "version_row": 2 * i + 1,
    })
    table = table_schema("candidates").conform(df)
    pq.write_table(table, path, row_group_size=100_000)
    del df, table


def install_fakes(verified_share: float):
    """Replace the audio work with cheap stand-ins; returns the graph-size and build-time counters."""
    import dask

    from pairminer import parallel
    from pairminer.audiopass import driver
    from pairminer.targets.compute import TargetsOutcome
    from pairminer.targets.step import TargetsStep
    from pairminer.verify import cache as vcache
    from pairminer.verify import session as vsession
    from pairminer.verify import step as vstep
    from pairminer.verify.fingerprint import Fingerprint

    stats = {"build_s": 0.0, "max_graph_tasks": 0, "graphs": 0}
    fp = Fingerprint(np.arange(8, dtype=np.uint32), np.ones((3, 16), np.float32), 240.0, 44100, 2)
    every = max(1, int(round(1 / verified_share))) if verified_share > 0 else 0

    def fake_key(path, max_seconds):
        return f"k-{path}", 1000, 1

    def fake_decode(path, requests):
        return [(np.zeros(8, np.float32), None)] * len(requests)

    def status_of(row):
        return "verified" if every and row % every == 0 else "too_different"

    def fake_compare(pairs, mix_fps, ver_fps, config, kinds=None):
        return [{"row": r, "ber": 0.2, "offset_s": 0.1, "overlap_s": 200.0, "overlap_share": 1.0,
                 "residual_share": 0.3, "excess_share": 0.01, "version_gain_db": -1.0, "second_ber": 0.45,
                 "align_peak_ratio": 9.0, "search_radius_s": 3.5, "mix_s": 240.0, "status": status_of(r),
                 "reason": None} for r, _d in pairs]

    def fake_frames(config):
        return np.ones((1, 3, config.bins), np.float16)

    stats_t = {"duration_s": 240.0, "offset_s": 0.1, "fingerprint_offset_s": 0.1, "gain_db": -1.0,
               "align_peak_ratio": 9.0, "align_at_edge": False, "version_coverage": 1.0, "vocal_energy_ratio": 0.2,
               "vocal_frame_share": 0.5, "n_frames": 1, "cover_start_frame": 0, "cover_stop_frame": 1}

    def fake_targets(self, job, audio, result):
        return TargetsOutcome(frames=fake_frames(self.config), stats=dict(stats_t))

    real_delayed = dask.delayed

    def timed_delayed(*a, **k):
        t = time.perf_counter()
        out = real_delayed(*a, **k)
        stats["build_s"] += time.perf_counter() - t
        return out

    real_compute = parallel.Runner.compute

    def counting_compute(self, *collections, **kw):
        n = sum(len(c) if isinstance(c, (list, tuple)) else 1 for c in collections)
        stats["max_graph_tasks"] = max(stats["max_graph_tasks"], n)
        stats["graphs"] += 1
        return real_compute(self, *collections, **kw)

    # The fingerprint cache is faked too: its per-batch lookup reads every part written so far, which
    # grows with the number of batches (see docs/benchmarks.md); here it would dominate the figures.
    vcache.FingerprintCache.lookup = lambda self, keys: {}
    vcache.FingerprintCache.append = lambda self, records: None
    vsession.file_key = fake_key
    driver.decode = fake_decode
    vstep.VerifyStep.make_product = lambda self, path, got: fp
    vstep.compare_pairs = fake_compare
    TargetsStep.run = fake_targets
    dask.delayed = timed_delayed
    parallel.Runner.compute = counting_compute
    # The file digest of the cache key would stat /fake paths: the fake key above skips it.
    return stats


def measure(label: str, fn, stats: dict) -> dict:
    stats.update(build_s=0.0, max_graph_tasks=0, graphs=0)
    with PeakRSS() as mem:
        t = time.perf_counter()
        fn()
        wall = time.perf_counter() - t
    row = {"run": label, "wall_s": round(wall, 2), "graph_build_s": round(stats["build_s"], 3),
           "max_graph_tasks": stats["max_graph_tasks"], "graphs": stats["graphs"],
           "peak_rss_above_start_mib": round(mem.above_mib, 1)}
    print(f"{label:34s} wall {wall:7.2f} s  graph building {stats['build_s']:6.3f} s  largest graph "
          f"{stats['max_graph_tasks']:>9,} tasks in {stats['graphs']:>4} graphs  peak RSS +{mem.above_mib:7.1f} MiB")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--verified-share", type=float, default=0.1)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pairminer-bench-audio-plan"))
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cands = work / "candidates.parquet"
    t = time.perf_counter()
    write_candidates(cands, args.rows)
    print(f"{args.rows:,} synthetic candidates written in {time.perf_counter() - t:.1f} s; audio faked; "
          f"{args.verified_share:.0%} verified; threads scheduler; RSS before {rss_bytes() / 2**20:.0f} MiB")

    from pairminer.audiopass.run import run_pass
    from pairminer.targets.config import TargetsConfig
    from pairminer.targets.stage import run_targets
    from pairminer.verify.config import VerifyConfig
    from pairminer.verify.stage import run_verify

    stats = install_fakes(args.verified_share)
    vcfg = VerifyConfig(cache_dir=str(work / "cache"))
    # Small frames, and a rate and hop that make the planner expect ~170 pairs per batch of targets.
    tcfg = TargetsConfig(sr=1000, n_fft=32, hop=16)
    rows = []

    def baseline():
        # One task per pair for all candidates at once, built and not computed (what a plan without partitions holds).
        import dask
        import pyarrow.parquet as pq

        table = pq.read_table(cands).to_pandas()
        tasks = [dask.delayed(len, pure=False)(r) for r in table.itertuples(index=False)]
        stats["max_graph_tasks"], stats["graphs"] = len(tasks), 1
        del tasks, table

    rows.append(measure("verify (per batch of rows)",
                        lambda: run_verify(cands, work / "sep", vcfg, scheduler="threads", progress=False), stats))
    rows.append(measure("targets (per batch of rows)",
                        lambda: run_targets(work / "sep" / "verified.parquet", work / "sep" / "targets", tcfg,
                                            scheduler="threads", progress=False), stats))
    shutil.rmtree(work / "cache", ignore_errors=True)
    rows.append(measure("chained verify + targets",
                        lambda: run_pass(str(cands), {"verify": str(work / "fused"),
                                                      "targets": str(work / "fused" / "targets")},
                                         {"verify": vcfg, "targets": tcfg}, scheduler="threads", progress=False),
                        stats))
    rows.append(measure("baseline: one graph, all candidates", baseline, stats))  # last: it leaves the heap grown
    base = rows[-1]
    for r in rows[:-1]:
        r["graph_build_vs_baseline"] = round(r["graph_build_s"] / base["graph_build_s"], 3) if base["graph_build_s"] else None
        r["peak_rss_vs_baseline"] = round(r["peak_rss_above_start_mib"] / base["peak_rss_above_start_mib"], 3) \
            if base["peak_rss_above_start_mib"] > 0 else None
    print(json.dumps({"rows": args.rows, "verified_share": args.verified_share, "runs": rows}))


if __name__ == "__main__":
    main()
