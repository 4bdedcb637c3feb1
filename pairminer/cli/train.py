"""`pairminer train`, `pairminer separate`, `pairminer evaluate`: the bundled U-Net.

The trainer itself (pairminer.train) works on arrays and imports only torch/numpy/pandas/pyarrow;
decoding and writing audio files for `separate` happens here, with pairminer.audio and soundfile.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click
import numpy as np

from . import main
from ._options import config_file_option, config_options, init_logging, quiet_verbose_options, stage_config

log = logging.getLogger(__name__)


@main.command()
@config_options("train")
@click.argument("targets_dir", metavar="TARGETS_DIR")
@click.option("-o", "--out", "out_dir", required=True, help="Run folder to write (config, metrics, checkpoints).")
@config_file_option("train")
@click.option("--resume", is_flag=True, help="Continue the run in -o from checkpoint-last.pt.")
@quiet_verbose_options
def train(targets_dir, out_dir, config_path, resume, quiet, verbose, **options):
    """Train the U-Net of Jansson and others (2017) for one source on the shards in TARGETS_DIR.

    Writes OUT/config.json, OUT/metrics.jsonl, OUT/checkpoint-last.pt, OUT/checkpoint-best.pt and
    OUT/train-report.json. Input patches are 512 bins x 128 frames.

    Example: pairminer train OUT/targets -o runs/vocals --source vocals --max-steps 20000
    """
    from ..train import run_train

    init_logging(verbose, quiet)
    config = stage_config("train", config_path, options)
    res = run_train(targets_dir, out_dir, config, resume=resume, progress=not quiet)
    click.echo(f"train: {res.steps_run} step(s) run, {res.step} in all; validation loss {res.last_valid_loss:.5f} "
               f"(best {res.best_valid_loss:.5f}); {res.n_train_pairs} train / {res.n_valid_pairs} valid pair(s) "
               f"-> {res.run_dir}")


def _native_rate(path: str) -> int | None:
    import soundfile as sf

    try:
        return int(sf.info(path).samplerate)
    except Exception:  # not a libsndfile format: learn the rate from the first decode
        return None


def separate_files(audio_paths: list[str], run_dirs: list[str], out_dir: str, *, device: str = "auto",
                   batch_size: int = 8, overwrite: bool = False, progress: bool = True) -> dict:
    """Separate each audio file into OUT/<track>/vocals.wav and instrumental.wav.

    Each file is decoded to mono, resampled to the models' rate, separated (pairminer.train.separate_array),
    resampled back and written as float WAV with the input's sample rate and length. With a single vocals
    model, instrumental = input - vocals at the input's rate: inside the model's band that is the
    complementary mask, and above the model's Nyquist frequency it keeps the whole input.

    Returns:
        The report written to OUT/separate-report.json (tracks, failures with reasons, realtime factors).
    """
    import soundfile as sf
    import soxr

    from .. import __version__
    from ..audio import load_audio
    from ..errors import AudioError, ConfigError
    from ..storage import atomic_path, ensure_dir, write_json
    from ..runinfo import versions
    from ..train.evaluate import fit_length
    from ..train.separate import check_compatible, separate_array, Separator

    seps = [Separator.from_run(r, device=device) for r in run_dirs]
    model_sr, _, _ = check_compatible(seps)
    stems = [Path(p).stem for p in audio_paths]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ConfigError(f"several inputs would write OUT/{dupes[0]}/; rename them or separate them in separate runs")
    ensure_dir(out_dir)
    own = {s.source for s in seps}
    tracks, failures, skipped = [], [], []
    items = audio_paths
    if progress:
        try:
            from tqdm.auto import tqdm

            items = tqdm(audio_paths, unit="file", desc="separate")
        except ImportError:
            pass
    for path, stem in zip(items, stems):
        folder = Path(out_dir) / stem
        outs = {s: folder / f"{s}.wav" for s in ("vocals", "instrumental")}
        if not overwrite and all(p.exists() for p in outs.values()):
            skipped.append({"input": path, "reason": "outputs exist (use --overwrite to redo)"})
            continue
        t0 = time.perf_counter()
        try:
            native = _native_rate(path)
            if native is None:
                _, info = load_audio(path, model_sr, check_silence=False)
                native = info.source_sr_hz
            y, info = load_audio(path, native, check_silence=False)
        except AudioError as exc:
            failures.append({"input": path, "reason": str(exc)})
            log.warning("%s", exc)
            continue
        t1 = time.perf_counter()
        y_model = soxr.resample(y, native, model_sr, quality="HQ").astype(np.float32) if native != model_sr else y
        est = separate_array(y_model, seps, batch_size=batch_size)
        out = {s: fit_length(soxr.resample(v, model_sr, native, quality="HQ") if native != model_sr else v, len(y))
               for s, v in est.items()}
        if own == {"vocals"}:
            out["instrumental"] = y - out["vocals"]
        elif own == {"instrumental"}:
            out["vocals"] = y - out["instrumental"]
        t2 = time.perf_counter()
        for src, p in outs.items():
            with atomic_path(p, suffix=".wav") as tmp:
                sf.write(tmp, out[src].astype(np.float32), native, format="WAV", subtype="FLOAT")
        dur = len(y) / native
        total = time.perf_counter() - t0
        tracks.append({"input": path, "track": stem, "duration_s": round(dur, 3), "sr_hz": native,
                       "samples": len(y), "outputs": {s: str(p) for s, p in outs.items()},
                       "separate_s": round(t2 - t1, 4), "total_s": round(total, 4),
                       "realtime_factor": round(dur / max(t2 - t1, 1e-9), 2),
                       "realtime_factor_total": round(dur / max(total, 1e-9), 2)})
    audio_s = sum(t["duration_s"] for t in tracks)
    sep_s = sum(t["separate_s"] for t in tracks)
    report = {
        "stage": "separate", "pairminer_version": __version__, "versions": versions(),
        "runs": [{"run_dir": s.run_dir, "source": s.source} for s in seps],
        "device": str(seps[0].device), "model_sr_hz": model_sr,
        "counts": {"inputs": len(audio_paths), "written": len(tracks), "skipped_existing": len(skipped),
                   "failed": len(failures)},
        "audio_s": round(audio_s, 3), "separate_s": round(sep_s, 4),
        "realtime_factor": round(audio_s / sep_s, 2) if sep_s > 0 else None,
        "tracks": tracks, "failures": failures, "skipped": skipped,
    }
    write_json(Path(out_dir) / "separate-report.json", report, schema="separate-report")
    return report


@main.command()
@click.argument("audio", nargs=-1, required=True, metavar="AUDIO...")
@click.option("-m", "--model", "run_dirs", multiple=True, required=True,
              help="Run folder of `pairminer train` (repeat for a vocals and an instrumental model).")
@click.option("-o", "--out", "out_dir", required=True, help="Folder for OUT/<track>/vocals.wav, instrumental.wav.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the network runs: auto (CUDA when present), cpu or cuda.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Patches per forward pass.")
@click.option("--overwrite", is_flag=True, help="Redo tracks whose outputs exist.")
@quiet_verbose_options
def separate(audio, run_dirs, out_dir, device, batch_size, overwrite, quiet, verbose):
    """Separate AUDIO files into vocals and instrumental with trained U-Nets.

    Writes OUT/<track>/vocals.wav and OUT/<track>/instrumental.wav (mono, float WAV, the input's sample
    rate and length) and OUT/separate-report.json. With one vocals model the instrumental is the rest.

    Example: pairminer separate song.flac -m runs/vocals -o separated
    """
    init_logging(verbose, quiet)
    rep = separate_files(list(audio), list(run_dirs), out_dir, device=device, batch_size=batch_size,
                         overwrite=overwrite, progress=not quiet)
    c = rep["counts"]
    rtf = f"{rep['realtime_factor']:.1f}x realtime" if rep["realtime_factor"] else "no audio separated"
    click.echo(f"separate: {c['written']} written, {c['skipped_existing']} already done, {c['failed']} failed "
               f"(of {c['inputs']}); {rep['audio_s']:.1f} s of audio at {rtf} on {rep['device']} -> {out_dir}")
    for f in rep["failures"]:
        click.echo(f"failed: {f['reason']}", err=True)


@main.command()
@click.argument("estimates_dir", metavar="ESTIMATES_DIR")
@click.argument("references_dir", metavar="REFERENCES_DIR")
@click.option("-o", "--out", "out_path", required=True, help="JSON file to write (e.g. eval.json).")
@click.option("--oracle", type=click.Choice(["irm"]), default=None, help="Also score the ideal ratio mask oracle.")
@click.option("-m", "--model", "run_dir", default=None, help="Take the oracle's STFT (rate, n_fft, hop) from this run.")
@click.option("--sr-hz", type=int, default=8192, show_default=True, help="Oracle STFT sample rate (the model's).")
@click.option("--n-fft", type=int, default=1024, show_default=True, help="Oracle STFT size.")
@click.option("--hop", type=int, default=768, show_default=True, help="Oracle STFT hop.")
@click.option("--window-s", type=float, default=1.0, show_default=True, help="BSS Eval window and hop in seconds.")
@quiet_verbose_options
def evaluate(estimates_dir, references_dir, out_path, oracle, run_dir, sr_hz, n_fft, hop, window_s, quiet, verbose):
    """Score separated tracks against references: SDR/SIR/SAR (museval, BSS Eval v4).

    Both folders hold one sub-folder per track with vocals.wav and/or instrumental.wav
    (accompaniment.wav is accepted). Also scores the mixture as the estimate and, with
    --oracle irm, the ideal ratio mask. Prints medians over tracks and writes every score as JSON.

    Example: pairminer evaluate separated/ references/ -o eval.json --oracle irm -m runs/vocals
    """
    import json

    from ..train.evaluate import format_table, run_evaluate

    init_logging(verbose, quiet)
    if run_dir:
        from ..errors import InputError

        cfg = Path(run_dir) / "config.json"
        if not cfg.exists():
            raise InputError(f"{run_dir} is not a training run (no config.json)")
        data = json.loads(cfg.read_text(encoding="utf-8"))["data"]
        sr_hz, n_fft, hop = int(data["sr_hz"]), int(data["n_fft"]), int(data["hop"])
    res = run_evaluate(estimates_dir, references_dir, out_path, oracle=oracle, model_sr_hz=sr_hz, n_fft=n_fft,
                       hop=hop, window_s=window_s, progress=not quiet)
    click.echo(format_table(res.doc))
    for s in res.skipped:
        click.echo(f"skipped {s['track']}: {s['reason']}", err=True)
    click.echo(f"-> {res.path}")
