"""The `pairminer` command: a thin click group. Each command parses options and calls one library
function. Commands live in the modules of this package and are registered on import.

Errors: a PairminerError becomes a one-line message and a non-zero exit; anything unexpected is
also one line unless `-v` asks for the traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys
import traceback

# The command line is an application, so it may pick Arrow's allocator (before pyarrow is imported):
# jemalloc keeps freed pages instead of returning them to the OS, which cut discover's system time
# and wall time by ~10% on a 10M-row catalog (docs/benchmarks.md). A user's own setting wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

import click

from ..errors import PairminerError

VERBOSITY = {"level": 0}


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except PairminerError as exc:
            if VERBOSITY["level"] > 0:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # the CLI never shows a traceback unless asked
            if VERBOSITY["level"] > 0:
                traceback.print_exc()
            msg = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(f"error: unexpected {type(exc).__name__}: {msg} (rerun with -v for details)", err=True)
            ctx.exit(1)

    def list_commands(self, ctx):
        return sorted(super().list_commands(ctx))


def setup_logging(verbose: int, quiet: bool) -> None:
    VERBOSITY["level"] = max(VERBOSITY["level"], verbose)
    lvl = VERBOSITY["level"]
    level = logging.WARNING if (quiet or lvl == 0) else (logging.DEBUG if lvl > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    # progress lines (pairminer.progress) are INFO: shown unless --quiet, even when other INFO is not
    logging.getLogger("pairminer.progress").setLevel(logging.WARNING if quiet else logging.INFO)
    for noisy in ("distributed", "numba", "matplotlib", "fsspec", "asyncio", "tornado", "bokeh"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", count=True, help="More detail in logs; -v also shows tracebacks of errors.")
@click.version_option(package_name="pairminer")
def main(verbose: int) -> None:
    """Mine (mix, instrumental) pairs from a music catalog and turn them into separation training data.

    \b
    The pipeline, one command per stage:
      discover  catalog -> candidates.parquet (and, chained, verify + targets + stems)
      verify    Chromaprint check of each candidate pair -> verified.parquet
      targets   aligned vocal targets -> STFT shards + manifest.parquet
      stems     waveform stems per pair (mixture, vocals, instrumental) for MSST, demucs, open-unmix
      train / separate / evaluate   the bundled U-Net
      report    the audit: funnel, genres, hours, near misses, clips to listen to, report.html
      show      one pair: every stage's verdict, its clips and spectrogram
      listen    a blinded listening test page of separated sources; --collect aggregates its ratings
      run       a workflows/*.yaml chain of stages, skipping fresh ones

    Start with: pairminer discover data/sample/catalog.csv -o OUT
    """
    VERBOSITY["level"] = verbose


for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
