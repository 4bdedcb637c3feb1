"""The workflow runner: run a slice of the stage registry in order, skipping fresh stages; record OUT/run.json.

`pairminer run WORKFLOW.yaml` and `pairminer discover CATALOG --until STAGE` both end here. What a
stage reads, writes and owns comes from pairminer/stages.py; nothing below switches on stage names.

Never deleting what a run did not write: a stage that owns a folder (targets' OUT/targets, train's
OUT/runs/<source>) records in run.json, file by file, what its runs wrote there (`written`: each
file's path, size and mtime; while a stage runs, `before` holds the folder as it found it, so the
files of a killed run are known too). A rerun that must start afresh removes those files only, and
only while they are as recorded: a file the user put there (`eval.json`, `separated/`, notes) is
never removed. A folder the workflow did not create and that holds files is not used at all; the run
stops and says how to go on.

Entries are keyed by stage and output folder (`output`): a vocals workflow and an instrumental
workflow sharing an OUT keep one `train` entry each (the other workflow's entries stay in
`other_entries`), so neither takes the other's model for its own.

One writer per OUT: the run holds OUT's lock (`pairminer.locking`), and each stage the lock of the
folder it writes, for as long as it runs.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from .. import stages as registry
from .. import storage as pio
from .file import Workflow, load_workflow
from .record import _carry, _now, _previous_entry, _read_previous, check_before_work, selected_stages  # noqa: F401
from .ownership import (_as_records, _entry_output, _known_written, _must_start_afresh, _owned_folder, _relative,
                        _reset_owned_folder, _snapshot, _written_after, output_key)
from .freshness import (config_hash, decide, hash_in_background, input_fingerprints, output_fingerprints, refreshed,
                        same_inputs)

log = logging.getLogger(__name__)

RUN_JSON = registry.artifact("run_record").path
RUN_SCHEMA = registry.artifact("run_record").schema


@dataclass
class StageOutcome:
    """What happened (or, in a dry run, would happen) to one stage.

    Attributes:
        stage: the stage name.
        action: "run" | "skip" | "out_of_range" (decided before running).
        status: "ran" | "skipped" | "failed" | "not_selected" | "would_run" | "would_skip".
        reason: why it runs ("config changed: min_score 90.0 -> 80.0") or "fresh".
        duration_s: wall time of the stage in this invocation (None when it did not run).
        results: its counts (run.json `results`), also for a skipped stage (from its last run).
        result: the stage's own result object when it ran in this invocation.
    """

    stage: str
    action: str
    status: str
    reason: str
    duration_s: float | None = None
    results: dict | None = None
    result: Any = None
    error: str | None = None


@dataclass
class WorkflowResult:
    out_dir: str
    run_json: str | None
    outcomes: list[StageOutcome]
    dry_run: bool = False

    @property
    def ran(self) -> list[str]:
        return [o.stage for o in self.outcomes if o.status == "ran"]

    @property
    def skipped(self) -> list[str]:
        return [o.stage for o in self.outcomes if o.status == "skipped"]

    def outcome(self, stage: str) -> StageOutcome:
        for o in self.outcomes:
            if o.stage == stage:
                return o
        raise KeyError(stage)


# ----------------------------------------------------------------------------------------------
# One stage


def run_stage(wf: Workflow, stage: str, progress: bool, *, resume: bool = False) -> Any:
    """Call the stage's run function on this workflow's paths (the registry says which)."""
    spec = registry.stage(stage)
    kwargs: dict[str, Any] = {"progress": progress}
    if spec.uses_scheduler:
        kwargs["scheduler"] = wf.scheduler
    if spec.resumable:
        kwargs["resume"] = resume
    return spec.run_function()(wf.artifact_path(spec.run_input), wf.artifact_path(spec.run_output),
                               wf.config(stage), **kwargs)


def run_fused(wf: Workflow, stages: list[str], progress: bool) -> dict[str, Any]:
    """Run stages as one pass through their shared `StageSpec.fused_with` driver: {stage: result}."""
    specs = [registry.stage(s) for s in stages]
    kwargs: dict[str, Any] = {"progress": progress, "stages": list(stages)}
    if specs[0].uses_scheduler:
        kwargs["scheduler"] = wf.scheduler
    fn = registry._load(specs[0].fused_with)
    return fn(wf.artifact_path(specs[0].run_input), [wf.artifact_path(s.run_output) for s in specs],
              [wf.config(s.name) for s in specs], **kwargs)


def fused_chain(stage: str, selected: list[str]) -> list[str]:
    """`stage` and the selected stages right after it that share its `fused_with` driver."""
    spec = registry.stage(stage)
    chain = [stage]
    if not spec.fused_with:
        return chain
    names = list(registry.STAGE_NAMES)
    for nxt in names[names.index(stage) + 1:]:
        if nxt not in selected or registry.stage(nxt).fused_with != spec.fused_with:
            break
        chain.append(nxt)
    return chain


def stage_results(stage: str, res: Any) -> dict[str, Any]:
    """The counts of a stage result, as recorded in run.json."""
    return registry.stage(stage).results(res)


def _execute(wf: Workflow, stage: str, prev: dict | None, reason: str, force: bool, progress: bool,
             entries: dict[str, dict], save: Callable[[], None], emit: Callable[[StageOutcome], None]) -> StageOutcome:
    ctx = _prepare(wf, stage, prev, force, reason, entries, save, emit)
    t0 = time.perf_counter()
    try:
        with _stage_lock(wf, stage):
            _start_afresh_if_needed(wf, ctx, prev, force, entries, save)
            try:
                res = run_stage(wf, stage, progress, resume=ctx["resume"])
            finally:
                _record_written(wf, ctx, entries)
    except Exception as exc:  # recorded in run.json, then re-raised for the caller
        return _failed(ctx, exc, round(time.perf_counter() - t0, 4), entries, emit)
    return _succeeded(wf, ctx, res, round(time.perf_counter() - t0, 4), entries, save, emit)


def _stage_lock(wf: Workflow, stage: str):
    """The write lock of the folder the stage writes (OUT's own lock is held by the whole run)."""
    from ..locking import output_lock

    spec = registry.stage(stage)
    return output_lock(wf.artifact_path(spec.run_output), what=f"pairminer run ({stage})")


def _record_written(wf: Workflow, ctx: dict, entries: dict[str, dict]) -> None:
    """After a stage ran (or failed): record the files it wrote in its folder; forget the snapshot."""
    e = entries[ctx["stage"]]
    if ctx["folder"] is not None:
        e["written"] = _written_after(wf, ctx["folder"], e.get("written"), ctx.get("before"))
    e.pop("before", None)


def _execute_fused(wf: Workflow, stages: list[str], prevs: list[dict | None], reasons: list[str], force: bool,
                   progress: bool, entries: dict[str, dict], save: Callable[[], None],
                   emit: Callable[[StageOutcome], None]) -> list[StageOutcome]:
    """Run stages as one pass (their `StageSpec.fused_with`); each keeps its run.json entry.

    The wall time of the pass is split evenly between the entries (the work is shared).
    """
    ctxs = [_prepare(wf, s, p, force, r, entries, save, emit) for s, p, r in zip(stages, prevs, reasons)]
    t0 = time.perf_counter()
    try:
        with _stage_lock(wf, stages[0]), _stage_lock(wf, stages[1]):
            for ctx, p in zip(ctxs, prevs):
                _start_afresh_if_needed(wf, ctx, p, force, entries, save)
            try:
                res = run_fused(wf, stages, progress)
            finally:
                for ctx in ctxs:
                    _record_written(wf, ctx, entries)
    except Exception as exc:
        dur = round(time.perf_counter() - t0, 4)
        # One pass: neither stage completed (verify's tables are written at the end of the pass).
        out = [_failed(ctxs[0], exc, dur, entries, emit)]
        for ctx, s in zip(ctxs[1:], stages[1:]):
            entries[s]["inputs"] = ctx["hashed_inputs"]()
            entries[s].update(status="failed", duration_s=dur, error=out[0].error)
        return out
    dur = round((time.perf_counter() - t0) / len(stages), 4)
    # The later stages read what the first wrote in the same pass: fingerprint their inputs now.
    for ctx, s in zip(ctxs[1:], stages[1:]):
        ctx["hashed_inputs"]()  # the stat-time hashing thread, done with
        fresh = input_fingerprints(wf, s, content=True)
        ctx["hashed_inputs"] = lambda fresh=fresh: fresh
        log.info("%s: ran in one pass with %s", s, stages[0])
    return [_succeeded(wf, ctx, res[s], dur, entries, save, emit) for ctx, s in zip(ctxs, stages)]


def _prepare(wf: Workflow, stage: str, prev: dict | None, force: bool, reason: str, entries: dict[str, dict],
             save: Callable[[], None], emit: Callable[[StageOutcome], None]) -> dict[str, Any]:
    spec = registry.stage(stage)
    cfg = wf.config(stage)
    chash = config_hash(cfg)
    # An interrupted run of a resumable stage with the same config and inputs continues from its
    # checkpoint; any other rerun of a stage that owns a folder may have to start from an empty one.
    resume = False
    if spec.resumable and (prev or {}).get("status") in ("failed", "running") and not force:
        resume = prev.get("config_hash") == chash and same_inputs(prev.get("inputs"), input_fingerprints(wf, stage))
    folder, owned = _owned_folder(wf, stage, prev)
    owned_list = [o for o in (prev or {}).get("owned") or [] if folder is not None and o == _relative(wf, folder)]
    if folder is not None and owned and _relative(wf, folder) not in owned_list:
        owned_list.append(_relative(wf, folder))
    inputs = input_fingerprints(wf, stage)  # stats now; content hashes while the stage runs
    hashed_inputs = hash_in_background(inputs)
    entries[stage] = {"stage": stage, "output": output_key(wf, stage), "status": "running", "reason": reason,
                      "duration_s": None, "error": None, "config_hash": chash, "inputs": inputs,
                      "last_success": None, "owned": owned_list}
    if folder is not None:
        entries[stage]["written"] = _known_written(wf, folder, prev)
    save()
    emit(StageOutcome(stage, "run", "running", reason))
    log.info("%s: running (%s)", stage, reason)
    return {"stage": stage, "cfg": cfg, "chash": chash, "resume": resume, "folder": folder, "owned": owned,
            "inputs": inputs, "hashed_inputs": hashed_inputs, "reason": reason}


def _start_afresh_if_needed(wf: Workflow, ctx: dict, prev: dict | None, force: bool, entries: dict[str, dict],
                            save: Callable[[], None]) -> None:
    """Clear what the stage wrote when it must start afresh; then snapshot its folder (recorded in
    run.json as `before` while the stage runs, so a killed run's files are known)."""
    if ctx["folder"] is None:
        return
    e = entries[ctx["stage"]]
    if _must_start_afresh(ctx["stage"], prev, ctx["chash"], force, ctx["resume"]):
        e["written"] = _reset_owned_folder(wf, ctx["stage"], ctx["folder"], ctx["owned"], e.get("written") or [])
    ctx["before"] = _snapshot(wf, ctx["folder"])
    if ctx["before"] is not None:
        e["before"] = _as_records(ctx["before"])
        save()


def _failed(ctx: dict, exc: Exception, dur: float, entries: dict[str, dict],
            emit: Callable[[StageOutcome], None]) -> StageOutcome:
    stage = ctx["stage"]
    entries[stage]["inputs"] = ctx["hashed_inputs"]()
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    entries[stage].update(status="failed", duration_s=dur, error=msg)
    o = StageOutcome(stage, "run", "failed", ctx["reason"], duration_s=dur, error=msg, result=exc)
    emit(o)
    return o


def _succeeded(wf: Workflow, ctx: dict, res: Any, dur: float, entries: dict[str, dict], save: Callable[[], None],
               emit: Callable[[StageOutcome], None]) -> StageOutcome:
    stage = ctx["stage"]
    ctx["inputs"] = entries[stage]["inputs"] = ctx["hashed_inputs"]()
    results = stage_results(stage, res)
    entries[stage].update(status="ran", duration_s=dur, last_success={
        "finished_at": _now(), "duration_s": dur, "config": ctx["cfg"].to_dict(), "config_hash": ctx["chash"],
        "inputs": ctx["inputs"], "outputs": output_fingerprints(wf, stage, content=True), "results": results})
    save()
    o = StageOutcome(stage, "run", "ran", ctx["reason"], duration_s=dur, results=results, result=res)
    emit(o)
    return o


def run_workflow(workflow: Workflow | str | os.PathLike, out_dir: str | None = None, *,
                 from_stage: str | None = None, until: str | None = None, force: bool = False,
                 dry_run: bool = False, scheduler: str | None = None, progress: bool = True,
                 on_event: Callable[[StageOutcome], None] | None = None) -> WorkflowResult:
    """Run the workflow's stages in order, skipping fresh ones; record OUT/run.json.

    Args:
        workflow: a Workflow or the path of a workflow YAML file.
        out_dir: output folder overriding the file's `out:`.
        from_stage, until: run only the stages from / up to these (inclusive); others keep their state.
        force: rerun every selected stage even when fresh.
        dry_run: decide and report the plan, but run nothing and write nothing.
        scheduler: Dask scheduler overriding the file's `scheduler:`.
        progress: progress bars inside the stages.
        on_event: called with a StageOutcome when a stage starts ("running") and when it ends or is
            skipped, e.g. to print "verify: skipped (fresh)".

    Returns:
        WorkflowResult with one StageOutcome per stage and the path of run.json.

    Raises:
        PairminerError: a stage failed (run.json then records it as failed with the message).
    """
    if isinstance(workflow, Workflow):
        if out_dir is not None and not pio.is_url(out_dir):
            out_dir = os.path.abspath(out_dir)
        wf = workflow.replace(out=out_dir, scheduler=scheduler and _check_scheduler(scheduler))
    else:
        wf = load_workflow(workflow, out=out_dir, scheduler=scheduler)
    selected = selected_stages(wf, from_stage, until)
    check_before_work(wf, selected)
    if dry_run:
        return _run_workflow(wf, selected, from_stage, until, force, True, progress, on_event)
    pio.ensure_dir(wf.out)
    from ..locking import output_lock

    with output_lock(wf.out, what=f"pairminer run {wf.source or ''}".strip()):
        return _run_workflow(wf, selected, from_stage, until, force, False, progress, on_event)


def _run_workflow(wf: Workflow, selected: list[str], from_stage: str | None, until: str | None, force: bool,
                  dry_run: bool, progress: bool, on_event: Callable[[StageOutcome], None] | None) -> WorkflowResult:
    all_previous = _read_previous(wf)
    previous = {s: _previous_entry(wf, s, all_previous) for s in registry.STAGE_NAMES}
    mine = {id(e) for e in previous.values() if e is not None}
    others = [e for e in all_previous if id(e) not in mine
              and (e.get("stage"), _entry_output(e)) not in {(s, output_key(wf, s)) for s in registry.STAGE_NAMES}]
    emit = on_event or (lambda o: None)
    outcomes: list[StageOutcome] = []
    entries: dict[str, dict] = {}
    upstream: str | None = None
    fused_done: dict[str, StageOutcome | None] = {}  # second stages already run in one pass with the first
    t_all = time.perf_counter()

    doc = {"pairminer_version": _version(), "workflow": wf.source, "catalog": wf.catalog, "out": wf.out,
           "scheduler": wf.scheduler, "started_at": _now(), "finished_at": None, "status": "running",
           "invocation": {"from": from_stage, "until": until, "force": bool(force)},
           "workflow_config": wf.to_dict(), "versions": None, "stages": [], "timings_s": {}}

    def save() -> None:
        if dry_run:
            return
        from ..runinfo import versions

        doc["versions"] = doc["versions"] or versions()
        doc["stages"] = [entries[s] for s in registry.STAGE_NAMES if s in entries]
        if others:
            doc["other_entries"] = others
        pio.write_json(wf.path(RUN_JSON), doc, RUN_SCHEMA)

    for stage in registry.STAGE_NAMES:
        prev = previous.get(stage)
        if stage not in selected:
            why = "not in this workflow's stages" if stage not in wf.stages else "outside --from/--until"
            outcomes.append(StageOutcome(stage, "out_of_range", "not_selected", why))
            entries[stage] = _carry(wf, prev, stage, "not_selected", why)
            continue
        if stage in fused_done:  # ran in one pass with the stage before it
            o = fused_done[stage]
            outcomes.append(o)
            doc["timings_s"][stage] = o.duration_s
            continue
        action, reason = decide(wf, stage, prev, force=force, upstream=upstream)
        if action == "skip":
            last = prev["last_success"]
            o = StageOutcome(stage, "skip", "would_skip" if dry_run else "skipped", reason, results=last.get("results"))
            outcomes.append(o)
            entries[stage] = _carry(wf, prev, stage, "skipped", reason)
            entries[stage]["last_success"] = {
                **last, "inputs": refreshed(last.get("inputs", []), input_fingerprints(wf, stage)),
                "outputs": refreshed(last.get("outputs", []), output_fingerprints(wf, stage))}
            emit(o)
            continue
        upstream = upstream or f"upstream stage {stage} {'would run' if dry_run else 'ran'}"
        if dry_run:
            o = StageOutcome(stage, "run", "would_run", reason)
            outcomes.append(o)
            emit(o)
            continue
        chain = [s for s in fused_chain(stage, selected) if s not in fused_done]
        if len(chain) > 1:
            # The next stages run too (their upstream runs now): one pass does them all (StageSpec.fused_with).
            reasons = [reason] + [decide(wf, s, previous.get(s), force=force, upstream=upstream)[1] for s in chain[1:]]
            done = _execute_fused(wf, chain, [previous.get(s) for s in chain], reasons, force, progress,
                                  entries, save, emit)
            for s, o in zip(chain[1:], done[1:]):
                fused_done[s] = o
            o = done[0]
        else:
            o = _execute(wf, stage, prev, reason, force, progress, entries, save, emit)
        outcomes.append(o)
        doc["timings_s"][stage] = o.duration_s
        if o.status == "failed":
            doc["status"], doc["finished_at"] = "failed", _now()
            doc["timings_s"]["total"] = round(time.perf_counter() - t_all, 4)
            save()
            raise o.result  # the stage's own error, already recorded in run.json
    doc["status"], doc["finished_at"] = "ok", _now()
    doc["timings_s"]["total"] = round(time.perf_counter() - t_all, 4)
    save()
    return WorkflowResult(out_dir=wf.out, run_json=None if dry_run else wf.path(RUN_JSON), outcomes=outcomes,
                          dry_run=dry_run)


def _check_scheduler(spec: str) -> str:
    from ..parallel import check_scheduler

    return check_scheduler(spec)


def _version() -> str:
    from .. import __version__

    return __version__


def format_plan(result: WorkflowResult) -> str:
    """One line per stage: "verify: would run (config changed: max_ber 0.35 -> 0.3)"."""
    lines = []
    for o in result.outcomes:
        if o.status == "not_selected":
            lines.append(f"{o.stage}: not run ({o.reason})")
        elif o.action == "skip":
            lines.append(f"{o.stage}: {'would skip' if result.dry_run else 'skipped'} (fresh)")
        else:
            lines.append(f"{o.stage}: {'would run' if result.dry_run else o.status} ({o.reason})")
    return "\n".join(lines)


def format_counts(o: StageOutcome) -> str:
    """" [rows_read 400, kept 12]": the counts of a stage that `pairminer run` prints."""
    counts = (o.results or {}).get("counts") or {}
    keys = registry.stage(o.stage).summary_counts
    shown = ", ".join(f"{k} {counts[k]:,}" if isinstance(counts.get(k), int) else f"{k} {counts.get(k)}"
                      for k in keys if k in counts)
    return f" [{shown}]" if shown else ""
