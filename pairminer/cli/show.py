"""`pairminer show PAIR_ID OUT`: one pair, every stage's verdict, its clips and spectrogram."""

from __future__ import annotations

import click

from . import main
from ._options import init_logging, quiet_verbose_options


@main.command()
@click.argument("pair_id", metavar="PAIR_ID")
@click.argument("out", metavar="OUT")
@click.option("-o", "--output", "dest", default=None,
              help="Folder for the clips, spectrogram.png and pair.json. [default: OUT/show/PAIR_ID]")
@click.option("--clip-s", type=float, default=10.0, show_default=True,
              help="Length of the clips in seconds, cut where the vocal target is loudest.")
@click.option("--audio-root", default=None, help="Resolve relative audio paths against this folder. "
              "[default: verify's audio_root]")
@quiet_verbose_options
def show(pair_id, out, dest, clip_s, audio_root, quiet, verbose):
    """Print one pair's metadata and every stage's verdict; write its clips and spectrogram.

    \b
    Example:
      pairminer show T001__T002 OUT
      pairminer show T001__T002 OUT -o /tmp/t001 --clip-s 20
    """
    init_logging(verbose, quiet)
    from ..errors import ConfigError
    from ..report.show import show_pair

    if not 0.5 <= clip_s <= 600:
        raise ConfigError(f"--clip-s must be between 0.5 and 600 seconds (got {clip_s})")
    res = show_pair(out, pair_id, dest, clip_s=clip_s, audio_root=audio_root)
    from ..termsafe import clean

    click.echo(f"pair {clean(res.pair_id)}")
    width = max(len(k) for k in res.metadata) if res.metadata else 0
    for k, v in res.metadata.items():
        click.echo(f"  {k.ljust(width)}  {'' if v is None else clean(v)}")
    click.echo("verdicts")
    for v in res.verdicts:
        click.echo(f"  {v['stage']:<9} {v['verdict']:<14} {clean(v['detail'])}")
    if res.audio_note:
        click.echo(f"audio: {res.audio_note}")
    click.echo(f"wrote {', '.join(res.files)} to {res.folder}")
