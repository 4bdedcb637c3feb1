"""`pairminer discover`: the main entry, the whole mining pipeline from a catalog.

It is `pairminer run` over a built-in workflow (the registry's DISCOVER_CHAIN): options generated
from DiscoverConfig, a `--config` file read like a workflow file, and OUT/run.json.
"""

from __future__ import annotations

import click

from .. import stages as registry
from . import main
from ._options import config_options, init_logging, quiet_verbose_options, url_backend_checked

_UNTIL = [*registry.DISCOVER_CHAIN, *registry.DISCOVER_UNTIL_ALIASES]


@main.command()
@config_options("discover")
@click.argument("catalog", callback=url_backend_checked)
@click.option("-o", "--out", "out_dir", default="pairminer-out", show_default=True,
              callback=url_backend_checked, help="Output folder (or URL).")
@click.option("--until", type=click.Choice(_UNTIL), default=None,
              help=f"Stop after this stage. Default: the last stage ({registry.DISCOVER_CHAIN[-1]}). "
                   "candidates and verified are old spellings of discover and verify.")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML file read like a workflow file (discover:/verify:/targets: sections; relative paths "
                   "resolve against its folder); command-line options override it.")
@click.option("--force", is_flag=True, help="Rerun the stages even when their outputs are fresh (see OUT/run.json).")
@click.option("--scheduler", default=None,
              help="Dask scheduler: threads, processes, synchronous, or tcp://host:port of a dask.distributed "
                   "cluster.  [default: the --config file's, else threads]")
@quiet_verbose_options
def discover(catalog, out_dir, until, config_file, force, scheduler, quiet, verbose, **options):
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
    # --audio-root is discover's option, and verify and targets read the same audio.
    audio_root = options.get("audio_root")
    overrides = {s: {"audio_root": audio_root} for s in registry.DISCOVER_CHAIN
                 if "audio_root" in registry.stage(s).path_fields}
    overrides["discover"] = {k: v for k, v in options.items() if v is not None and v != ()}
    wf = builtin_workflow(catalog, out_dir, config_file=config_file, scheduler=scheduler, overrides=overrides)
    res = run_workflow(wf, until=until, force=force, progress=not quiet)
    for o in res.outcomes:
        if o.status == "ran":
            click.echo(o.result.summary() if hasattr(o.result, "summary") else f"{o.stage}: done")
        elif o.status == "skipped":
            click.echo(f"{o.stage}: skipped (fresh; use --force to rerun)")
    click.echo(f"  {res.run_json}")
