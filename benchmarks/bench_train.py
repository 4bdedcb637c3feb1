"""Benchmark: train the bundled U-Net on generated songs for a fixed CPU budget, then score it.

1. Generate `--train-songs` songs with pairminer.synth at the model rate (8192 Hz) and write their
   targets as the targets stage's format: centred Hann STFT (librosa, n_fft 1024, hop 768),
   channels |mix|, |accompaniment|, max(|mix| - |accompaniment|, 0), float16 shards via
   pairminer.shards.ShardWriter, and a manifest (80% train / 20% valid pairs). The stems are known,
   so the gain is 1 and no alignment is needed.
2. Train the paper-size network (512 x 128 patches, 16..512 channels) for `--budget-s` seconds.
3. Separate `--test-songs` held-out songs (other seeds, written as 16 kHz WAV) with the CLI's code
   path (decode, resample, patches, iSTFT, resample back) and score vocals with BSS Eval v4
   (museval): model, the mixture as the estimate, and the IRM oracle through the same chain.

Prints the vocals SDR medians and the model's gain over the mixture baseline (the goal: >= 6 dB).

Run: .venv/bin/python benchmarks/bench_train.py [--budget-s 240] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_targets(folder: Path, seeds: list[int], duration_s: float, sr_hz: int, n_fft: int, hop: int) -> Path:
    import librosa

    from pairminer.shards import ShardWriter
    from pairminer.synth import make_song

    rows = []

    def on_seal(rel, entries):
        for key, start, n in entries:
            rows[key].update(shard=rel, start_frame=start, n_frames=n)

    writer = ShardWriter(folder, n_fft // 2 + 1, capacity_frames=4096, on_seal=on_seal)
    for k, seed in enumerate(seeds):
        stems = make_song(seed, duration_s, sr_hz=sr_hz)
        spec = {name: np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, window="hann", center=True))
                for name, y in (("mix", stems.mix), ("acc", stems.accompaniment))}
        vocal = np.maximum(spec["mix"] - spec["acc"], 0.0)
        frames = np.stack([spec["mix"], spec["acc"], vocal], axis=1).transpose(2, 1, 0)  # (frames, 3, bins)
        rows.append({"pair_id": f"song{seed}__inst{seed}", "mix_track_id": f"song{seed}",
                     "version_track_id": f"inst{seed}", "version_kind": "instrumental", "artist": f"artist {seed}",
                     "sr_hz": sr_hz, "n_fft": n_fft, "hop": hop, "window": "hann",
                     "split": "valid" if k % 5 == 4 else "train"})
        writer.add(k, frames)
    writer.close()
    pd.DataFrame(rows).to_parquet(folder / "manifest.parquet")
    return folder


def write_test_songs(folder: Path, seeds: list[int], duration_s: float, sr_hz: int) -> tuple[Path, Path, list[Path]]:
    import soundfile as sf

    from pairminer.synth import make_song

    refs, mixes = folder / "references", []
    for seed in seeds:
        stems = make_song(seed, duration_s, sr_hz=sr_hz)
        (refs / f"song{seed}").mkdir(parents=True)
        sf.write(refs / f"song{seed}" / "vocals.wav", stems.vocals, sr_hz, subtype="FLOAT")
        sf.write(refs / f"song{seed}" / "instrumental.wav", stems.accompaniment, sr_hz, subtype="FLOAT")
        mixes.append(folder / f"song{seed}.wav")
        sf.write(mixes[-1], stems.mix, sr_hz, subtype="FLOAT")
    return refs, folder / "estimates", mixes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-s", type=float, default=240.0, help="training wall time")
    ap.add_argument("--train-songs", type=int, default=40)
    ap.add_argument("--test-songs", type=int, default=5)
    ap.add_argument("--duration-s", type=float, default=30.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3, help="higher than the paper's 1e-4 for a short budget")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on a shared 2-core box)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--keep", default=None, help="folder to keep the data and run in (default: a temp folder)")
    args = ap.parse_args()

    import torch

    from pairminer.cli.train import separate_files
    from pairminer.train import TrainConfig, run_train
    from pairminer.train.evaluate import run_evaluate

    torch.set_num_threads(args.threads)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_train_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    targets = make_targets(work / "targets", list(range(1000, 1000 + args.train_songs)), args.duration_s,
                           8192, 1024, 768)
    refs, est, mixes = write_test_songs(work / "test", list(range(5000, 5000 + args.test_songs)), args.duration_s,
                                        16000)
    t_data = time.perf_counter() - t0

    cfg = TrainConfig(batch_size=args.batch_size, lr=args.lr, epochs=10_000, time_budget_s=args.budget_s,
                      valid_every=100, log_every=10, num_workers=1, valid_patches=16, device=args.device)
    res = run_train(targets, work / "run", cfg, progress=False)
    report = json.loads(Path(res.report_path).read_text())
    sep = separate_files([str(m) for m in mixes], [res.run_dir], str(est), device=args.device, progress=False)
    ev = run_evaluate(est, refs, work / "eval.json", oracle="irm", progress=False)
    med = ev.doc["medians"]
    voc = {m: med[m]["vocals"]["SDR"] for m in ("model", "mixture", "irm")}
    per_track = [r["SDR"] for r in ev.doc["scores"] if r["method"] == "model" and r["source"] == "vocals"]

    print(f"machine: {torch.get_num_threads()} torch thread(s), device {report['device']}, torch {torch.__version__}")
    print(f"data: {args.train_songs} train songs x {args.duration_s:.0f} s ({report['data']['pairs']['train']} train / "
          f"{report['data']['pairs']['valid']} valid pairs), {args.test_songs} held-out songs; made in {t_data:.1f} s")
    print(f"train: {res.step} steps x {args.batch_size} patches in {report['timings']['train']:.0f} s, "
          f"{report['throughput']['patches_per_s']} patches/s (last interval), data wait share "
          f"{report['throughput']['data_wait_share']}; validation L1 {res.last_valid_loss:.5f} (best {res.best_valid_loss:.5f})")
    print(f"separate: realtime factor {sep['realtime_factor']}x on {sep['device']}")
    print(f"vocals SDR (median over {len(per_track)} tracks, dB): model {voc['model']:.2f}, mixture {voc['mixture']:.2f}, "
          f"IRM oracle {voc['irm']:.2f}; per-track model median {statistics.median(per_track):.2f}")
    gain = voc["model"] - voc["mixture"]
    print(f"model - mixture = {gain:+.2f} dB (goal >= +6 dB: {'met' if gain >= 6 else 'NOT met'}); "
          f"share of the oracle's gain: {gain / (voc['irm'] - voc['mixture']):.2f}")
    print(f"outputs in {work}")


if __name__ == "__main__":
    main()
