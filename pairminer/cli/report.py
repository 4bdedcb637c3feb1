"""`pairminer report`: the audit of an output folder."""

from __future__ import annotations

import click

from . import main
from ._options import (config_file_option, config_options, init_logging, quiet_verbose_options,
                       stage_config, url_backend_checked)


@main.command()
@config_options("report")
@click.argument("out", metavar="OUT", callback=url_backend_checked)
@click.option("-o", "--output", "report_dir", required=True, callback=url_backend_checked,
              help="Folder for report.html, report.json, the genre table and the PNG plots.")
@config_file_option("report")
@quiet_verbose_options
def report(out, report_dir, config_path, quiet, verbose, **options):
    """Audit what the pipeline mined in OUT: funnel, genres, hours, near misses, clips, one HTML page.

    Reads whichever of candidates.parquet, rejects.parquet, discover-report.json, verified.parquet,
    verify-report.json, near_misses.parquet and targets/manifest.parquet exist in OUT; a stage that
    has not run gets a section saying so. For a few pairs per verify status, clips of the mix, the
    aligned version and the targets are embedded (needs the audio files and ffmpeg).

    \b
    Example:
      pairminer report OUT -o OUT/report --top-n 10 --clips 3 --clip-s 8
      open OUT/report/report.html
    """
    init_logging(verbose, quiet)
    from ..report.stage import format_funnel, format_genre_table, run_report

    config = stage_config("report", config_path, options)
    from ..locking import output_lock

    with output_lock(report_dir, what="pairminer report"):
        result = run_report(out, report_dir, config, progress=not quiet)
    if not quiet:
        click.echo("Funnel")
        click.echo(format_funnel(result.funnel))
        click.echo("")
        if result.genre_stage:
            click.echo(f"Genre breakdown ({result.genre_stage})")
            click.echo(format_genre_table(result.genre_table))
            click.echo("")
    click.echo(f"wrote {result.html_path}")
