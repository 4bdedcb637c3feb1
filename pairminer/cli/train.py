"""`pairminer train`, `pairminer separate`, `pairminer evaluate`: the bundled U-Net.

Each command parses options and calls one library function: `pairminer.train.run_train`,
`pairminer.train.separate.separate_files`, `pairminer.train.evaluate.run_evaluate`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

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
    OUT/train-report.json. Input patches are 512 bins x 128 frames at the default STFT (bins from the
    data). Trains until the step budget, the time budget or early stopping on the valid split.

    Example: pairminer train OUT/targets -o runs/vocals --source vocals --max-steps 20000
    """
    from ..train import run_train

    init_logging(verbose, quiet)
    config = stage_config("train", config_path, options)
    from ..locking import output_lock

    with output_lock(out_dir, what="pairminer train"):
        res = run_train(targets_dir, out_dir, config, resume=resume, progress=not quiet)
    early = ", stopped early" if res.stopped_early else ""
    click.echo(f"train: {res.steps_run} step(s) run, {res.step} in all{early}; validation loss {res.last_valid_loss:.5f} "
               f"(best {res.best_valid_loss:.5f}), validation SDR {res.valid_sdr_db:.2f} dB "
               f"({res.valid_sdr_db - res.valid_mix_sdr_db:+.2f} dB over the mixture); "
               f"{res.n_train_pairs} train / {res.n_valid_pairs} valid pair(s) -> {res.run_dir}")


@main.command()
@click.argument("audio", nargs=-1, required=True, metavar="AUDIO...")
@click.option("-m", "--model", "run_dirs", multiple=True, required=True,
              help="Run folder of `pairminer train` (repeat for a vocals and an instrumental model).")
@click.option("-o", "--out", "out_dir", required=True, help="Folder for OUT/<track>/vocals.wav, instrumental.wav.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the network runs: auto (CUDA when present), cpu or cuda.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Patches per forward pass.")
@click.option("--mono", is_flag=True, help="Write mono output band-limited to the model's rate (the old output).")
@click.option("--extend", type=click.Choice(["band_mean", "top_bin", "rolloff", "zero", "half"]), default="rolloff",
              show_default=True, help="Mask rule above the model's band (see docs/training.md for the scores).")
@click.option("--max-duration-s", type=float, default=6 * 3600.0, show_default=True,
              help="Refuse longer inputs (checked from the file header before decoding).")
@click.option("--overwrite", is_flag=True, help="Redo tracks whose outputs exist.")
@quiet_verbose_options
def separate(audio, run_dirs, out_dir, device, batch_size, mono, extend, max_duration_s, overwrite, quiet, verbose):
    """Separate AUDIO files into vocals and instrumental with trained U-Nets.

    Writes OUT/<track>/vocals.wav and OUT/<track>/instrumental.wav (float WAV, full band, the input's
    channels, sample rate and length) and OUT/separate-report.json. With one vocals model the
    instrumental is the rest. Exits non-zero only when every input failed.

    Example: pairminer separate song.flac -m runs/vocals -o separated
    """
    from ..train.separate import separate_files

    init_logging(verbose, quiet)
    rep = separate_files(list(audio), list(run_dirs), out_dir, device=device, batch_size=batch_size,
                         overwrite=overwrite, progress=not quiet, mono=mono, extend=extend,
                         max_duration_s=max_duration_s)
    c = rep["counts"]
    rtf = f"{rep['realtime_factor']:.1f}x realtime" if rep["realtime_factor"] else "no audio separated"
    click.echo(f"separate: {c['written']} written, {c['skipped_existing']} already done, {c['failed']} failed "
               f"(of {c['inputs']}); {rep['audio_s']:.1f} s of audio at {rtf} on {rep['device']} -> {out_dir}")
    for f in rep["failures"]:
        click.echo(f"failed: {f['reason']}", err=True)
    if c["failed"] and not c["written"] and not c["skipped_existing"]:
        raise click.exceptions.Exit(1)


@main.command()
@click.argument("estimates_dir", metavar="ESTIMATES_DIR")
@click.argument("references_dir", metavar="REFERENCES_DIR")
@click.option("-o", "--out", "out_path", required=True, help="JSON file to write (e.g. eval.json).")
@click.option("--oracle", type=click.Choice(["irm"]), default=None, help="Also score the ideal ratio mask oracle.")
@click.option("-m", "--model", "run_dir", default=None, help="Take the oracle's STFT (rate, n_fft, hop) from this run.")
@click.option("--sr-hz", type=int, default=8192, show_default=True, help="Oracle STFT sample rate (the model's).")
@click.option("--n-fft", type=int, default=1024, show_default=True, help="Oracle STFT size.")
@click.option("--hop", type=int, default=768, show_default=True, help="Oracle STFT hop.")
@click.option("--window-s", type=float, default=1.0, show_default=True,
              help="BSS Eval window and hop in seconds (0.01 to 3600).")
@click.option("--max-track-s", type=float, default=600.0, show_default=True,
              help="Skip longer tracks (from the header; BSS Eval's memory grows with the track).")
@quiet_verbose_options
def evaluate(estimates_dir, references_dir, out_path, oracle, run_dir, sr_hz, n_fft, hop, window_s, max_track_s,
             quiet, verbose):
    """Score separated tracks against references: SDR/SIR/SAR (museval, BSS Eval v4).

    Both folders hold one sub-folder per track with vocals.wav and/or instrumental.wav
    (accompaniment.wav is accepted). Also scores the mixture as the estimate and, with
    --oracle irm, the ideal ratio mask. Prints medians over tracks and writes every score as JSON.

    Example: pairminer evaluate separated/ references/ -o eval.json --oracle irm -m runs/vocals
    """
    from ..train.evaluate import format_table, run_evaluate

    init_logging(verbose, quiet)
    if run_dir:
        from ..train.separate import run_stft

        sr_hz, n_fft, hop = run_stft(run_dir)
    res = run_evaluate(estimates_dir, references_dir, out_path, oracle=oracle, model_sr_hz=sr_hz, n_fft=n_fft,
                       hop=hop, window_s=window_s, progress=not quiet, max_track_s=max_track_s)
    click.echo(format_table(res.doc))
    for s in res.skipped:
        click.echo(f"skipped {s['track']}: {s['reason']}", err=True)
    click.echo(f"-> {res.path}")
    if res.n_tracks and not res.n_scored:
        raise click.exceptions.Exit(1)
