"""The audio pass (verify + targets, and + stems), against a bare decode (and encode) of the same files.

Generates --pairs (mix, instrumental) pairs of 3-4 min songs (pairminer.synth), half as 44.1 kHz stereo
FLAC and half as 192 kbit/s MP3 (as real catalogs mix them), then, in the same process, interleaved per
repeat, on one core (Dask "synchronous") unless said:

* bare decode: `soundfile.read` of every file to float32 (libsndfile decodes MP3 too);
* separate: verify (no cache), then targets on its verified.parquet (each file decoded twice);
* chained: `pairminer.audiopass.run.run_pass` with verify and targets, the one-pass path the workflow
  runner takes when both stages run (one decode per file), with the same outputs; on one core and with
  the "threads" scheduler (both cores);
* chained with stems: verify + targets + stems in one pass ("threads"), against the bare decode plus a
  bare encode of the stems it writes (`soundfile.write` of mixture, vocals, instrumental, PCM_16);
* a cProfile of the chained pass, summed into groups: decode (soundfile / ffmpeg subprocess), resampling
  (soxr), Chromaprint, band envelope, compare, STFT (librosa), gain, shard and Parquet writes, plotting.

Prints medians of --repeats runs, the ratio (goal <= 1.5x) and the groups, plus a JSON line.

    .venv/bin/python benchmarks/bench_chain.py --pairs 4 --repeats 5
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402

from pairminer.audiopass.run import run_pass  # noqa: E402
from pairminer.stems.config import StemsConfig  # noqa: E402
from pairminer.storage import write_table  # noqa: E402
from pairminer.synth import make_song, shift_and_gain, write_audio  # noqa: E402
from pairminer.synth_cases import write_lossy  # noqa: E402
from pairminer.targets.stage import TargetsConfig, run_targets  # noqa: E402
from pairminer.verify.stage import VerifyConfig, run_verify  # noqa: E402

SR = 44100
GROUPS = (  # (group, substrings of "file:function" in the profile), first match wins, by own time
    ("decode: ffmpeg subprocess", ("subprocess", "communicate", "_try_wait", "select", "poll")),
    ("decode: soundfile", ("soundfile",)),
    ("resample: soxr", ("soxr",)),
    ("chromaprint", ("chromaprint",)),
    ("band envelope", ("band_energies", "reduceat")),
    ("compare (BER, PHAT, residual)", ("ber_by_offset", "bitwise_count", "envelope_peak_ratio", "residual_stats",
                                        "quantile", "partition")),
    ("STFT (librosa)", ("librosa", "stft")),
    ("alignment (GCC-PHAT)", ("refine_offset",)),
    ("waveform alignment + subtraction (stems)", ("stems/",)),
    ("gain", ("estimate_gain", "histogram", "convolve")),
    ("shard write", ("shards.py", "np.save", "format.py", "fsync")),
    ("parquet/json", ("parquet", "pyarrow", "storage.py")),
    ("plotting", ("matplotlib", "_plot")),
)


def make_pairs(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        dur = float(rng.uniform(180, 240))
        mp3 = i % 2 == 1
        mix_p = folder / f"mix_{i}.{'mp3' if mp3 else 'flac'}"
        inst_p = folder / f"inst_{i}.{'mp3' if mp3 else 'flac'}"
        if not (mix_p.exists() and inst_p.exists()):
            s = make_song(20_000 + i, dur, sr_hz=SR, vocal_db=-5.0)
            inst = shift_and_gain(s.accompaniment, SR, float(rng.uniform(-0.3, 0.3)), -1.0)
            if mp3:
                write_lossy(mix_p, s.mix, SR, "mp3", 192)
                write_lossy(inst_p, inst, SR, "mp3", 192)
            else:
                write_audio(mix_p, s.mix, SR, stereo=True)
                write_audio(inst_p, inst, SR, stereo=True)
        d_mix, d_inst = sf.info(str(mix_p)).duration, sf.info(str(inst_p)).duration
        rows.append({
            "pair_id": f"m{i}__v{i}", "mix_track_id": f"m{i}", "version_track_id": f"v{i}",
            "version_kind": "instrumental", "artist": f"Artist {i}", "artist_key": f"artist {i}",
            "mix_title": f"Song {i}", "version_title": f"Song {i} (Instrumental)", "mix_match_title": f"song {i}",
            "version_match_title": f"song {i}", "genre": "Pop", "mix_duration_s": d_mix, "version_duration_s": d_inst,
            "duration_delta_s": d_inst - d_mix, "title_score": 100.0, "n_near_best": 1,
            "mix_audio_path": str(mix_p), "version_audio_path": str(inst_p), "mix_row": 2 * i, "version_row": 2 * i + 1,
        })
    cands = folder / f"candidates_{n}.parquet"
    write_table(cands, pd.DataFrame(rows), "candidates")
    return cands


def bare(files: list[str]) -> float:
    t = time.perf_counter()
    for f in files:
        sf.read(f, dtype="float32")
    return time.perf_counter() - t


def chain(cands: Path, out: Path) -> tuple[float, float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    v = run_verify(cands, out, VerifyConfig(no_cache=True), scheduler="synchronous", progress=False)
    t_v = time.perf_counter() - t
    t = time.perf_counter()
    r = run_targets(v.verified_path, out / "targets", TargetsConfig(), scheduler="synchronous", progress=False)
    return t_v, time.perf_counter() - t, {"verified": v.n_verified, "written": r.counts["written"]}


def fused(cands: Path, out: Path, scheduler: str = "synchronous", stems: bool = False) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    outs = {"verify": str(out), "targets": str(out / "targets")}
    configs = {"verify": VerifyConfig(no_cache=True), "targets": TargetsConfig()}
    if stems:
        outs["stems"], configs["stems"] = str(out / "stems"), StemsConfig()
    t = time.perf_counter()
    r = run_pass(str(cands), outs, configs, scheduler=scheduler, progress=False)
    counts = {"verified": r["verify"].n_verified, "written": r["targets"].counts["written"]}
    if stems:
        counts["stems"] = r["stems"].counts["written"]
    return time.perf_counter() - t, counts


def bare_encode(stems_root: Path) -> float:
    """Seconds to encode the stems the pass wrote (read first, untimed), as soundfile writes them."""
    meta = pd.read_parquet(stems_root / "metadata.parquet")
    arrays = [(sf.read(str(stems_root / p / f"{k}.wav"), dtype="int16")[0], int(sr))
              for p, sr in zip(meta["path"], meta["sample_rate"]) for k in ("mixture", "vocals", "instrumental")]
    tmp = stems_root.parent / "bare-encode"
    tmp.mkdir(exist_ok=True)
    t = time.perf_counter()
    for i, (a, sr) in enumerate(arrays):
        sf.write(str(tmp / f"{i}.wav"), a, sr, subtype="PCM_16")
    dt = time.perf_counter() - t
    shutil.rmtree(tmp)
    return dt


def profile_groups(cands: Path, out: Path) -> dict[str, float]:
    prof = cProfile.Profile()
    prof.enable()
    fused(cands, out)
    prof.disable()
    st = pstats.Stats(prof)
    groups: dict[str, float] = {}
    for (file, _line, func), (_cc, _nc, tottime, _ct, _callers) in st.stats.items():
        key = f"{file}:{func}"
        name = next((g for g, subs in GROUPS if any(s in key for s in subs)), "other")
        groups[name] = groups.get(name, 0.0) + tottime
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pairminer-bench-chain"))
    args = ap.parse_args()
    work = Path(args.workdir)
    cands = make_pairs(work / "audio", args.pairs)
    df = pd.read_parquet(cands)
    files = list(df["mix_audio_path"]) + list(df["version_audio_path"])
    audio_h = float((df["mix_duration_s"] + df["version_duration_s"]).sum()) / 3600
    b, v, t, f, ft, fs, enc = [], [], [], [], [], [], []
    fused(cands, work / "warm", stems=True)  # imports and first-call set-up (numba, matplotlib) out of the timed runs
    for _ in range(args.repeats):
        b.append(bare(files))
        tv, tt, counts = chain(cands, work / "out")
        v.append(tv)
        t.append(tt)
        tf, fcounts = fused(cands, work / "out-fused")
        f.append(tf)
        ft.append(fused(cands, work / "out-fused-threads", "threads")[0])
        ts, scounts = fused(cands, work / "out-stems", "threads", stems=True)
        fs.append(ts)
        enc.append(bare_encode(work / "out-stems" / "stems"))
    mb, mv, mt, mf, mft, mfs, menc = (statistics.median(x) for x in (b, v, t, f, ft, fs, enc))
    groups = profile_groups(cands, work / "out-prof")
    total = sum(groups.values())
    print(f"{len(files)} files, {audio_h:.2f} h of audio (half FLAC stereo, half MP3), one core, {counts}")
    print(f"bare soundfile decode        {mb:7.2f} s")
    print(f"separate: verify             {mv:7.2f} s  ({mv / mb:.2f}x)")
    print(f"separate: targets            {mt:7.2f} s  ({mt / mb:.2f}x)")
    print(f"separate: verify + targets   {mv + mt:7.2f} s  ({(mv + mt) / mb:.2f}x bare decode)")
    print(f"chained, one core            {mf:7.2f} s  ({mf / mb:.2f}x bare decode) {fcounts}")
    print(f"chained, threads ({os.cpu_count()} cores)    {mft:7.2f} s  ({mft / mb:.2f}x bare decode; goal <= 1.5x)")
    print(f"chained + stems, threads     {mfs:7.2f} s  ({mfs / (mb + menc):.2f}x bare decode + bare encode "
          f"{mb + menc:.2f} s; goal <= 2x) {scounts}")
    print("where the time goes (cProfile own time, chained verify + targets, one core):")
    for g, s in groups.items():
        print(f"  {g:32s} {s:6.2f} s  {100 * s / total:5.1f}%")
    print(json.dumps({"files": len(files), "bare_s": mb, "verify_s": mv, "targets_s": mt, "chained_s": mf,
                      "chained_threads_s": mft, "ratio_separate": (mv + mt) / mb, "ratio_chained": mf / mb,
                      "ratio_chained_threads": mft / mb, "stems_s": mfs, "bare_encode_s": menc,
                      "ratio_stems": mfs / (mb + menc), "groups_s": groups}))


if __name__ == "__main__":
    main()
