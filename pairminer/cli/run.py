"""`pairminer run WORKFLOW.yaml`: a few lines over pairminer.workflow.run.run_workflow."""

from __future__ import annotations

import click

from .. import stages as registry
from . import main
from ._options import init_logging, quiet_verbose_options



class _StageChoice(click.Choice):
    """The registry's stage names, read when the command runs (a registered stage is a valid choice)."""

    def __init__(self) -> None:
        super().__init__([])

    @property
    def choices(self):  # noqa: D401
        return list(registry.STAGE_NAMES)

    @choices.setter
    def choices(self, value) -> None:
        pass


@main.command()
@click.argument("workflow", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", "out_dir", default=None, help="Output folder (or URL), overriding the file's `out:`.")
@click.option("--from", "from_stage", type=_StageChoice(), default=None, help="Start at this stage.")
@click.option("--until", type=_StageChoice(), default=None, help="Stop after this stage.")
@click.option("--force", is_flag=True, help="Rerun the selected stages even when their outputs are fresh.")
@click.option("--dry-run", is_flag=True, help="Print which stages would run or be skipped, and why; run nothing.")
@click.option("--scheduler", default=None,
              help="Dask scheduler overriding the file's: threads, processes, synchronous or tcp://host:port.")
@quiet_verbose_options
def run(workflow, out_dir, from_stage, until, force, dry_run, scheduler, quiet, verbose):
    """Run the stages of a WORKFLOW file in order, skipping the ones whose outputs are fresh.

    A stage is fresh when its config, its input files (and the audio they name) and its outputs are
    what OUT/run.json recorded when it last succeeded. A stage that runs makes every later stage run.
    OUT/run.json records what ran, why, the timings and the counts.

    \b
    Example:
      pairminer run workflows/demo.yaml
      pairminer run workflows/demo.yaml --dry-run
      pairminer run workflows/demo.yaml --from targets --force
    """
    from ..workflow.run import format_counts, format_plan, run_workflow

    init_logging(verbose, quiet)

    def on_event(o) -> None:
        if o.status == "running":
            click.echo(f"{o.stage}: running ({o.reason})")
        elif o.status == "skipped":
            click.echo(f"{o.stage}: skipped (fresh)")
        elif o.status == "ran":
            click.echo(f"{o.stage}: done in {o.duration_s:.1f} s{format_counts(o)}")
        elif o.status == "failed":
            click.echo(f"{o.stage}: failed after {o.duration_s:.1f} s", err=True)

    res = run_workflow(workflow, out_dir, from_stage=from_stage, until=until, force=force, dry_run=dry_run,
                       scheduler=scheduler, progress=not quiet, on_event=None if dry_run else on_event)
    if dry_run:
        click.echo(f"plan for {res.out_dir} (dry run, nothing was run):")
        click.echo(format_plan(res))
    else:
        click.echo(f"{len(res.ran)} stage(s) ran, {len(res.skipped)} skipped (fresh) -> {res.run_json}")
