"""Benchmarks of the bundled U-Net: quality on generated songs, full-band rules, device checks, streaming.

Modes (``--mode``):

* ``quality`` (default): generate `--train-songs` songs with pairminer.synth, write their targets in the
  targets stage's format (centred Hann STFT, |mix|, |accompaniment|, max(|mix| - |acc|, 0), float16
  shards through pairminer.shards.ShardWriter, a manifest with cover columns, 80/20 train/valid by
  artist), train with the DEFAULT TrainConfig for `--budget-s` seconds, separate `--test-songs`
  held-out songs (other seeds, 44.1 kHz stereo) full band with `pairminer.train.separate_files`, and
  score with museval: model, mixture, IRM at the model's STFT and the full-band IRM. Prints the gain
  over the mixture (goal >= 8 dB within 30 min of CPU).
* ``fullband``: the mask-extension rules above the model's band, scored with the model-STFT IRM as
  the mask (so the rule alone is measured, not a model's errors), on held-out 44.1 kHz songs.
* ``device``: every GPU check in one run (`--device cuda`; it also runs on CPU as a smoke check):
  patches/s with the real loader vs random tensors already on the device (the data-wait share),
  bf16 autocast and torch.compile on and off, separation realtime factor, and the machine.
* ``draw``: patch draws for 10^5 pairs against the old sampler's ``rng.choice(p=...)`` baseline.
* ``stream``: write a generated shard set of `--stream-gb` GB and measure sequential read throughput
  and the random-patch rate of the trainer's sampler over it (cold-ish: pages dropped with
  posix_fadvise DONTNEED before each test).

Run: python benchmarks/bench_train.py --mode quality --budget-s 1800
     python benchmarks/bench_train.py --mode device --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RECIPES = {"jansson": (8192, 1024, 768), "hires": (22050, 2048, 512)}


def make_targets(folder: Path, seeds: list[int], duration_s: float, sr_hz: int, n_fft: int, hop: int) -> Path:
    """A targets folder from synth songs (the stems are known, so the gain is 1 and no alignment is needed)."""
    from pairminer.shards import ShardWriter
    from pairminer.synth import make_song
    import torch

    from pairminer.train.separate import stft

    if folder.joinpath("manifest.parquet").exists():
        return folder
    rows = []

    def on_seal(rel, entries):
        for key, start, n in entries:
            rows[key].update(shard=rel, start_frame=start, n_frames=n)

    writer = ShardWriter(folder, n_fft // 2 + 1, capacity_frames=8192, on_seal=on_seal)
    for k, seed in enumerate(seeds):
        stems = make_song(seed, duration_s, sr_hz=sr_hz)
        spec = {name: stft(torch.from_numpy(y), n_fft, hop).abs().numpy()
                for name, y in (("mix", stems.mix), ("acc", stems.accompaniment))}
        vocal = np.maximum(spec["mix"] - spec["acc"], 0.0)
        frames = np.stack([spec["mix"], spec["acc"], vocal], axis=1).transpose(2, 1, 0)  # (frames, 3, bins)
        n = frames.shape[0]
        rows.append({"pair_id": f"song{seed}__inst{seed}", "mix_track_id": f"song{seed}",
                     "version_track_id": f"inst{seed}", "version_kind": "instrumental", "artist": f"artist {seed}",
                     "sr_hz": sr_hz, "n_fft": n_fft, "hop": hop, "window": "hann",
                     "cover_start_frame": 0, "cover_stop_frame": n,
                     "split": "valid" if k % 5 == 4 else "train"})
        writer.add(k, frames)
    writer.close()
    pd.DataFrame(rows).to_parquet(folder / "manifest.parquet")
    return folder


def _stereo(y: np.ndarray, sr_hz: int) -> np.ndarray:
    """A linear stereo image (right = 0.8 * y + 0.2 * y delayed 0.4 ms), so mix = vocals + acc per channel."""
    d = max(1, int(0.0004 * sr_hz))
    right = 0.8 * y.copy()
    right[d:] += 0.2 * y[:-d]
    return np.stack([y, right], axis=1).astype(np.float32)


def write_test_songs(folder: Path, seeds: list[int], duration_s: float, sr_hz: int):
    import soundfile as sf

    from pairminer.synth import make_song

    refs, mixes = folder / "references", []
    for seed in seeds:
        stems = make_song(seed, duration_s, sr_hz=sr_hz)
        (refs / f"song{seed}").mkdir(parents=True, exist_ok=True)
        v, a = _stereo(stems.vocals, sr_hz), _stereo(stems.accompaniment, sr_hz)
        sf.write(refs / f"song{seed}" / "vocals.wav", v, sr_hz, subtype="FLOAT")
        sf.write(refs / f"song{seed}" / "instrumental.wav", a, sr_hz, subtype="FLOAT")
        mixes.append(folder / f"song{seed}.wav")
        sf.write(mixes[-1], v + a, sr_hz, subtype="FLOAT")
    return refs, mixes


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPU(s), torch {torch.__version__} "
            f"({torch.get_num_threads()} thread(s)), {gpu}")


def mode_quality(args) -> None:
    import torch

    from pairminer.train import TrainConfig, run_train
    from pairminer.train.evaluate import run_evaluate
    from pairminer.train.separate import separate_files

    sr, n_fft, hop = RECIPES[args.recipe]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_train_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    targets = make_targets(work / f"targets-{args.recipe}", list(range(1000, 1000 + args.train_songs)),
                           args.duration_s, sr, n_fft, hop)
    refs, mixes = write_test_songs(work / "test", list(range(5000, 5000 + args.test_songs)), args.duration_s, 44100)
    t_data = time.perf_counter() - t0
    overrides = json.loads(args.config) if args.config else {}
    cfg = TrainConfig(time_budget_s=args.budget_s, device=args.device, **overrides)
    run = work / f"run-{args.tag or args.recipe}"
    res = run_train(targets, run, cfg, progress=False, resume=run.joinpath("checkpoint-last.pt").exists())
    report = json.loads(Path(res.report_path).read_text())
    out = {}
    for extend in args.extend.split(","):
        est = work / f"est-{args.tag or args.recipe}-{extend}"
        sep = separate_files([str(m) for m in mixes], [res.run_dir], str(est), device=args.device, progress=False,
                             extend=extend, overwrite=True)
        ev = run_evaluate(est, refs, work / f"eval-{extend}.json", oracle="irm", model_sr_hz=sr, n_fft=n_fft, hop=hop,
                          progress=False)
        out[extend] = (sep, ev.doc["medians"])
    print(f"machine: {machine()}")
    print(f"data: {args.train_songs} train songs x {args.duration_s:.0f} s at {sr}/{n_fft}/{hop} "
          f"({report['data']['pairs']['train']} train / {report['data']['pairs']['valid']} valid pairs), "
          f"{args.test_songs} held-out 44.1 kHz stereo songs; made in {t_data:.1f} s")
    print(f"train: {res.step} steps in {report['timings']['train']:.0f} s, {report['throughput']['patches_per_s']} "
          f"patches/s, data wait {report['throughput']['data_wait_share']}; valid L1 {res.last_valid_loss:.5f}, "
          f"valid magnitude SDR {res.valid_sdr_db:.2f} dB ({res.valid_sdr_db - res.valid_mix_sdr_db:+.2f} over the "
          f"mixture), stopped early: {res.stopped_early}")
    for extend, (sep, med) in out.items():
        voc = {m: med[m]["vocals"]["SDR"] for m in med}
        gain = voc["model"] - voc["mixture"]
        print(f"extend={extend}: vocals SDR model {voc['model']:.2f}, mixture {voc['mixture']:.2f}, IRM(model STFT) "
              f"{voc['irm']:.2f}, IRM(full band) {voc['irm_fullband']:.2f}; instrumental SDR model "
              f"{med['model']['instrumental']['SDR']:.2f}; gain over mixture {gain:+.2f} dB "
              f"(goal >= +8: {'met' if gain >= 8 else 'NOT met'}); separate {sep['realtime_factor']}x realtime")
    print(f"outputs in {work}")


def mode_fullband(args) -> None:
    """Score the extension rules with the model-STFT IRM as the mask."""
    import torch

    from pairminer.synth import make_song
    from pairminer.train.evaluate import bss_eval, irm_fullband_estimates
    from pairminer.train.separate import EXTEND_RULES, _resample, input_stft, istft, map_mask, stft

    scores: dict[str, list[float]] = {}
    for recipe in args.recipes.split(","):
        sr_m, n_fft, hop = RECIPES[recipe]
        for seed in range(7000, 7000 + args.test_songs):
            st = make_song(seed, args.duration_s, sr_hz=44100)
            refs = {"vocals": st.vocals, "instrumental": st.accompaniment}
            low = {s: torch.from_numpy(_resample(v, 44100, sr_m)) for s, v in refs.items()}
            pv, pi = (stft(low[s], n_fft, hop).abs() ** 2 for s in ("vocals", "instrumental"))
            mask = pv / (pv + pi).clamp_min(1e-12)
            n_in, hop_in = input_stft(n_fft, sr_m, 44100)
            mix = torch.from_numpy(st.mix)
            spec = stft(mix, n_in, hop_in)
            for rule in EXTEND_RULES:
                m = map_mask(mask, model_sr_hz=sr_m, n_fft=n_fft, hop=hop, sr_hz=44100, n_fft_in=n_in, hop_in=hop_in,
                             frames_in=spec.shape[-1], extend=rule)
                v = istft(spec * m, n_in, hop_in, len(st.mix)).numpy()
                sc = bss_eval(refs, {"vocals": v, "instrumental": st.mix - v}, 44100)
                scores.setdefault(f"{recipe} {rule}", []).append(sc["vocals"]["SDR"])
            fb = irm_fullband_estimates(refs, 44100, model_sr_hz=sr_m, n_fft=n_fft)
            scores.setdefault(f"{recipe} full-band IRM (ceiling)", []).append(bss_eval(refs, fb, 44100)["vocals"]["SDR"])
            scores.setdefault(f"{recipe} mixture", []).append(bss_eval(refs, {"vocals": st.mix, "instrumental": st.mix},
                                                                       44100)["vocals"]["SDR"])
    print(f"machine: {machine()}")
    print(f"vocals SDR, median over {args.test_songs} held-out 44.1 kHz songs of {args.duration_s:.0f} s "
          "(model-STFT IRM as the mask, extended above the model's band by each rule):")
    for k, v in scores.items():
        print(f"  {k:<40} {statistics.median(v):7.2f} dB")


def mode_device(args) -> None:
    """Every device check in one run: data wait, bf16/compile on/off, separation realtime factor."""
    import torch

    from pairminer.train import TrainConfig
    from pairminer.train.data import PatchBatches, PatchSampler, read_manifest
    from pairminer.train.loop import resolve_device, train_step
    from pairminer.train.model import UNet, normalise_patch
    from pairminer.train.separate import Separator, separate_signal

    dev = resolve_device(args.device)
    cuda = dev.type == "cuda"
    smoke = args.smoke
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_dev_"))
    sr, n_fft, hop = RECIPES["jansson"]
    n_songs, dur = (4, 10.0) if smoke else (24, 30.0)
    targets = make_targets(work / "targets", list(range(1000, 1000 + n_songs)), dur, sr, n_fft, hop)
    man = read_manifest(targets)
    cfg = TrainConfig()
    bins, frames = (128, 64) if smoke else (512, 128)
    base = 4 if smoke else 16
    batch = 4 if smoke else 64
    steps = 3 if smoke else 60
    sampler = PatchSampler(targets, man, cfg.channel, bins, frames)
    print(f"machine: {machine()}; device {dev}")

    def run(loader_kind: str, bf16: bool, compile_: bool) -> float:
        torch.manual_seed(0)
        model = UNet(base_channels=base).to(dev)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        net = torch.compile(model) if compile_ else model
        if loader_kind == "real":
            data = PatchBatches(sampler, batch, 0, augment_prob=0.5, augment_gain_db=6.0, remix_prob=0.5)
            it = iter(torch.utils.data.DataLoader(data, batch_size=None, sampler=range(10**9),
                                                  num_workers=args.workers, pin_memory=cuda,
                                                  prefetch_factor=4 if args.workers else None))
            get = lambda: next(it)[:2]  # noqa: E731
        else:
            fixed = (torch.rand(batch, 1, bins, frames, device=dev), torch.rand(batch, 1, bins, frames, device=dev))
            get = lambda: fixed  # noqa: E731
        t0, n = None, 0
        for k in range(steps + 3):  # 3 warm-up steps (compile happens there)
            if k == 3:
                if cuda:
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            mix, tgt = get()
            mix, tgt = mix.to(dev, non_blocking=True), tgt.to(dev, non_blocking=True)
            mix, tgt, _ = normalise_patch(mix, tgt)
            train_step(net, opt, mix, tgt, bf16=bf16, channels_last=cuda)  # the trainer's own step
            n += k >= 3
        if cuda:
            torch.cuda.synchronize()
        return n * batch / (time.perf_counter() - t0)

    combos = [(False, False), (True, False), (False, True), (True, True)]
    if not cuda:
        combos = [(False, False)] + ([(False, True)] if args.compile else [])
    best = None
    for bf16, comp in combos:
        try:
            syn = run("random", bf16, comp)
            real = run("real", bf16, comp)
        except Exception as exc:  # e.g. compile without a C compiler
            print(f"bf16={bf16} compile={comp}: failed ({type(exc).__name__}: {str(exc)[:120]})")
            continue
        wait = max(0.0, 1.0 - real / syn)
        print(f"bf16={bf16!s:<5} compile={comp!s:<5} patches/s: random tensors on {dev.type} {syn:8.1f}, real loader "
              f"{real:8.1f} -> data-wait share {wait:.1%} (goal < 5%)")
        best = (bf16, comp) if best is None else best
    # separation realtime factor: a 60 s (smoke: 10 s) 44.1 kHz stereo song with a paper-size network
    from pairminer.synth import make_song

    song = make_song(9000, 10.0 if smoke else 60.0, sr_hz=44100)
    y = np.stack([song.mix, song.mix], axis=1)
    model = UNet(base_channels=base).to(dev).eval()
    sep = Separator(model, "vocals", bins, frames, sr, n_fft, hop, dev)
    separate_signal(y[: 44100 * 2], 44100, [sep])
    t0 = time.perf_counter()
    separate_signal(y, 44100, [sep], batch_size=32 if cuda else 8)
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"separate: {len(y) / 44100:.0f} s of 44.1 kHz stereo in {dt:.2f} s = {len(y) / 44100 / dt:.1f}x realtime "
          f"(full band, {base}-channel network)")


def mode_stream(args) -> None:
    """Read throughput and random-patch rate over a generated shard set larger than the page cache share."""
    from pairminer.shards import ShardWriter
    from pairminer.train.data import PatchSampler, read_manifest

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_stream_"))
    folder = work / "big-targets"
    n_fft, bins = 1024, 513
    frame_b = 3 * bins * 2
    total_frames = int(args.stream_gb * 1e9 / frame_b)
    pair_frames = 3000
    n_pairs = total_frames // pair_frames
    if not (folder / "manifest.parquet").exists():
        rows = []

        def on_seal(rel, entries):
            for key, start, n in entries:
                rows[key].update(shard=rel, start_frame=start, n_frames=n)

        rng = np.random.default_rng(0)
        block = rng.random((pair_frames, 3, bins), dtype=np.float32).astype(np.float16)
        w = ShardWriter(folder, bins, capacity_frames=int(512 * 2**20 // frame_b), on_seal=on_seal)
        t0 = time.perf_counter()
        for k in range(n_pairs):
            rows.append({"pair_id": f"p{k}", "sr_hz": 8192, "n_fft": n_fft, "hop": 768, "window": "hann",
                         "split": "train", "cover_start_frame": 0, "cover_stop_frame": pair_frames})
            w.add(k, block)
        w.close()
        pd.DataFrame(rows).to_parquet(folder / "manifest.parquet")
        print(f"wrote {n_pairs} pairs, {w.bytes_written / 1e9:.2f} GB in {time.perf_counter() - t0:.1f} s")
    files = sorted((folder / "shards").glob("*.npy"))
    size = sum(f.stat().st_size for f in files)

    def drop_cache():
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)

    drop_cache()
    t0 = time.perf_counter()
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(16 * 2**20):
                pass
    dt = time.perf_counter() - t0
    print(f"shard set: {len(files)} shards, {size / 1e9:.2f} GB; sequential read {size / 1e6 / dt:.0f} MB/s")
    man = read_manifest(folder)
    s = PatchSampler(folder, man, 2, 512, 128)
    drop_cache()
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < args.stream_s:
        s.sample(rng)
        n += 1
    dt = time.perf_counter() - t0
    patch_mb = 128 * frame_b / 1e6
    print(f"random patches (512 x 128, cold cache, one process): {n / dt:.0f} patches/s = {n * patch_mb / dt:.0f} MB/s "
          f"from disk; a paper-size model on one H100-class GPU needs ~1-3k patches/s (use --num-workers)")
    t0 = time.perf_counter()
    for _ in range(100_000):
        s.draw(rng)
    print(f"draw (pair + offset) for {len(s.cum_positions)} pairs: {(time.perf_counter() - t0) / 1e5 * 1e6:.1f} us each")


def mode_draw(args) -> None:
    """Patch draws for 10^5 pairs: the sampler's cumulative sum + searchsorted vs rng.choice(p=...)."""
    from pairminer.train.data import PatchSampler

    n = 100_000
    rng = np.random.default_rng(0)
    lengths = rng.integers(100, 5000, n)
    rows = pd.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "shard": "x", "start_frame": 0, "n_frames": lengths})
    s = PatchSampler("/nonexistent", rows, channel=2, n_bins=512, patch_frames=128)
    w = np.maximum(lengths - 127, 1).astype(np.float64)
    p = w / w.sum()
    times = {}
    for name, fn, reps in (("cumsum+searchsorted (pairminer)", lambda: s.draw(rng), 20000),
                           ("rng.choice(p=...) (the old sampler)", lambda: rng.choice(n, p=p), 200)):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        times[name] = (time.perf_counter() - t0) / reps
    print(f"machine: {machine()}")
    for name, t in times.items():
        print(f"  {name:<38} {t * 1e6:9.1f} us per draw ({n} pairs)")
    a, b = times.values()
    print(f"  ratio: {b / a:.0f}x faster than the baseline")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["quality", "fullband", "device", "stream", "draw"], default="quality")
    ap.add_argument("--budget-s", type=float, default=1800.0, help="training wall time (quality)")
    ap.add_argument("--recipe", choices=list(RECIPES), default="jansson")
    ap.add_argument("--recipes", default="jansson,hires", help="fullband: recipes to score")
    ap.add_argument("--config", default=None, help='quality: TrainConfig overrides as JSON, e.g. \'{"augment_prob": 0}\'')
    ap.add_argument("--tag", default=None, help="quality: run folder suffix")
    ap.add_argument("--extend", default="rolloff", help="quality: comma-separated extension rules to score")
    ap.add_argument("--train-songs", type=int, default=40)
    ap.add_argument("--test-songs", type=int, default=5)
    ap.add_argument("--duration-s", type=float, default=30.0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=2, help="device: DataLoader workers of the real loader")
    ap.add_argument("--compile", action="store_true", help="device: also time torch.compile on CPU")
    ap.add_argument("--smoke", action="store_true", help="device: tiny sizes (a CPU smoke check)")
    ap.add_argument("--stream-gb", type=float, default=2.0)
    ap.add_argument("--stream-s", type=float, default=20.0)
    ap.add_argument("--keep", default=None, help="folder to keep the data and runs in (default: a temp folder)")
    args = ap.parse_args()
    {"quality": mode_quality, "fullband": mode_fullband, "device": mode_device, "stream": mode_stream,
     "draw": mode_draw}[args.mode](args)


if __name__ == "__main__":
    main()
