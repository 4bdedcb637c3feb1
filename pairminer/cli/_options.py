"""Option decorators shared by several commands."""

from __future__ import annotations

import click

from . import setup_logging


def scheduler_option(f):
    return click.option(
        "--scheduler",
        default="threads",
        show_default=True,
        help="Dask scheduler: threads, processes, synchronous, or tcp://host:port of a dask.distributed cluster. "
             "threads is the fastest on one machine: Arrow, rapidfuzz and the audio decoders release the GIL, so "
             "threads already use every core; processes pays for starting worker processes (each imports "
             "pyarrow, pandas and rapidfuzz, ~2 s) and for copying data between them (about 2x slower for "
             "discover).",
    )(f)


def _apply_logging(ctx, param, value):
    return value


def quiet_verbose_options(f):
    """--quiet turns progress off; -v adds detail. Logging is configured when the command runs."""
    f = click.option("-q", "--quiet", is_flag=True, help="No progress display; warnings and errors only.")(f)
    f = click.option("-v", "--verbose", count=True, help="More detail; also shows tracebacks of errors.")(f)
    return f


def init_logging(verbose: int, quiet: bool) -> None:
    setup_logging(verbose, quiet)
