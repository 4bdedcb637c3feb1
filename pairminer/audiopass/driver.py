"""`AudioPass`: one driver for every audio stage (verify, targets, stems) and any chain of them.

    rows (candidates or verified pairs) -> per batch: resolve paths, look file products up,
    plan task groups -> Dask tasks (decode each file once, at every rate and layout the steps ask
    for; run each step on the pair) -> each step's session gets its outcomes in row order.

`run_verify`, `run_targets`, `run_stems` and the chained pass (`pairminer.audiopass.run`) are
configurations of this one driver. Per batch of input rows:

1. **resolve** each pair's two audio paths (`--audio-root` confines them); a pair whose path cannot
   be resolved, or whose file already failed in this run, is the first step's early outcome;
2. **look up** the first step's file products (verify's fingerprint cache);
3. **file tasks** when no later step needs the pair's audio: each file whose product is missing is
   decoded once and its product made (a mix shared by ten versions is decoded once);
4. **pair tasks**, in groups whose outcomes fit the memory budget (the later steps' `cost`, e.g.
   one shard of STFT frames): each task decodes each file it needs once, at every request of every
   step that may still run (`pairminer.audio.load_audio_rates`), then runs the steps in order;
5. **deliver** each pair's outcomes to each step's client in row order, and the batch to the first.

Memory: the client holds one batch of rows and one group of outcomes; a worker holds the audio of the
pairs it runs.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Sequence


from ..audio import load_audio_rates, resolve_audio_path
from ..errors import AudioError
from ..parallel import dask_runner, opaque_task
from .steps import SIDES, Batch, FileResult, PairJob, PairResult

log = logging.getLogger(__name__)

# Most items one task takes, and how many tasks per worker core a batch should leave at least.
MAX_ITEMS_PER_TASK = 32
TASKS_PER_CORE = 4
_BLAS_LIMITED = False


def single_threaded_blas() -> None:
    """Run BLAS (OpenBLAS) on one thread in this process, once.

    The pass already runs one task per core. A threaded BLAS call in one task deadlocks when another
    task forks a decoder child at the same moment: OpenBLAS's pre-fork handler shuts its thread pool
    down under the running call, which then waits forever for workers that no longer exist (seen as
    a hang in `exec_blas` during the alignment's dot products while ffmpeg started; a test reproduces
    the race). One BLAS thread per task has no pool to shut down.
    """
    global _BLAS_LIMITED
    if _BLAS_LIMITED:
        return
    _BLAS_LIMITED = True
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        log.warning("threadpoolctl is missing: BLAS keeps its own threads (a fork during a BLAS call may hang)")


# What a decoder may raise besides AudioError that is still the file's own problem.
_FILE_PROBLEMS = (OSError, ValueError, RuntimeError, ImportError, MemoryError)


def task_chunk_size(n_items: int, cores: int | None = None) -> int:
    """Items per task for `n_items`: 1 while there are few, up to MAX_ITEMS_PER_TASK for many.

    Keeps at least TASKS_PER_CORE tasks per core (load balance), and the graph of a batch at most
    about n_items / MAX_ITEMS_PER_TASK tasks (client overhead).
    """
    cores = cores or os.cpu_count() or 1
    return int(max(1, min(MAX_ITEMS_PER_TASK, n_items // (TASKS_PER_CORE * cores))))


def resolve(path: Any, base_dir: str | None, audio_root: str | None) -> tuple[str | None, str | None]:
    """(resolved path, None) or (None, why not) for a row's audio path."""
    if path is None or (isinstance(path, float) and math.isnan(path)) or str(path) == "":
        return None, "no audio_path given for this track"
    try:
        return resolve_audio_path(str(path), base_dir=base_dir, audio_root=audio_root), None
    except AudioError as exc:
        return None, str(exc)


# ----------------------------------------------------------------------------- tasks (pure)

def decode(path: str, requests: Sequence[Any]) -> list[Any]:
    """`load_audio_rates`, with any decoder failure turned into each request's AudioError."""
    try:
        return load_audio_rates(path, list(requests))
    except _FILE_PROBLEMS as exc:  # still this file's problem only
        log.debug("decode of %s failed", path, exc_info=True)
        err = AudioError(f"{path}: cannot decode ({type(exc).__name__}: {exc})")
        return [err] * len(requests)


def pair_task(job: PairJob, steps: Sequence[Any]) -> PairResult:
    """Run the steps on one pair, decoding each of its files once (never raises on bad audio)."""
    t0 = time.perf_counter()
    result = PairResult()
    audio: dict[str, dict] = {side: {} for side in SIDES}
    live = [s for i, s in enumerate(steps) if i == 0 or s.name in job.wanted]
    for i, step in enumerate(live):
        for side in SIDES:
            need = [r for r in step.requests(job, side) if r not in audio[side]]
            if not need or job.paths.get(side) is None:
                continue
            # The requests of the steps that may still run ride along: one read of the file.
            later = [r for s in live[i + 1:] for r in s.requests(job, side) if r not in audio[side]]
            want = list(dict.fromkeys(need + later))
            for r, got in zip(want, decode(job.paths[side], want)):
                audio[side][r] = got
        outcome = step.run(job, audio, result)
        result.outcomes[step.name] = outcome
        if i == 0 and not step.passes(outcome):  # the first step gates; the later ones are independent
            break
    result.decode_s = time.perf_counter() - t0
    return result


def pair_chunk_task(jobs: list[PairJob], steps: Sequence[Any]) -> list[PairResult]:
    """`pair_task` over a chunk of pairs (one Dask task)."""
    single_threaded_blas()
    return [pair_task(job, steps) for job in jobs]


def file_chunk_task(paths: list[str], step: Any) -> list[FileResult]:
    """The first step's file product for each path (one Dask task over a chunk of files)."""
    single_threaded_blas()
    out = []
    for path in paths:
        t = time.perf_counter()
        got = decode(path, [step.product_request])[0]
        product = step.make_product(path, got)
        err = product if isinstance(product, str) else None
        out.append(FileResult(path, None if err else product, err, time.perf_counter() - t))
    return out


# ----------------------------------------------------------------------------- the driver

class AudioPass:
    """Run steps over the rows of the first step's source.

    Args:
        clients: the steps' clients, in order (the first gives the rows and classifies every pair;
            each later step gets the pairs that every step before it passed).
        scheduler: Dask scheduler (threads, processes, synchronous or tcp://host:port).
        progress: show progress bars (one per step).
    """

    def __init__(self, clients: Sequence[Any], *, scheduler: str = "threads", progress: bool = True):
        self.clients = list(clients)
        self.steps = [c.step for c in self.clients]
        self.scheduler = scheduler
        self.progress = progress
        self.first = self.clients[0]
        roots = {c.audio_root for c in self.clients if getattr(c, "audio_root", None)}
        if len(roots) > 1:
            from ..errors import ConfigError

            raise ConfigError(f"the chained stages name different audio_root folders ({', '.join(sorted(roots))}); "
                              "give them the same --audio-root")
        self.audio_root = roots.pop() if roots else None

    def run(self) -> None:
        """Read, compute and deliver every batch; the clients' `finish` is the caller's."""
        from contextlib import ExitStack

        from ..progress import Progress

        source = self.first.source()
        with ExitStack() as stack:
            runner = stack.enter_context(dask_runner(self.scheduler, progress=self.progress))
            self.bars = [stack.enter_context(Progress(c.label, source.n, unit="pair", enabled=self.progress))
                         for c in self.clients]
            for batch in source.batches():
                self._batch(runner, batch, source.base_dir)
            for bar in self.bars[1:]:
                bar.set_total(bar.done)

    def _jobs(self, batch: Batch, base_dir: str | None) -> list[PairJob]:
        jobs = []
        for i, row in enumerate(batch.rows):
            paths, errors = {}, {}
            for side in SIDES:
                paths[side], errors[side] = resolve(row.get(f"{side}_audio_path"), base_dir, self.audio_root)
            job = PairJob(batch.start + i, str(row.get("pair_id")), row, paths, path_errors=errors)
            job.wanted = tuple(c.step.name for c in self.clients[1:] if c.wants(job))
            jobs.append(job)
        return jobs

    def _batch(self, runner: Any, batch: Batch, base_dir: str | None) -> None:
        first = self.first
        jobs = self._jobs(batch, base_dir)
        stats = {"decoded": 0, "decoded_audio_s": 0.0, "decode_s": 0.0}
        products: dict[str, Any] = {}
        if hasattr(first, "lookup"):
            products, todo = first.lookup([j for j in jobs if not any(j.path_errors.values())])
            if todo and not any(j.wanted for j in jobs):
                self._file_phase(runner, todo, products, stats)
        for job in jobs:  # after the lookup and the file tasks: a file that failed fails its pairs here
            job.early = first.early_outcome(job)
        live = [j for j in jobs if j.early is None]
        decoding = any(j.wanted for j in live) or any(products.get(p) is None for j in live for p in j.paths.values())
        for group in self._groups(jobs):
            for job in group:  # what an earlier group of this batch learnt about the files
                job.products = {s: products.get(job.paths[s]) for s in SIDES}
            todo_jobs = [j for j in group if j.early is None]
            results: dict[int, PairResult] = {}
            self.bars[0].update(len(group) - len(todo_jobs))
            if todo_jobs:
                size = task_chunk_size(len(todo_jobs)) if decoding else first.pairs_per_task
                chunks = [todo_jobs[c:c + size] for c in range(0, len(todo_jobs), size)]
                tasks = [opaque_task(pair_chunk_task, chunk, self.steps, name=f"{first.step.name}-pairs")
                         for chunk in chunks]
                with first.timings.step(first.task_step_name(decoding)):
                    outs = runner.compute(tasks, label=f"{len(todo_jobs)} pair(s)",
                                          progress=self.bars[0] if self.progress else None,
                                          weights=[len(c) for c in chunks])[0]
                for job, res in zip(todo_jobs, (r for part in outs for r in part)):
                    results[job.row] = res
                self._learn(results, products, stats)
            self._deliver(group, results)
        first.end_batch(batch, stats)

    def _file_phase(self, runner: Any, todo: list[str], products: dict, stats: dict) -> None:
        first = self.first
        size = task_chunk_size(len(todo))
        chunks = [todo[c:c + size] for c in range(0, len(todo), size)]
        tasks = [opaque_task(file_chunk_task, chunk, first.step, name=f"{first.step.name}-files") for chunk in chunks]
        with first.timings.step(first.file_step_name):
            outs = runner.compute(tasks, label=f"{first.label}: files", unit="file",
                                  weights=[len(c) for c in chunks])[0]
        made = {}
        for fr in (r for part in outs for r in part):
            stats["decode_s"] += fr.decode_s
            if fr.error is not None:
                first.file_failed(fr.path, fr.error)
                continue
            products[fr.path] = made[fr.path] = fr.product
            stats["decoded_audio_s"] += first.product_seconds(fr.product)
        stats["decoded"] += len(made)
        first.store_products(made)

    def _learn(self, results: dict[int, PairResult], products: dict, stats: dict) -> None:
        """Fold the tasks' new file products and file errors into the batch state and the cache."""
        first, made = self.first, {}
        for res in results.values():
            stats["decode_s"] += res.decode_s
            stats["decoded_audio_s"] += res.decoded_audio_s
            for p, prod in res.products.items():
                if products.get(p) is None:
                    products[p] = made[p] = prod
            for p, reason in res.file_errors.items():
                first.file_failed(p, reason)
        stats["decoded"] += len(made)
        if made:
            first.store_products(made)

    def _groups(self, jobs: list[PairJob]) -> list[list[PairJob]]:
        """Jobs in groups whose later-step outcomes fit the clients' capacity (a pair alone may exceed it)."""
        later = self.clients[1:]
        capacity = min((c.capacity for c in later), default=0)
        if not later or capacity <= 0:
            return [jobs] if jobs else []
        groups, cur, cur_cost = [], [], 0
        for job in jobs:
            est = sum(c.cost(job) for c in later if c.step.name in job.wanted) if job.early is None else 0
            if cur and est and cur_cost + est > capacity:
                groups.append(cur)
                cur, cur_cost = [], 0
            cur.append(job)
            cur_cost += est
        if cur:
            groups.append(cur)
        return groups

    def _deliver(self, group: list[PairJob], results: dict[int, PairResult]) -> None:
        """Each step's outcomes, in row order (the later steps get the pairs the first one passes)."""
        first = self.first
        for job in group:
            res = results.get(job.row)
            outcome = job.early if res is None else res.outcomes.get(first.step.name)
            first.deliver(job, outcome)
            if not first.step.passes(outcome):
                continue
            for k, client in enumerate(self.clients[1:], start=1):
                self.bars[k].update(1)
                client.deliver(job, res.outcomes.get(client.step.name) if res is not None else None)

__all__ = ["AudioPass", "pair_task", "file_chunk_task", "task_chunk_size", "resolve", "single_threaded_blas"]
