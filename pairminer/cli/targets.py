"""`pairminer targets`: verified pairs -> aligned STFT targets (shards/ + manifest.parquet)."""

from __future__ import annotations

import click

from . import main
from ._options import init_logging, quiet_verbose_options, scheduler_option


@main.command()
@click.argument("verified", metavar="VERIFIED")
@click.option("-o", "--out", "out_dir", required=True, help="Targets folder to write (shards/, manifest.parquet).")
@click.option("--sr", type=int, default=None, help="Sample rate in Hz before the STFT  [default: 8192]")
@click.option("--n-fft", type=int, default=None, help="STFT size in samples  [default: 1024]")
@click.option("--hop", type=int, default=None, help="STFT hop in samples  [default: 768]")
@click.option("--shard-mb", type=float, default=None, help="Shard size in MiB  [default: 256]")
@click.option("--audio-root", default=None, help="Resolve relative audio paths here; refuse paths outside it.")
@scheduler_option
@quiet_verbose_options
def targets(verified, out_dir, sr, n_fft, hop, shard_mb, audio_root, scheduler, quiet, verbose):
    """Make vocal/instrumental STFT targets for every verified pair in VERIFIED (verified.parquet).

    Each pair is aligned to the sample and gain-matched, then written as float16 frames
    (|mix|, instrumental, vocals) to OUT/shards/ with one row per pair in OUT/manifest.parquet.
    A rerun skips pairs already in the manifest.

    Example: pairminer targets OUT/verified.parquet -o OUT/targets
    """
    from ..targets.stage import TargetsConfig, run_targets

    init_logging(verbose, quiet)
    config = TargetsConfig().replace(sr=sr, n_fft=n_fft, hop=hop, shard_mb=shard_mb, audio_root=audio_root)
    res = run_targets(verified, out_dir, config, scheduler=scheduler, progress=not quiet)
    click.echo(res.summary())
    if res.failures:
        click.echo(f"failures are listed with their reasons in {res.report_path}", err=True)
