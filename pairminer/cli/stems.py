"""`pairminer stems`: verified pairs -> waveform stems (mixture, vocals, instrumental) per pair."""

from __future__ import annotations

import click

from . import main
from ._options import (config_file_option, config_options, init_logging, quiet_verbose_options,
                       scheduler_option, stage_config)


@main.command()
@config_options("stems")
@click.argument("verified", metavar="VERIFIED")
@click.option("-o", "--out", "out_dir", required=True, help="Stems folder to write (train/, valid/, test/, "
              "metadata.parquet).")
@config_file_option("stems")
@scheduler_option
@quiet_verbose_options
def stems(verified, out_dir, config_path, scheduler, quiet, verbose, **options):
    """Export every verified pair in VERIFIED (verified.parquet) as waveform stems that trainers read.

    Each pair is aligned for subtraction (lag, sub-sample lag, polarity, clock drift, gain, matching
    filter) and written as OUT/<split>/<pair>/{mixture,vocals,instrumental}.wav, MUSDB18-HQ style,
    with one row per pair in OUT/metadata.parquet, a dataset card (OUT/README.md) and ready configs
    for MSST, demucs and open-unmix (OUT/configs/). A rerun skips pairs already exported.

    Example: pairminer stems OUT/verified.parquet -o OUT/stems
    """
    from ..stems.stage import run_stems

    init_logging(verbose, quiet)
    config = stage_config("stems", config_path, options)
    res = run_stems(verified, out_dir, config, scheduler=scheduler, progress=not quiet)
    click.echo(res.summary())
    if res.failures:
        click.echo(f"failures are listed with their reasons in {res.report_path}", err=True)
