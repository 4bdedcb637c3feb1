"""`pairminer discover`: the main entry, the whole mining pipeline from a catalog."""

from __future__ import annotations

import click

from . import main
from ._options import init_logging, quiet_verbose_options, scheduler_option


def _parse_columns(values: tuple[str, ...]) -> dict[str, str] | None:
    out = {}
    for v in values:
        if "=" not in v:
            raise click.BadParameter(f"{v!r}: use NAME=SOURCE, e.g. title=track_name", param_hint="--column")
        k, src = v.split("=", 1)
        out[k.strip()] = src.strip()
    return out or None


def _parse_keywords(values: tuple[str, ...]) -> dict[str, list[str]] | None:
    out: dict[str, list[str]] = {}
    for v in values:
        if "=" not in v:
            raise click.BadParameter(f"{v!r}: use KIND=WORD, e.g. instrumental=instru", param_hint="--keyword")
        k, w = v.split("=", 1)
        out.setdefault(k.strip(), []).append(w.strip())
    return out or None


@main.command()
@click.argument("catalog")
@click.option("-o", "--out", "out_dir", default="pairminer-out", show_default=True, help="Output folder (or URL).")
@click.option("--until", type=click.Choice(["candidates", "verified", "targets"]), default=None,
              help="Stop after this stage. Default: the last stage (targets).")
@click.option("--kinds", default=None, help="Version kinds, comma-separated. [instrumental,acapella,karaoke,off-vocal]")
@click.option("--keyword", "keywords", multiple=True, metavar="KIND=WORD",
              help="Extra version keyword for a kind (repeatable), e.g. --keyword instrumental=instru.")
@click.option("--max-delta", type=float, default=None, help="Max |duration difference| in seconds (strict). [1.0]")
@click.option("--min-score", type=float, default=None, help="Min title similarity, 0-100. [90]")
@click.option("--scorer", default=None, help="rapidfuzz scorer: ratio, token_sort_ratio, token_set_ratio, WRatio.")
@click.option("--column", "columns", multiple=True, metavar="NAME=SOURCE",
              help="Map a catalog column (repeatable), e.g. --column title=track_name.")
@click.option("--duration-unit", type=click.Choice(["s", "ms"]), default=None, help="Unit of the duration column. [s]")
@click.option("--duration-resolution", default=None, metavar="auto|SECONDS",
              help="Resolution of the catalog's durations: auto detects whole seconds (99%% of the rows "
                   "integral) and widens --max-delta by it; 0 turns that off. [auto]")
@click.option("--max-block-comparisons", type=int, default=None,
              help="A version with more originals than this in its artist x duration block is compared "
                   "by exact title only. [20000]")
@click.option("--audio-root", default=None, help="Folder that relative audio paths resolve against. [catalog's folder]")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML file with discover:/verify:/targets: sections (CLI options override it).")
@scheduler_option
@quiet_verbose_options
def discover(catalog, out_dir, until, kinds, keywords, max_delta, min_score, scorer, columns, duration_unit,
             duration_resolution, max_block_comparisons, audio_root, config_file, scheduler, quiet, verbose):
    """Find (mix, instrumental) pairs in CATALOG (CSV or Parquet, path or URL) and mine them.

    Runs discover -> verify -> targets (as far as --until), leaving in OUT candidates.parquet,
    rejects.parquet, discover-report.json, then verified.parquet and targets/ as those stages run.

    \b
    Example:
      pairminer discover data/sample/catalog.csv -o out --until candidates
      pairminer discover s3://bucket/catalog.parquet -o s3://bucket/out --scheduler tcp://head:8786
    """
    from ..pipeline import run_pipeline

    init_logging(verbose, quiet)
    overrides = {
        "kinds": kinds, "keywords": _parse_keywords(keywords), "max_delta": max_delta, "min_score": min_score,
        "scorer": scorer, "columns": _parse_columns(columns), "duration_unit": duration_unit,
        "audio_root": audio_root, "duration_resolution": duration_resolution,
        "max_block_comparisons": max_block_comparisons,
    }
    result = run_pipeline(catalog, out_dir, until=until, discover_overrides=overrides, config_file=config_file,
                          scheduler=scheduler, progress=not quiet, audio_root=audio_root)
    click.echo(result.summary())
