"""`pairminer verify`: a few lines over pairminer.verify.stage.run_verify."""

from __future__ import annotations

import click

from . import main
from ._options import (config_file_option, config_options, init_logging, quiet_verbose_options,
                       scheduler_option, stage_config, url_backend_checked)


@main.command()
@config_options("verify")
@click.argument("candidates", metavar="CANDIDATES", callback=url_backend_checked)
@click.option("-o", "--out", "out_dir", required=True, callback=url_backend_checked,
              help="Output folder (local or URL).")
@config_file_option("verify")
@scheduler_option
@quiet_verbose_options
def verify(candidates, out_dir, config_path, scheduler, quiet, verbose, **options):
    """Check each candidate pair by listening: Chromaprint both files, align, classify.

    \b
    Writes OUT/verified.parquet (every candidate with status verified | too_similar |
    too_different | error, ber, offset_s, overlap_s, reason), OUT/verify-report.json and
    OUT/similarity.png. Example:
      pairminer verify OUT/candidates.parquet -o OUT
    """
    from ..verify.stage import run_verify

    init_logging(verbose, quiet)
    config = stage_config("verify", config_path, options)
    from ..locking import output_lock

    with output_lock(out_dir, what="pairminer verify"):
        r = run_verify(candidates, out_dir, config, scheduler=scheduler, progress=not quiet)
    click.echo(r.summary())
    click.echo(f"  {r.report_path}")
