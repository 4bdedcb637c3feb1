"""`pairminer targets`: verified pairs -> aligned STFT targets (shards/ + manifest.parquet)."""

from __future__ import annotations

import click

from . import main
from ._options import (config_file_option, config_options, init_logging, quiet_verbose_options,
                       scheduler_option, stage_config)


@main.command()
@config_options("targets")
@click.argument("verified", metavar="VERIFIED")
@click.option("-o", "--out", "out_dir", required=True, help="Targets folder to write (shards/, manifest.parquet).")
@config_file_option("targets")
@scheduler_option
@quiet_verbose_options
def targets(verified, out_dir, config_path, scheduler, quiet, verbose, **options):
    """Make vocal/instrumental STFT targets for every verified pair in VERIFIED (verified.parquet).

    Each pair is aligned to the sample and gain-matched, then written as float16 frames
    (|mix|, instrumental, vocals) to OUT/shards/ with one row per pair in OUT/manifest.parquet.
    A rerun skips pairs already in the manifest.

    Example: pairminer targets OUT/verified.parquet -o OUT/targets
    """
    from ..targets.stage import run_targets

    init_logging(verbose, quiet)
    config = stage_config("targets", config_path, options)
    from ..locking import output_lock

    with output_lock(out_dir, what="pairminer targets"):
        res = run_targets(verified, out_dir, config, scheduler=scheduler, progress=not quiet)
    click.echo(res.summary())
    if res.failures:
        click.echo(f"failures are listed with their reasons in {res.report_path}", err=True)
