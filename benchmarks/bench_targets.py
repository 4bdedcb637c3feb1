"""Benchmark of `pairminer targets` against the bare decode of the same files, measured in the same run.

Generates N pairs of 3-4 min songs (mix + instrumental shifted by 0.3 s and -2 dB, stereo, 44.1 kHz),
then times, R times each on one core (Dask "synchronous" scheduler):

* baseline: `pairminer.audio.load_audio` of both files of every pair (decode, downmix, soxr to 8192 Hz);
* stage:    `run_targets` on the same pairs into a fresh folder (decode + align + gain + STFT + shards).

Goals (issue 4): stage <= 2x the bare decode, and >= 300x realtime per core.

    .venv/bin/python benchmarks/bench_targets.py            # 4 pairs, FLAC, 3 repeats
    .venv/bin/python benchmarks/bench_targets.py --pairs 16 --format wav --repeats 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from pairminer.audio import load_audio
from pairminer.synth import make_song, shift_and_gain, write_audio
from pairminer.targets.stage import TargetsConfig, run_targets


def make_pairs(folder: Path, n: int, fmt: str, seed0: int = 1000) -> tuple[Path, float]:
    rows, total_s = [], 0.0
    for i in range(n):
        duration_s = 180.0 + 60.0 * ((i * 7) % 10) / 10  # 3-4 min
        st = make_song(seed0 + i, duration_s=duration_s)
        mix, ver = folder / f"mix{i}.{fmt}", folder / f"inst{i}.{fmt}"
        write_audio(mix, st.mix, st.sr_hz, stereo=True)
        write_audio(ver, shift_and_gain(st.accompaniment, st.sr_hz, 0.3, -2.0), st.sr_hz, stereo=True)
        rows.append({"pair_id": f"m{i}__v{i}", "mix_track_id": f"m{i}", "version_track_id": f"v{i}",
                     "version_kind": "instrumental", "artist": f"Artist {i}", "artist_key": f"artist {i}",
                     "genre": "pop", "mix_duration_s": duration_s, "status": "verified", "offset_s": 0.42,
                     "mix_audio_path": str(mix), "version_audio_path": str(ver)})
        total_s += duration_s
    path = folder / "verified.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path, total_s


def bare_decode(verified: Path, sr_hz: int) -> float:
    df = pd.read_parquet(verified)
    t = time.perf_counter()
    for _, r in df.iterrows():
        load_audio(r["mix_audio_path"], sr_hz)
        load_audio(r["version_audio_path"], sr_hz)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--format", choices=("flac", "wav"), default="flac")
    ap.add_argument("--scheduler", default="synchronous", help="synchronous = one core (the per-core figure)")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench_targets_"))
    try:
        t = time.perf_counter()
        verified, audio_s = make_pairs(work, args.pairs, args.format)
        print(f"generated {args.pairs} pairs, {audio_s / 60:.1f} min of mix audio ({args.format}, stereo 44.1 kHz) "
              f"in {time.perf_counter() - t:.1f} s", flush=True)
        cfg = TargetsConfig()
        bare_decode(verified, cfg.sr)  # warm the page cache and the libraries
        run_targets(verified, work / "warm", cfg, scheduler=args.scheduler, progress=False)
        decode, stage = [], []
        for r in range(args.repeats):
            decode.append(bare_decode(verified, cfg.sr))
            out = work / f"out{r}"
            t = time.perf_counter()
            res = run_targets(verified, out, cfg, scheduler=args.scheduler, progress=False)
            stage.append(time.perf_counter() - t)
            assert res.counts["written"] == args.pairs, res.counts
            shutil.rmtree(out)
        d, s = statistics.median(decode), statistics.median(stage)
        cores = 1 if args.scheduler == "synchronous" else _cores()
        print(f"bare decode (both files): median {d:.3f} s  runs {[round(x, 3) for x in decode]}")
        print(f"targets stage:            median {s:.3f} s  runs {[round(x, 3) for x in stage]}")
        print(f"ratio stage / bare decode: {s / d:.2f}x   (goal <= 2x)")
        print(f"realtime: {audio_s / s:.0f}x on {cores} core(s) = {audio_s / s / cores:.0f}x per core   (goal >= 300x)")
        print(f"bare decode alone: {audio_s / d / cores:.0f}x realtime per core")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
