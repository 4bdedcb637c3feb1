"""One place that turns `--scheduler` into a Dask scheduler, and computes graphs with progress.

`threads` (default), `processes` and `synchronous` use Dask's local schedulers; a `tcp://host:port`
(or `tls://`) address connects a dask.distributed Client. The stage code is the same either way.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any, Iterator, Sequence

import dask

from .errors import ConfigError, InputError

log = logging.getLogger(__name__)

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
# Retries let dask.distributed recompute a task whose worker died mid-run.
DEFAULT_RETRIES = 3


def check_scheduler(spec: str) -> str:
    spec = (spec or "threads").strip()
    if spec in LOCAL_SCHEDULERS or spec.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        return spec
    raise ConfigError(
        f"unknown scheduler {spec!r}: use threads, processes, synchronous or a tcp://host:port address"
    )


class Runner:
    """Computes Dask collections on the chosen scheduler. Use through `dask_runner(...)`."""

    def __init__(self, spec: str, client: Any = None, progress: bool = True, retries: int = DEFAULT_RETRIES):
        self.spec = spec
        self.client = client
        self.progress = progress
        self.retries = retries

    @property
    def distributed(self) -> bool:
        return self.client is not None

    def compute(self, *collections: Any, label: str = "") -> Sequence[Any]:
        """Compute collections (delayed objects, lists of them, dask dataframes) and return results."""
        if not collections:
            return ()
        if label:
            log.info("computing %s", label)
        if self.client is not None:
            futures = self.client.compute(list(collections), retries=self.retries)
            if self.progress:
                from distributed import progress

                progress(futures, notebook=False)
                sys.stderr.write("\n")
            return self.client.gather(futures)
        scheduler = self.spec
        if self.progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar(out=sys.stderr, minimum=1.0):
                return dask.compute(*collections, scheduler=scheduler)
        return dask.compute(*collections, scheduler=scheduler)


@contextlib.contextmanager
def dask_runner(scheduler: str = "threads", *, progress: bool = True) -> Iterator[Runner]:
    """Context manager yielding a Runner bound to `scheduler`."""
    spec = check_scheduler(scheduler)
    if spec in LOCAL_SCHEDULERS:
        yield Runner(spec, progress=progress)
        return
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ConfigError("a tcp:// scheduler needs dask.distributed: pip install distributed") from exc
    try:
        client = Client(spec, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {spec} ({exc}); is `dask scheduler` running there?") from exc
    try:
        yield Runner(spec, client=client, progress=progress)
    finally:
        client.close()
