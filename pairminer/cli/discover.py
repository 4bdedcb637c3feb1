"""`pairminer discover`: the main entry, the whole mining pipeline from a catalog."""

from __future__ import annotations

import click

from .. import stages as registry
from . import main
from ._options import init_logging, quiet_verbose_options


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


_UNTIL = [*registry.DISCOVER_CHAIN, *registry.DISCOVER_UNTIL_ALIASES]


@main.command()
@click.argument("catalog")
@click.option("-o", "--out", "out_dir", default="pairminer-out", show_default=True, help="Output folder (or URL).")
@click.option("--until", type=click.Choice(_UNTIL), default=None,
              help=f"Stop after this stage. Default: the last stage ({registry.DISCOVER_CHAIN[-1]}). "
                   "candidates and verified are old spellings of discover and verify.")
@click.option("--kinds", default=None, help="Version kinds, comma-separated: instrumental,acapella,karaoke,off-vocal.")
@click.option("--keyword", "keywords", multiple=True, metavar="KIND=WORD",
              help="Extra version keyword for a kind (repeatable), e.g. --keyword instrumental=instru.")
@click.option("--max-delta", type=float, default=None, help="Max |duration difference| in seconds (strict). [1.0]")
@click.option("--min-score", type=float, default=None, help="Min title similarity, 0-100. [90]")
@click.option("--scorer", default=None, help="rapidfuzz scorer: ratio, token_sort_ratio, token_set_ratio, WRatio.")
@click.option("--column", "columns", multiple=True, metavar="NAME=SOURCE",
              help="Map a catalog column (repeatable), e.g. --column title=track_name.")
@click.option("--duration-unit", type=click.Choice(["s", "ms"]), default=None, help="Unit of the duration column. [s]")
@click.option("--audio-root", default=None, help="Folder that relative audio paths resolve against. [catalog's folder]")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML file read like a workflow file (discover:/verify:/targets: sections; relative paths "
                   "resolve against its folder); command-line options override it.")
@click.option("--force", is_flag=True, help="Rerun the stages even when their outputs are fresh (see OUT/run.json).")
@click.option("--scheduler", default=None,
              help="Dask scheduler: threads, processes, synchronous, or tcp://host:port of a dask.distributed "
                   "cluster.  [default: the --config file's, else threads]")
@quiet_verbose_options
def discover(catalog, out_dir, until, kinds, keywords, max_delta, min_score, scorer, columns, duration_unit,
             audio_root, config_file, force, scheduler, quiet, verbose):
    """Find (mix, instrumental) pairs in CATALOG (CSV or Parquet, path or URL) and mine them.

    Runs discover -> verify -> targets (as far as --until), leaving in OUT candidates.parquet,
    rejects.parquet, discover-report.json, then verified.parquet and targets/ as those stages run,
    and OUT/run.json. It is `pairminer run` over a built-in workflow: a rerun skips the stages whose
    outputs are fresh.

    \b
    Example:
      pairminer discover data/sample/catalog.csv -o out --until discover
      pairminer discover s3://bucket/catalog.parquet -o s3://bucket/out --scheduler tcp://head:8786 --until verify
    """
    from ..workflow.file import builtin_workflow
    from ..workflow.run import run_workflow

    init_logging(verbose, quiet)
    if until in registry.DISCOVER_UNTIL_ALIASES:
        new = registry.DISCOVER_UNTIL_ALIASES[until]
        click.echo(f"note: --until {until} is an old spelling; use --until {new}", err=True)
        until = new
    discover_overrides = {
        "kinds": kinds, "keywords": _parse_keywords(keywords), "max_delta": max_delta, "min_score": min_score,
        "scorer": scorer, "columns": _parse_columns(columns), "duration_unit": duration_unit,
    }
    overrides = {s: {"audio_root": audio_root} for s in registry.DISCOVER_CHAIN
                 if "audio_root" in registry.stage(s).path_fields}
    overrides["discover"].update(discover_overrides)
    wf = builtin_workflow(catalog, out_dir, config_file=config_file, scheduler=scheduler, overrides=overrides)
    res = run_workflow(wf, until=until, force=force, progress=not quiet)
    for o in res.outcomes:
        if o.status == "ran":
            click.echo(o.result.summary() if hasattr(o.result, "summary") else f"{o.stage}: done")
        elif o.status == "skipped":
            click.echo(f"{o.stage}: skipped (fresh; use --force to rerun)")
    click.echo(f"  {res.run_json}")
