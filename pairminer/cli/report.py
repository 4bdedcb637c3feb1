"""`pairminer report`: the audit of an output folder."""

from __future__ import annotations

import click

from . import main
from ._options import init_logging, quiet_verbose_options


@main.command()
@click.argument("out", metavar="OUT")
@click.option("-o", "--output", "report_dir", required=True, help="Folder for report.html, report.json, the genre "
              "table and the PNG plots.")
@click.option("--top-n", type=int, default=None, help="Genres shown by name; the rest fold into Other. [default: 12]")
@click.option("--genre-mode", type=click.Choice(["first", "split"]), default=None,
              help="Multi-valued genres ('Pop; Dance'): count the first value, or split the pair into equal "
                   "fractional shares. [default: first]")
@click.option("--examples", "examples_per_status", type=int, default=None,
              help="Example pairs per verify status in report.html. [default: 8]")
@click.option("--clips", "clips_per_status", type=int, default=None,
              help="Pairs per listening group (verified, lowest-margin verified, too similar, too different) whose "
                   "clips and spectrograms are embedded in report.html; 0 turns listening off. [default: 2]")
@click.option("--clip-s", type=float, default=None, help="Length of each embedded clip in seconds. [default: 10]")
@click.option("--max-audio-mb", type=float, default=None,
              help="Upper bound on the audio and pictures embedded in report.html, in MiB. [default: 12]")
@click.option("--audio-root", type=str, default=None,
              help="Resolve relative audio paths against this folder. [default: verify's audio_root]")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML file with a `report:` section (options given here override it).")
@quiet_verbose_options
def report(out, report_dir, top_n, genre_mode, examples_per_status, clips_per_status, clip_s, max_audio_mb, audio_root,
           config_path, quiet, verbose):
    """Audit what the pipeline mined in OUT: funnel, genres, hours, near misses, clips, one HTML page.

    Reads whichever of candidates.parquet, rejects.parquet, discover-report.json, verified.parquet,
    verify-report.json, near_misses.parquet and targets/manifest.parquet exist in OUT; a stage that
    has not run gets a section saying so. For a few pairs per verify status, clips of the mix, the
    aligned version and the targets are embedded (needs the audio files and ffmpeg).

    \b
    Example:
      pairminer report OUT -o OUT/report --top-n 10
      open OUT/report/report.html
    """
    init_logging(verbose, quiet)
    from ..report.stage import ReportConfig, format_funnel, format_genre_table, run_report

    base = ReportConfig()
    if config_path:
        with open(config_path, encoding="utf-8") as f:
            base = ReportConfig.from_yaml(f.read())
    config = base.replace(top_n=top_n, genre_mode=genre_mode, examples_per_status=examples_per_status,
                          clips_per_status=clips_per_status, clip_s=clip_s, max_audio_mb=max_audio_mb,
                          audio_root=audio_root)
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
