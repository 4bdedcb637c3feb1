"""One place that turns `--scheduler` into a Dask scheduler, and computes graphs with progress
(counted per task through `pairminer.progress`).

`threads` (default), `processes` and `synchronous` use Dask's local schedulers; a `tcp://host:port`
address connects a dask.distributed Client, after a probe that fails fast (with a reason) when nothing
listens there, when it accepts and never answers, or when it is not a Dask scheduler. The stage code is
the same either way.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Sequence

from .errors import ConfigError, InputError

log = logging.getLogger(__name__)

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
# Retries let dask.distributed recompute a task whose worker died mid-run.
DEFAULT_RETRIES = 3


def _local_get(spec: str) -> Any:
    """The local scheduler's get function. Passing a callable instead of its name spares
    `dask.compute` its look-up of a dask.distributed client, which imports distributed (~0.3 s of
    every start) even when none can exist."""
    if spec == "synchronous":
        from dask.local import get_sync

        return get_sync
    if spec == "processes":
        from dask.multiprocessing import get

        return get
    from dask.threaded import get

    return get


# Seconds to wait for a scheduler to connect and to answer its handshake; also the longest a connected
# scheduler may take to answer a liveness ping while a graph runs.
CONNECT_TIMEOUT_S = 10.0
# While a graph runs on a cluster, the client checks the scheduler this often when no task finished.
HEARTBEAT_S = 5.0
# Seconds to wait for a scheduler with no workers to get one, before giving up with a reason. Settable
# with the environment variable PAIRMINER_WORKER_TIMEOUT_S (e.g. while a batch system queues the workers).
WORKER_TIMEOUT_S = 120.0
WORKER_TIMEOUT_ENV = "PAIRMINER_WORKER_TIMEOUT_S"


def worker_timeout_s() -> float:
    """The seconds to wait for workers: PAIRMINER_WORKER_TIMEOUT_S if set (a positive number), else
    WORKER_TIMEOUT_S."""
    import math
    import os

    raw = os.environ.get(WORKER_TIMEOUT_ENV, "").strip()
    if not raw:
        return WORKER_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{WORKER_TIMEOUT_ENV}={raw!r}: give a positive number of seconds")
    return value


def check_scheduler(spec: str) -> str:
    """Validate a `--scheduler` value; return it normalised.

    Accepted: threads, processes, synchronous, or tcp://HOST:PORT of a dask.distributed scheduler.
    tls://, ucx:// and inproc:// are refused with the reason (they passed this check once and then
    failed at shutdown).
    """
    spec = (spec or "threads").strip()
    if spec in LOCAL_SCHEDULERS:
        return spec
    scheme, sep, rest = spec.partition("://")
    if not sep:
        if ":" in spec and spec.rsplit(":", 1)[1].isdigit():
            raise ConfigError(f"scheduler {spec!r}: write the address as tcp://{spec}")
        raise ConfigError(
            f"unknown scheduler {spec!r}: use threads, processes, synchronous or a tcp://host:port address"
        )
    if scheme == "tls":
        raise ConfigError(f"scheduler {spec}: tls:// needs certificates pairminer does not configure; connect over "
                          "tcp:// inside a private network, or tunnel to the scheduler (ssh -L 8786:localhost:8786)")
    if scheme in ("ucx", "inproc", "ws", "wss"):
        raise ConfigError(f"scheduler {spec}: {scheme}:// is not supported; give the tcp://host:port address "
                          "that `dask scheduler` prints")
    if scheme != "tcp":
        raise ConfigError(f"scheduler {spec}: unknown scheme {scheme}://; give a tcp://host:port address")
    host, colon, port = rest.rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        raise ConfigError(f"scheduler {spec}: give host and port, e.g. tcp://head-node:8786")
    return f"tcp://{rest.rstrip('/')}"


def probe_scheduler(spec: str, timeout_s: float | None = None) -> None:
    """Check that a Dask scheduler listens at `spec` (tcp://host:port) and answers, within `timeout_s`.

    A dask.distributed scheduler sends its handshake as soon as a connection is accepted: an 8-byte
    little-endian length, then a small message. Anything else is not a Dask scheduler.

    Raises:
        InputError: nothing listens, it accepts but does not answer, or it answers with other bytes.
    """
    import socket
    import struct

    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    host, _, port = spec.removeprefix("tcp://").rpartition(":")
    host = host.strip("[]")
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout_s)
    except socket.timeout as exc:
        raise InputError(f"cannot reach the Dask scheduler at {spec}: no answer within {timeout_s:.0f} s; "
                         "check the address and the firewall") from exc
    except OSError as exc:
        raise InputError(f"cannot reach the Dask scheduler at {spec} ({exc.strerror or exc}); is `dask scheduler` "
                         "running there?") from exc
    try:
        sock.settimeout(timeout_s)
        head = b""
        while len(head) < 8:
            chunk = sock.recv(8 - len(head))
            if not chunk:
                raise InputError(f"{spec} closed the connection without a Dask handshake; is it a Dask scheduler?")
            head += chunk
        (n,) = struct.unpack("<Q", head)
        if not 0 < n < (16 << 20):
            raise InputError(f"{spec} is not a Dask scheduler (it answered with other bytes); give the address "
                             "that `dask scheduler` prints")
    except socket.timeout as exc:
        raise InputError(f"{spec} accepts connections but does not answer like a Dask scheduler within "
                         f"{timeout_s:.0f} s; give the address that `dask scheduler` prints") from exc
    except OSError as exc:
        raise InputError(f"cannot talk to the Dask scheduler at {spec} ({exc.strerror or exc})") from exc
    finally:
        sock.close()


class Runner:
    """Computes Dask collections on the chosen scheduler. Use through `dask_runner(...)`."""

    def __init__(self, spec: str, client: Any = None, progress: bool = True, retries: int = DEFAULT_RETRIES,
                 pool: Any = None):
        self.spec = spec
        self.client = client
        self.pool = pool
        self.progress = progress
        self.retries = retries

    @property
    def distributed(self) -> bool:
        return self.client is not None

    def compute(self, *collections: Any, label: str = "", progress: Any = None, unit: str = "task",
                weights: Sequence[int] | None = None) -> Sequence[Any]:
        """Compute collections (delayed objects, lists of them, dask dataframes) and return results.

        Progress counts the top-level tasks (each delayed object, or each item of a list of them) as
        they finish, not the batches: pass `progress` (a `pairminer.progress.Progress` that spans
        several calls, e.g. a whole stage), or let the call make its own bar named `label`.
        `weights` gives the count of each top-level task in order (e.g. the pairs of a chunk).
        """
        if not collections:
            return ()
        if label:
            log.info("computing %s", label)
        items = [(ci, ii, x) for ci, c in enumerate(collections)
                 for ii, x in (enumerate(c) if isinstance(c, (list, tuple)) else [(None, c)])]
        w = list(weights) if weights is not None else [1] * len(items)
        if len(w) != len(items):
            raise ValueError(f"weights has {len(w)} entries for {len(items)} tasks")
        own = None
        if progress is None and self.progress:
            from .progress import Progress

            progress = own = Progress(label or "compute", total=sum(w), unit=unit)
        try:
            if self.client is not None:
                return self._compute_distributed(collections, items, w, progress)
            import dask

            kwargs: dict[str, Any] = {"scheduler": _local_get(self.spec)}
            if self.pool is not None:
                kwargs["pool"] = self.pool
            if progress is None:
                return dask.compute(*collections, **kwargs)
            with _TaskCounter({getattr(x, "key", None): n for (_, _, x), n in zip(items, w)}, progress) as counter:
                out = dask.compute(*collections, **kwargs)
            progress.update(counter.remaining)  # tasks without a key of their own (dataframes)
            return out
        finally:
            if own is not None:
                own.close()

    def _compute_distributed(self, collections, items, weights, progress) -> Sequence[Any]:
        futures = self.client.compute([x for _, _, x in items], retries=self.retries)
        try:
            self._wait_all(futures, weights, progress)
            flat = self.client.gather(futures)
        except BaseException:
            self.client.cancel(futures)
            raise
        out: list[Any] = [None] * len(collections)
        for (ci, ii, _), r in zip(items, flat):
            if ii is None:
                out[ci] = r
            else:
                out[ci] = [*(out[ci] or []), r]
        for ci, c in enumerate(collections):
            if isinstance(c, (list, tuple)) and not c:
                out[ci] = []
            elif isinstance(c, tuple):
                out[ci] = tuple(out[ci])
        return tuple(out)


    def _wait_all(self, futures, weights, progress) -> None:
        """Wait for every future, advancing `progress` as they finish (bound to this runner's client,
        never to a process-wide default one), and check the scheduler whenever nothing finished for
        HEARTBEAT_S: one that stops answering, or that has had no worker for the worker timeout, fails
        with a reason instead of hanging."""
        import time

        from distributed import wait
        from distributed.client import FIRST_COMPLETED

        pending = set(futures)
        index = {f.key: n for f, n in zip(futures, weights)}
        no_workers_since = None
        while pending:
            try:
                with self.client.as_current():
                    done, pending = wait(list(pending), timeout=HEARTBEAT_S, return_when=FIRST_COMPLETED)
            except TimeoutError:
                done = set()
            if progress is not None:
                for f in done:
                    progress.update(index.get(f.key, 1))
            if done or not pending:
                no_workers_since = None
                continue
            n_workers = _n_workers(self.client, self.spec)
            if n_workers:
                no_workers_since = None
                continue
            now = time.monotonic()
            if no_workers_since is None:
                no_workers_since = now
                log.warning("the Dask scheduler at %s has no workers; waiting up to %.0f s for one (set %s "
                            "to wait longer)", self.spec, worker_timeout_s(), WORKER_TIMEOUT_ENV)
            elif now - no_workers_since >= worker_timeout_s():
                raise InputError(f"the Dask scheduler at {self.spec} has had no workers for "
                                 f"{now - no_workers_since:.0f} s; start workers (dask worker {self.spec}) or set "
                                 f"{WORKER_TIMEOUT_ENV} to wait longer")


def _n_workers(client: Any, spec: str, timeout_s: float | None = None) -> int:
    """The scheduler's worker count, asked within `timeout_s` (CONNECT_TIMEOUT_S).

    Raises:
        InputError: the scheduler does not answer in time, or the connection is gone.
    """
    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    try:
        info = client.sync(client.scheduler.identity, callback_timeout=timeout_s)
    except (TimeoutError, OSError) as exc:
        what = "did not answer within %.0f s" % timeout_s if isinstance(exc, TimeoutError) else f"is unreachable ({exc})"
        raise InputError(f"the Dask scheduler at {spec} {what}; it may be frozen or overloaded, or the network "
                         "is down") from exc
    except Exception as exc:  # a closed comm, a scheduler shutting down
        raise InputError(f"lost the Dask scheduler at {spec}: {type(exc).__name__}: {exc}") from exc
    return len((info or {}).get("workers") or {})


def _wait_for_workers(client: Any, spec: str, n: int = 1, timeout_s: float | None = None) -> None:
    """Return once the scheduler has `n` workers; say so while waiting; give up after `timeout_s`
    (worker_timeout_s()) with a reason."""
    import time

    timeout_s = worker_timeout_s() if timeout_s is None else timeout_s
    have = _n_workers(client, spec)
    if have >= n:
        return
    log.warning("the Dask scheduler at %s has %d worker(s); waiting for %d worker(s), up to %.0f s (set %s to "
                "wait longer)", spec, have, n, timeout_s, WORKER_TIMEOUT_ENV)
    deadline = time.monotonic() + timeout_s
    while True:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        have = _n_workers(client, spec)
        if have >= n:
            log.info("the Dask scheduler at %s has %d worker(s)", spec, have)
            return
        if time.monotonic() >= deadline:
            raise InputError(f"the Dask scheduler at {spec} has no workers after waiting {timeout_s:.0f} s; start "
                             f"workers (dask worker {spec}) or set {WORKER_TIMEOUT_ENV} to wait longer")


class _TaskCounter:
    """A Dask local-scheduler callback that advances a Progress as the watched tasks finish."""

    def __init__(self, weights: dict, progress: Any):
        from dask.callbacks import Callback

        self._weights = {k: n for k, n in weights.items() if k is not None}
        self.remaining = sum(n for k, n in weights.items() if k is None)
        self._progress = progress
        watched = self._weights

        def posttask(key, result, dsk, state, worker_id):
            n = watched.pop(key, 0)
            if n:
                progress.update(n)

        self._cb = Callback(posttask=posttask)

    def __enter__(self) -> "_TaskCounter":
        self._cb.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cb.__exit__(*exc)
        self.remaining += sum(self._weights.values())  # e.g. keys the optimiser renamed
        self._weights.clear()


def opaque_task(func, *args: Any, name: str):
    """A Dask task calling ``func(*args)`` whose arguments Dask neither traverses nor hashes.

    `dask.delayed(func)(*args)` walks every argument looking for collections (into lists and
    dataclasses such as verify's `Fingerprint`) and, with pure=True, tokenizes them: for a chunk of 200 pairs'
    fingerprints that was most of the client's time per batch. The arguments here hold no Dask
    collections, so they are bound in a `functools.partial` and the task gets a unique key.
    """
    import functools
    import uuid

    import dask

    return dask.delayed(functools.partial(func, *args), pure=False, traverse=False,
                        name=f"{name}-partial-{uuid.uuid4().hex}")(dask_key_name=f"{name}-{uuid.uuid4().hex}")


@contextlib.contextmanager
def dask_runner(scheduler: str = "threads", *, progress: bool = True) -> Iterator[Runner]:
    """Context manager yielding a Runner bound to `scheduler`."""
    spec = check_scheduler(scheduler)
    if spec == "processes":
        # One pool for every graph of the stage: a spawned worker imports pyarrow, pandas and rapidfuzz
        # (seconds), and Dask would otherwise start a new pool for each compute.
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        import dask

        ctx = multiprocessing.get_context(dask.config.get("multiprocessing.context", "spawn"))
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=ctx) as pool:
            yield Runner(spec, progress=progress, pool=pool)
        return
    if spec in LOCAL_SCHEDULERS:
        yield Runner(spec, progress=progress)
        return
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ConfigError("a tcp:// scheduler needs dask.distributed: pip install distributed") from exc
    probe_scheduler(spec)
    try:
        client = Client(spec, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {spec} ({exc}); is `dask scheduler` running there?") from exc
    except Exception as exc:  # a scheduler of another version, a handshake that fails
        raise InputError(f"cannot connect to the Dask scheduler at {spec}: {type(exc).__name__}: {exc}") from exc
    try:
        _wait_for_workers(client, spec)
        yield Runner(spec, client=client, progress=progress)
    finally:
        try:
            client.close(timeout=CONNECT_TIMEOUT_S)
        except Exception:  # a frozen or vanished scheduler: the error that brought us here matters more
            log.debug("closing the Dask client failed", exc_info=True)
