"""Benchmark `pairminer verify` against bare decoding and the fpcalc-per-file route.

Generates N (mix, instrumental) pairs of realistic length (3-4 min, 44.1 kHz stereo 16-bit FLAC,
synthetic songs from pairminer.synth) once into --workdir, then measures, in the same run:

* bare decode: soundfile reads every file to float32 (one core, sequential);
* verify: run_verify(..., scheduler="synchronous", no_cache) on one core, and with --scheduler
  threads for the wall time on all cores;
* fpcalc: `fpcalc -raw -length 0 FILE` per file, sequential (the route the issue rules out).

Prints medians of --repeats runs, the ratios against the goals (verify <= 1.5x bare decode,
>= 3x faster than fpcalc, >= 1000x realtime per core), and a JSON line with every figure.

    .venv/bin/python benchmarks/bench_verify.py                 # 12 pairs (24 files)
    .venv/bin/python benchmarks/bench_verify.py --pairs 200     # the issue's "few hundred"
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402

from pairminer.storage import write_table  # noqa: E402
from pairminer.synth import make_song, shift_and_gain, write_audio  # noqa: E402
from pairminer.verify.stage import VerifyConfig, run_verify  # noqa: E402

SR = 44100


def make_corpus(workdir: Path, n_pairs: int) -> Path:
    """Write n_pairs mixes + instrumentals (3-4 min stereo FLAC) and candidates.parquet; reuse if present."""
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    rng = np.random.default_rng(0)
    for i in range(n_pairs):
        dur = float(rng.uniform(180, 240))
        mix_p, inst_p = workdir / f"mix_{i:04d}.flac", workdir / f"inst_{i:04d}.flac"
        if not (mix_p.exists() and inst_p.exists()):
            s = make_song(10_000 + i, dur, sr_hz=SR)
            write_audio(mix_p, s.mix, SR, stereo=True)
            write_audio(inst_p, shift_and_gain(s.accompaniment, SR, float(rng.uniform(-0.3, 0.3)), -1.0), SR,
                        stereo=True)
        d = sf.info(str(mix_p)).duration
        rows.append({
            "pair_id": f"m{i}__v{i}", "mix_track_id": f"m{i}", "version_track_id": f"v{i}",
            "version_kind": "instrumental", "artist": f"Artist {i}", "artist_key": f"artist {i}",
            "mix_title": f"Song {i}", "version_title": f"Song {i} (Instrumental)", "mix_match_title": f"song {i}",
            "version_match_title": f"song {i}", "genre": "Pop", "mix_duration_s": d, "version_duration_s": d,
            "duration_delta_s": 0.0, "title_score": 100.0, "n_near_best": 1, "mix_audio_path": str(mix_p),
            "version_audio_path": str(inst_p), "mix_row": 2 * i, "version_row": 2 * i + 1,
        })
    cands = workdir / f"candidates_{n_pairs}.parquet"
    write_table(cands, pd.DataFrame(rows), "candidates")
    return cands


def bare_decode(files: list[str]) -> float:
    t = time.perf_counter()
    for f in files:
        sf.read(f, dtype="float32")
    return time.perf_counter() - t


def fpcalc_route(files: list[str]) -> float:
    t = time.perf_counter()
    for f in files:
        # fpcalc 1.5 + FFmpeg 5 can exit 3 after a complete fingerprint; the output is what counts.
        out = subprocess.run(["fpcalc", "-raw", "-length", "0", f], capture_output=True, text=True, check=False)
        if "FINGERPRINT=" not in out.stdout:
            raise RuntimeError(f"fpcalc failed on {f}: {out.stderr.strip()}")
    return time.perf_counter() - t


def verify_once(cands: Path, scheduler: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        r = run_verify(cands, out, VerifyConfig(no_cache=True), scheduler=scheduler, progress=False)
        wall = time.perf_counter() - t
        report = json.loads(Path(r.report_path).read_text())
    assert r.n_verified == r.n_candidates, f"benchmark pairs should all verify: {r}"
    return wall, report


def calibrate(duration_s: float, n_seeds: int, vocal_db: float) -> None:
    """BER / contrast / residual distributions of the calibration cases (docs/verify.md)."""
    import soxr

    from pairminer.verify.fingerprint import ITEM_S, compare, fingerprint_signal, residual_share

    def fp(y):
        return fingerprint_signal(soxr.resample(y, SR, 11025))

    stats: dict[str, list[tuple[float, float, float]]] = {}
    for seed in range(n_seeds):
        rng = np.random.default_rng(1000 + seed)
        s = make_song(seed, duration_s, sr_hz=SR)
        voc = np.float32(10 ** (vocal_db / 20)) * s.vocals
        mix = fp(s.accompaniment + voc)
        other = make_song(seed + 500, duration_s, sr_hz=SR, tempo_bpm=s.tempo_bpm)
        cases = {
            "instrumental": s.accompaniment,
            "instrumental shifted+gain": shift_and_gain(s.accompaniment, SR, rng.uniform(-0.6, 0.6), rng.uniform(-4, 4)),
            "copy of the mix": s.accompaniment + voc,
            "copy shifted+gain": shift_and_gain(s.accompaniment + voc, SR, rng.uniform(-0.3, 0.3), rng.uniform(-3, 3)),
            "unrelated song, same tempo": other.mix,
            "unrelated instrumental": other.accompaniment,
        }
        for name, y in cases.items():
            v = fp(y)
            m = compare(mix.items, v.items, int(np.ceil(VerifyConfig().offset_margin_s / ITEM_S)),
                        min_overlap_items=int(VerifyConfig().min_overlap_s / ITEM_S))
            stats.setdefault(name, []).append((m.ber, m.second_ber - m.ber, residual_share(mix, v, m.offset_items)[0]))
    print(f"calibration: {n_seeds} songs of {duration_s:g} s, vocals {vocal_db:+g} dB vs synth default")
    print(f"{'case':28s} {'BER min / median / max':>24s} {'contrast min-max':>18s} {'residual min-max':>18s}")
    for name, rows in stats.items():
        a = np.array(rows)
        print(f"{name:28s} {a[:, 0].min():7.3f} {np.median(a[:, 0]):7.3f} {a[:, 0].max():7.3f}   "
              f"{a[:, 1].min():6.3f}-{a[:, 1].max():.3f}    {a[:, 2].min():6.2f}-{a[:, 2].max():.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=12, help="pairs (2 files each); the issue asks for a few hundred")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pairminer-bench-verify"))
    ap.add_argument("--scheduler", default="threads", help="scheduler for the all-cores wall time")
    ap.add_argument("--calibrate", action="store_true", help="print the threshold calibration tables instead")
    ap.add_argument("--duration", type=float, default=60.0, help="--calibrate: song length, s")
    ap.add_argument("--seeds", type=int, default=12, help="--calibrate: songs")
    ap.add_argument("--vocal-db", type=float, default=0.0, help="--calibrate: vocal level vs the synth default")
    args = ap.parse_args()
    if args.calibrate:
        calibrate(args.duration, args.seeds, args.vocal_db)
        return

    t = time.perf_counter()
    cands = make_corpus(Path(args.workdir), args.pairs)
    print(f"corpus: {args.pairs} pairs in {args.workdir} ({time.perf_counter() - t:.1f} s to make/check)")
    df = pd.read_parquet(cands)
    files = list(df["mix_audio_path"]) + list(df["version_audio_path"])
    audio_s = float(sum(sf.info(f).duration for f in files))

    bare, ver1, verN, fpc = [], [], [], []
    for _ in range(args.repeats):
        bare.append(bare_decode(files))
        ver1.append(verify_once(cands, "synchronous")[0])
        verN.append(verify_once(cands, args.scheduler)[0])
        fpc.append(fpcalc_route(files))
    med = {k: statistics.median(v) for k, v in
           {"bare_decode_s": bare, "verify_1core_s": ver1, "verify_all_cores_s": verN, "fpcalc_s": fpc}.items()}
    ratio_decode = med["verify_1core_s"] / med["bare_decode_s"]
    speedup_fpcalc = med["fpcalc_s"] / med["verify_1core_s"]
    rt_per_core = audio_s / med["verify_1core_s"]
    cores = os.cpu_count() or 1
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores, python {platform.python_version()}")
    print(f"files: {len(files)}, audio: {audio_s / 3600:.2f} h ({audio_s / len(files):.0f} s per file)")
    print(f"bare soundfile decode (1 core): {med['bare_decode_s']:.2f} s")
    print(f"verify, synchronous (1 core):   {med['verify_1core_s']:.2f} s  -> {ratio_decode:.2f}x bare decode "
          f"(goal <= 1.5x) {'OK' if ratio_decode <= 1.5 else 'MISSED'}")
    print(f"verify, {args.scheduler} ({cores} cores):     {med['verify_all_cores_s']:.2f} s")
    print(f"fpcalc -raw per file (1 core):  {med['fpcalc_s']:.2f} s  -> verify is {speedup_fpcalc:.2f}x faster "
          f"(goal >= 3x) {'OK' if speedup_fpcalc >= 3 else 'MISSED'}")
    print(f"realtime factor per core: {rt_per_core:.0f}x (goal >= 1000x) {'OK' if rt_per_core >= 1000 else 'MISSED'}")
    print(json.dumps({"pairs": args.pairs, "files": len(files), "audio_s": round(audio_s, 1), "repeats": args.repeats,
                      **{k: round(v, 3) for k, v in med.items()}, "verify_over_decode": round(ratio_decode, 3),
                      "speedup_vs_fpcalc": round(speedup_fpcalc, 2), "realtime_per_core": round(rt_per_core, 1),
                      "cores": cores}))


if __name__ == "__main__":
    main()
