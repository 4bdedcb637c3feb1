"""The configurations of the audio pass: verify, targets, stems alone, or any chain of them in one pass.

`run_pass` builds each stage's session and step client, runs `AudioPass` once and finishes the
sessions in pipeline order. `run_verify`, `run_targets` and `run_stems` call it with one stage; the
workflow runner calls `run_chain` (every audio stage's `StageSpec.fused_with`) when consecutive audio
stages run in one invocation, so each file is decoded once for all of them.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from ..parallel import check_scheduler
from .driver import AudioPass

log = logging.getLogger(__name__)

AUDIO_STAGES = ("verify", "targets", "stems")
"""The stages that are steps of the audio pass, in the order they run in a pair task."""


def _client(stage: str, out_dir: str, config: Any, input_path: str) -> Any:
    """The step client of `stage`, with its session open (verify also owns the input)."""
    if stage == "verify":
        from ..verify.session import VerifySession
        from ..verify.step import VerifyClient

        return VerifyClient(VerifySession(input_path, out_dir, config))
    if stage == "targets":
        from ..targets.session import TargetsSession
        from ..targets.step import TargetsClient

        client = TargetsClient(TargetsSession(out_dir, config))
        with client.timings.step("read_input"):
            client.session.load_existing()
        client.session.open_writer()
        return client
    if stage == "stems":
        from ..stems.session import StemsSession
        from ..stems.step import StemsClient

        return StemsClient(StemsSession(out_dir, config))
    raise ValueError(f"{stage} is not a step of the audio pass (one of {', '.join(AUDIO_STAGES)})")


def run_pass(input_path: str, outs: dict[str, str], configs: dict[str, Any], *, scheduler: str = "threads",
             progress: bool = True) -> dict[str, Any]:
    """Run the audio stages named in `outs` as one pass over the audio.

    Args:
        input_path: candidates.parquet when verify runs, else verified.parquet.
        outs: stage -> its output folder (verify: OUT; targets: OUT/targets; stems: OUT/stems).
        configs: stage -> its config.
        scheduler: Dask scheduler (threads, processes, synchronous or tcp://host:port).
        progress: show a progress bar per stage.

    Returns:
        stage -> its result (`VerifyResult`, `TargetsResult`, `StemsResult`), as the stage alone returns it.
    """
    stages = [s for s in AUDIO_STAGES if s in outs]
    unknown = set(outs) - set(AUDIO_STAGES)
    if unknown or not stages:
        raise ValueError(f"not audio stages: {sorted(unknown) or '(none)'}")
    check_scheduler(scheduler)
    clients: list[Any] = []
    try:
        if stages[0] != "verify":  # a pass over verified.parquet: its rows are the first "step"
            from .source import VerifiedRowsClient

            clients.append(VerifiedRowsClient(input_path))
            clients[0].source()  # the input's columns are checked before any output is touched
        for stage in stages:
            clients.append(_client(stage, outs[stage], configs[stage], input_path))
        pass_ = AudioPass(clients, scheduler=scheduler, progress=progress)
        with _timed([c for c in clients if c.step.name in ("targets", "stems")]):
            pass_.run()
        for c in clients:
            c.close()
    except BaseException:
        for c in clients:
            c.abort()
        raise
    finally:
        for c in clients:
            c.cleanup()
    results: dict[str, Any] = {}
    first = clients[0]
    for c in clients:
        res = c.finish(scheduler, first, results)
        if c.step.name in outs:
            results[c.step.name] = res
    return results


class _timed:
    """Each later step's whole pass counts as its compute time (its work is spread over the pass)."""

    def __init__(self, clients: Sequence[Any]):
        self.steps = [c.timings.step("compute_and_write") for c in clients]

    def __enter__(self) -> None:
        for s in self.steps:
            s.__enter__()

    def __exit__(self, *exc: Any) -> None:
        for s in reversed(self.steps):
            s.__exit__(*exc)


def run_chain(input_path: str, outs: Sequence[str], configs: Sequence[Any], *, stages: Sequence[str],
              scheduler: str = "threads", progress: bool = True) -> dict[str, Any]:
    """`run_pass` as the workflow runner calls it: parallel lists of stages, output folders and configs."""
    return run_pass(input_path, dict(zip(stages, outs)), dict(zip(stages, configs)), scheduler=scheduler,
                    progress=progress)
