"""Workflows: run a `workflows/*.yaml` chain of stages, skipping the stages whose outputs are fresh.

A workflow file names the input catalog, the output folder, the Dask scheduler and one section per
stage (discover, verify, targets, train, report) whose keys are exactly that stage's config fields::

    catalog: ../data/sample/catalog.csv     # relative paths resolve against this file's folder
    out: ../pairminer-out/demo
    scheduler: threads
    discover: {min_score: 90}
    verify: {max_seconds: 30}
    targets: {}
    train: {max_steps: 4, device: cpu}
    report: {top_n: 10}

The stages read and write fixed places inside OUT::

    discover  CATALOG                  -> OUT/candidates.parquet, rejects.parquet, discover-report.json
    verify    OUT/candidates.parquet   -> OUT/verified.parquet, verify-report.json (+ fingerprint-cache/)
    targets   OUT/verified.parquet     -> OUT/targets/manifest.parquet, shards/, targets-report.json
    train     OUT/targets              -> OUT/runs/<train.source>/ (checkpoints, metrics, train-report.json)
    report    OUT                      -> OUT/report/report.html, report.json, plots

Freshness: after a stage succeeds, OUT/run.json records its config (and a hash of it), a fingerprint
(path, size, mtime_ns) of each input file, of the audio files its input table names, and of each
output file. On the next run a stage is skipped ("skipped (fresh)") when all of those still match;
otherwise it runs, and so does every later stage of the run (its inputs are about to change).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import storage as pio
from ..config import StageConfig
from ..errors import ConfigError, InputError

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("discover", "verify", "targets", "train", "report")
"""The stages a workflow can run, in pipeline order."""

TOP_KEYS: tuple[str, ...] = ("catalog", "out", "scheduler", "stages", "fingerprint_audio", *STAGES)
"""Keys allowed at the top level of a workflow file."""

RUN_JSON = "run.json"
RUN_SCHEMA = "run"

# Config fields that hold local folders; relative values resolve against the workflow file's folder.
_PATH_FIELDS = {"discover": ("audio_root",), "verify": ("audio_root", "cache_dir"), "targets": ("audio_root",)}


def config_class(stage: str) -> type[StageConfig]:
    """The StageConfig subclass of `stage` (imported lazily: train pulls in torch)."""
    if stage == "discover":
        from ..discover.config import DiscoverConfig as cls
    elif stage == "verify":
        from ..verify.config import VerifyConfig as cls
    elif stage == "targets":
        from ..targets.config import TargetsConfig as cls
    elif stage == "train":
        from ..train.config import TrainConfig as cls
    elif stage == "report":
        from ..report.config import ReportConfig as cls
    else:
        raise ConfigError(_unknown("stage", stage, STAGES))
    return cls


def _unknown(what: str, key: str, valid: tuple[str, ...] | list[str]) -> str:
    near = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else f"; valid {what}s: {', '.join(valid)}"
    return f"unknown {what} {key!r}{hint}"


def _resolve(path: str, base_dir: str | None) -> str:
    """A local path made absolute against `base_dir` (the workflow file's folder); URLs unchanged."""
    path = str(path)
    if pio.is_url(path):
        return path
    path = os.path.expanduser(path)
    if base_dir is not None and not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    return os.path.normpath(path)


# ----------------------------------------------------------------------------------------------
# The workflow file


@dataclass(frozen=True)
class Workflow:
    """A parsed workflow file.

    Attributes:
        catalog: input catalog (CSV or Parquet), an absolute local path or an fsspec URL.
        out: output folder, absolute local path or URL (targets and train need a local folder).
        scheduler: threads | processes | synchronous | tcp://host:port.
        configs: stage name -> its frozen config (defaults for a stage without a section).
        stages: the stages this workflow runs, in pipeline order (default: all five).
        fingerprint_audio: also fingerprint (stat) the audio files that verify and targets read, so a
            replaced audio file makes them rerun. Turn off for huge remote catalogs.
        source: the file it was loaded from (not part of equality).
    """

    catalog: str
    out: str
    scheduler: str = "threads"
    configs: dict[str, StageConfig] = field(default_factory=dict)
    stages: tuple[str, ...] = STAGES
    fingerprint_audio: bool = True
    source: str | None = field(default=None, compare=False)

    def config(self, stage: str) -> StageConfig:
        return self.configs.get(stage) or config_class(stage)()

    def replace(self, **changes: Any) -> "Workflow":
        """A copy with the given top-level fields changed (None values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"catalog": self.catalog, "out": self.out, "scheduler": self.scheduler}
        if tuple(self.stages) != STAGES:
            doc["stages"] = list(self.stages)
        if not self.fingerprint_audio:
            doc["fingerprint_audio"] = False
        for s in STAGES:
            doc[s] = self.config(s).to_dict()
        return doc

    def to_yaml(self) -> str:
        """The workflow as YAML; `workflow_from_yaml` of it gives an equal Workflow."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    # -- where each stage reads and writes -------------------------------------------------------

    def path(self, *parts: str) -> str:
        return pio.join(self.out, *parts)

    @property
    def targets_dir(self) -> str:
        return self.path("targets")

    @property
    def train_dir(self) -> str:
        return self.path("runs", str(getattr(self.config("train"), "source", "model")))

    @property
    def report_dir(self) -> str:
        return self.path("report")


def workflow_from_dict(doc: Any, *, base_dir: str | None = None, where: str = "workflow") -> Workflow:
    """Build a Workflow from a parsed YAML mapping.

    Args:
        doc: the mapping (top-level keys: TOP_KEYS).
        base_dir: folder that relative local paths resolve against (the workflow file's folder);
            None keeps them as given.
        where: name used in error messages (the file name).

    Raises:
        ConfigError: unknown key (naming the nearest valid one), a missing catalog/out, a bad value.
    """
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: a workflow is a mapping with catalog:, out:, scheduler: and one section "
                          f"per stage ({', '.join(STAGES)})")
    for key in doc:
        if key not in TOP_KEYS:
            raise ConfigError(f"{where}: {_unknown('top-level key', key, TOP_KEYS)}")
    for key in ("catalog", "out"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise ConfigError(f"{where}: `{key}:` is missing or empty; give the "
                              + ("input catalog (CSV or Parquet path or URL)" if key == "catalog" else
                                 "output folder (or pass -o OUT)"))
    from ..parallel import check_scheduler

    scheduler = check_scheduler(str(doc.get("scheduler") or "threads"))
    stages = doc.get("stages", list(STAGES))
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",") if s.strip()]
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{where}: `stages:` must be a non-empty list of {', '.join(STAGES)}")
    for s in stages:
        if s not in STAGES:
            raise ConfigError(f"{where}: stages: {_unknown('stage', s, STAGES)}")
    fp_audio = doc.get("fingerprint_audio", True)
    if not isinstance(fp_audio, bool):
        raise ConfigError(f"{where}: fingerprint_audio must be true or false, got {fp_audio!r}")
    configs: dict[str, StageConfig] = {}
    for s in STAGES:
        section = doc.get(s)
        if section is None:
            section = {}
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: the `{s}:` section must be a mapping of option: value, "
                              f"got {type(section).__name__}")
        section = dict(section)
        for name in _PATH_FIELDS.get(s, ()):
            if isinstance(section.get(name), str):
                section[name] = _resolve(section[name], base_dir)
        configs[s] = config_class(s).from_dict(section, where=where)
    return Workflow(
        catalog=_resolve(doc["catalog"], base_dir),
        out=_resolve(doc["out"], base_dir),
        scheduler=scheduler,
        configs=configs,
        stages=tuple(s for s in STAGES if s in stages),
        fingerprint_audio=fp_audio,
    )


def _parse_yaml(text: str, where: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)  # never yaml.load: a workflow file must not build Python objects
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from exc


def workflow_from_yaml(text: str, *, base_dir: str | None = None, where: str = "workflow") -> Workflow:
    """Parse workflow YAML (always with yaml.safe_load)."""
    return workflow_from_dict(_parse_yaml(text, where), base_dir=base_dir, where=where)


def load_workflow(path: str | os.PathLike, *, out: str | None = None, scheduler: str | None = None) -> Workflow:
    """Load a workflow file; `out` / `scheduler` override the file's values (the CLI's -o / --scheduler).

    Relative paths in the file resolve against the file's folder; a relative `out` given here resolves
    against the current folder, like any command-line path.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"workflow file {path} does not exist; see workflows/demo.yaml for an example") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read workflow file {path}: {exc}") from exc
    doc = _parse_yaml(text, str(path))
    if isinstance(doc, dict) and out is not None:
        doc = {**doc, "out": out if pio.is_url(out) else os.path.abspath(out)}
    if isinstance(doc, dict) and scheduler is not None:
        doc = {**doc, "scheduler": scheduler}
    wf = workflow_from_dict(doc, base_dir=str(p.resolve().parent), where=str(path))
    return dataclasses.replace(wf, source=str(path))


# ----------------------------------------------------------------------------------------------
# Fingerprints


def config_hash(config: StageConfig) -> str:
    """sha256 of the config's canonical JSON dump (key order and tuple/list spelling do not matter)."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_fingerprint(path: str) -> dict[str, Any]:
    """{"path", "size", "mtime_ns"} of a file (local stat, or fsspec info for a URL); missing -> size -1."""
    try:
        if pio.is_url(path):
            import fsspec

            fs, p = fsspec.core.url_to_fs(path)
            info = fs.info(p)
            stamp = (info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("ETag")
                     or info.get("created"))
            return {"path": path, "size": int(info.get("size") or 0), "mtime_ns": None, "stamp": str(stamp)}
        st = os.stat(path)
        return {"path": path, "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
    except FileNotFoundError:
        return {"path": path, "size": -1, "mtime_ns": None}


def _audio_paths(table_path: str, *, only_verified: bool, base_dir: str | None, audio_root: str | None) -> list[str]:
    import pyarrow.parquet as pq

    from ..audio import resolve_audio_path
    from ..errors import AudioError

    cols = ["mix_audio_path", "version_audio_path"] + (["status"] if only_verified else [])
    try:
        if pio.is_url(table_path):
            import fsspec

            with fsspec.open(table_path, "rb") as f:
                t = pq.read_table(f, columns=cols)
        else:
            t = pq.read_table(table_path, columns=cols)
    except Exception:  # unreadable or missing: its own fingerprint already says so
        return []
    df = t.to_pandas()
    if only_verified:
        df = df[df["status"] == "verified"]
    out = set()
    for p in list(df["mix_audio_path"]) + list(df["version_audio_path"]):
        if not isinstance(p, str) or not p:
            continue
        try:
            out.add(resolve_audio_path(p, base_dir=base_dir, audio_root=audio_root))
        except AudioError:
            continue  # refused paths are recorded by the stage itself
    return sorted(out)


def audio_fingerprint(table_path: str, *, only_verified: bool = False, audio_root: str | None = None) -> dict:
    """One digest over (path, size, mtime_ns) of every audio file that `table_path` names.

    Remote (URL) audio files are listed but not stat'ed: object stores are treated as immutable.
    """
    base_dir = None if pio.is_url(table_path) else str(Path(table_path).resolve().parent)
    paths = _audio_paths(table_path, only_verified=only_verified, base_dir=base_dir, audio_root=audio_root)
    h = hashlib.sha256()
    n_missing = 0
    for p in paths:
        if pio.is_url(p):
            h.update(f"{p}\0url\n".encode())
            continue
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            n_missing += 1
            h.update(f"{p}\0missing\n".encode())
    what = "verified pairs" if only_verified else "candidates"
    return {"path": f"<audio of the {what} in {table_path}>", "n_files": len(paths), "n_missing": n_missing,
            "digest": h.hexdigest()}


# ----------------------------------------------------------------------------------------------
# The stages: where each reads and writes, how it runs, what it reports


def _report_inputs(wf: Workflow) -> list[str]:
    return [wf.path(p) for p in ("candidates.parquet", "rejects.parquet", "discover-report.json", "verified.parquet",
                                 "verify-report.json", "targets/manifest.parquet", "targets/targets-report.json")]


def stage_inputs(wf: Workflow, stage: str) -> list[str]:
    """Files a stage reads (the audio files they name are fingerprinted separately)."""
    return {
        "discover": [wf.catalog],
        "verify": [wf.path("candidates.parquet")],
        "targets": [wf.path("verified.parquet")],
        "train": [pio.join(wf.targets_dir, "manifest.parquet")],
        "report": _report_inputs(wf),
    }[stage]


def stage_outputs(wf: Workflow, stage: str) -> list[str]:
    """Files a stage writes that must exist (and be unchanged) for it to count as fresh."""
    return {
        "discover": [wf.path("candidates.parquet"), wf.path("rejects.parquet"), wf.path("discover-report.json")],
        "verify": [wf.path("verified.parquet"), wf.path("verify-report.json")],
        "targets": [pio.join(wf.targets_dir, "manifest.parquet"), pio.join(wf.targets_dir, "targets-report.json")],
        "train": [pio.join(wf.train_dir, n) for n in ("config.json", "checkpoint-last.pt", "train-report.json")],
        "report": [pio.join(wf.report_dir, "report.html"), pio.join(wf.report_dir, "report.json")],
    }[stage]


def input_fingerprints(wf: Workflow, stage: str) -> list[dict]:
    fps = [file_fingerprint(p) for p in stage_inputs(wf, stage)]
    if wf.fingerprint_audio and stage in ("verify", "targets"):
        cfg = wf.config(stage)
        fps.append(audio_fingerprint(stage_inputs(wf, stage)[0], only_verified=stage == "targets",
                                     audio_root=getattr(cfg, "audio_root", None)))
    return fps


def _run_stage(wf: Workflow, stage: str, progress: bool, *, resume: bool = False) -> Any:
    cfg = wf.config(stage)
    if stage == "discover":
        from ..discover.stage import run_discover

        return run_discover(wf.catalog, wf.out, cfg, scheduler=wf.scheduler, progress=progress)
    if stage == "verify":
        from ..verify.stage import run_verify

        return run_verify(wf.path("candidates.parquet"), wf.out, cfg, scheduler=wf.scheduler, progress=progress)
    if stage == "targets":
        from ..targets.stage import run_targets

        return run_targets(wf.path("verified.parquet"), wf.targets_dir, cfg, scheduler=wf.scheduler,
                           progress=progress)
    if stage == "train":
        from ..train.loop import run_train

        return run_train(wf.targets_dir, wf.train_dir, cfg, resume=resume, progress=progress)
    from ..report.stage import run_report

    return run_report(wf.out, wf.report_dir, cfg, progress=progress)


def stage_results(stage: str, res: Any) -> dict[str, Any]:
    """The counts of a stage result, as recorded in run.json."""
    if stage == "discover":
        return {"counts": res.counts, "hours": res.hours}
    if stage == "verify":
        keys = ("n_candidates", "n_verified", "n_too_similar", "n_too_different", "n_error", "n_files", "n_decoded",
                "n_cached", "n_file_errors")
        return {"counts": {k[2:]: getattr(res, k) for k in keys}}
    if stage == "targets":
        return {"counts": dict(res.counts), "hours": res.hours, "frames": res.frames, "bytes": res.bytes,
                "shards": len(res.shards), "failures": len(res.failures)}
    if stage == "train":
        return {"counts": {"step": res.step, "steps_run": res.steps_run, "n_train_pairs": res.n_train_pairs,
                           "n_valid_pairs": res.n_valid_pairs},
                "best_valid_loss": res.best_valid_loss, "last_valid_loss": res.last_valid_loss}
    return {"counts": {"stages_present": len(res.stages_present), "funnel_steps": len(res.funnel),
                       "plots": len(res.plot_paths)},
            "stages_present": list(res.stages_present), "html": res.html_path}


def _reset_outputs(wf: Workflow, stage: str) -> None:
    """Before a forced or reconfigured rerun: clear folders whose stage would otherwise build on old work.

    targets appends to its manifest (and refuses other STFT settings), train refuses a folder that holds
    a run; both folders belong to the workflow (OUT/targets, OUT/runs/<source>).
    """
    folder = {"targets": wf.targets_dir, "train": wf.train_dir}.get(stage)
    if folder is None or pio.is_url(folder) or not Path(folder).is_dir():
        return
    log.warning("%s: removing the previous outputs in %s before rerunning", stage, folder)
    shutil.rmtree(folder)


# ----------------------------------------------------------------------------------------------
# Plan and run


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


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _config_diff(old: dict | None, new: dict) -> str:
    if not isinstance(old, dict):
        return "config changed"
    diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
             if json.dumps(old.get(k), sort_keys=True, default=str) != json.dumps(new.get(k), sort_keys=True,
                                                                                    default=str)]
    return "config changed: " + ", ".join(diffs[:4]) + (f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else "")


def _changed(old: list[dict], new: list[dict], what: str) -> str | None:
    old_by = {d["path"]: d for d in old or []}
    for d in new:
        prev = old_by.get(d["path"])
        if prev == d:  # unchanged (an optional input, e.g. report's, may stay absent)
            continue
        if d.get("size") == -1:
            return f"{what} missing: {d['path']}"
        return f"{what} changed: {d['path']}" if prev and prev.get("size") != -1 else f"{what} new: {d['path']}"
    return None


def decide(wf: Workflow, stage: str, previous: dict | None, *, force: bool, upstream: str | None) -> tuple[str, str]:
    """("run" | "skip", reason) for one stage, given its entry in the last run.json.

    `upstream` is the reason of an earlier stage of this invocation that runs (its outputs, this
    stage's inputs, are about to change), or None.
    """
    if force:
        return "run", "forced (--force)"
    if upstream:
        return "run", upstream
    last = (previous or {}).get("last_success")
    if not isinstance(last, dict) or not last:
        status = (previous or {}).get("status")
        if status == "failed":
            return "run", f"last attempt failed: {(previous or {}).get('error') or 'see run.json'}"
        return "run", "last attempt was interrupted" if status == "running" else "never ran"
    cfg = wf.config(stage)
    if last.get("config_hash") != config_hash(cfg):
        return "run", _config_diff(last.get("config"), cfg.to_dict())
    why = _changed(last.get("inputs", []), input_fingerprints(wf, stage), "input")
    if why:
        return "run", why
    why = _changed(last.get("outputs", []), [file_fingerprint(p) for p in stage_outputs(wf, stage)], "output")
    if why:
        return "run", why
    return "skip", "fresh"


def _read_previous(wf: Workflow) -> dict[str, dict]:
    path = wf.path(RUN_JSON)
    if not pio.exists(path):
        return {}
    try:
        doc = pio.read_json(path)
    except InputError as exc:
        log.warning("ignoring unreadable %s (%s); every stage will run", path, exc)
        return {}
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, list):
        return {}
    return {e["stage"]: e for e in stages if isinstance(e, dict) and e.get("stage") in STAGES}


def _selected(wf: Workflow, from_stage: str | None, until: str | None) -> list[str]:
    for name, value in (("--from", from_stage), ("--until", until)):
        if value is not None and value not in STAGES:
            raise ConfigError(f"{name}: {_unknown('stage', value, STAGES)}")
    lo = STAGES.index(from_stage) if from_stage else 0
    hi = STAGES.index(until) if until else len(STAGES) - 1
    if lo > hi:
        raise ConfigError(f"--from {from_stage} comes after --until {until}; the order is {' -> '.join(STAGES)}")
    return [s for s in STAGES[lo:hi + 1] if s in wf.stages]


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
    selected = _selected(wf, from_stage, until)
    previous = _read_previous(wf)
    emit = on_event or (lambda o: None)
    outcomes: list[StageOutcome] = []
    entries: dict[str, dict] = {}
    upstream: str | None = None
    started = _now()
    t_all = time.perf_counter()

    doc = {"pairminer_version": _version(), "workflow": wf.source, "catalog": wf.catalog, "out": wf.out,
           "scheduler": wf.scheduler, "started_at": started, "finished_at": None, "status": "running",
           "invocation": {"from": from_stage, "until": until, "force": bool(force)},
           "workflow_config": wf.to_dict(), "versions": None, "stages": [], "timings_s": {}}

    def save() -> None:
        if dry_run:
            return
        from ..runinfo import versions

        doc["versions"] = doc["versions"] or versions()
        doc["stages"] = [entries[s] for s in STAGES if s in entries]
        pio.write_json(wf.path(RUN_JSON), doc, RUN_SCHEMA)

    if not dry_run:
        pio.ensure_dir(wf.out)
    for stage in STAGES:
        prev = previous.get(stage)
        if stage not in selected:
            why = "not in this workflow's stages" if stage not in wf.stages else "outside --from/--until"
            outcomes.append(StageOutcome(stage, "out_of_range", "not_selected", why))
            entries[stage] = _carry(prev, stage, "not_selected", why)
            continue
        action, reason = decide(wf, stage, prev, force=force, upstream=upstream)
        if action == "skip":
            last = prev["last_success"]
            o = StageOutcome(stage, "skip", "would_skip" if dry_run else "skipped", reason, results=last.get("results"))
            outcomes.append(o)
            entries[stage] = _carry(prev, stage, "skipped", reason)
            emit(o)
            continue
        upstream = upstream or f"upstream stage {stage} {'would run' if dry_run else 'ran'}"
        if dry_run:
            o = StageOutcome(stage, "run", "would_run", reason)
            outcomes.append(o)
            emit(o)
            continue
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


def _carry(prev: dict | None, stage: str, status: str, reason: str) -> dict:
    """This invocation's entry for a stage that does not run: keep its last success."""
    return {"stage": stage, "status": status, "reason": reason, "duration_s": None, "error": None,
            "config_hash": (prev or {}).get("config_hash"), "inputs": (prev or {}).get("inputs", []),
            "last_success": (prev or {}).get("last_success")}


def _execute(wf: Workflow, stage: str, prev: dict | None, reason: str, force: bool, progress: bool,
             entries: dict[str, dict], save: Callable[[], None], emit: Callable[[StageOutcome], None]) -> StageOutcome:
    cfg = wf.config(stage)
    chash = config_hash(cfg)
    inputs = input_fingerprints(wf, stage)
    # A train run interrupted with the same config and inputs continues from its checkpoint; any other
    # rerun of train or targets (config changed, inputs changed, --force) starts from an empty folder.
    resume = False
    if stage == "train" and (prev or {}).get("status") in ("failed", "running") and not force:
        resume = prev.get("config_hash") == chash and prev.get("inputs") == inputs
    # The config that made the folder's current contents: its last success, else its last attempt.
    known = ((prev or {}).get("last_success") or {}).get("config_hash") or (prev or {}).get("config_hash")
    if (stage == "train" and not resume) or (stage == "targets" and (force or known not in (None, chash))):
        _reset_outputs(wf, stage)
    entries[stage] = {"stage": stage, "status": "running", "reason": reason, "duration_s": None, "error": None,
                      "config_hash": chash, "inputs": inputs, "last_success": None}
    save()
    emit(StageOutcome(stage, "run", "running", reason))
    log.info("%s: running (%s)", stage, reason)
    t0 = time.perf_counter()
    try:
        res = _run_stage(wf, stage, progress, resume=resume)
    except Exception as exc:  # recorded in run.json, then re-raised for the caller
        dur = round(time.perf_counter() - t0, 4)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        entries[stage].update(status="failed", duration_s=dur, error=msg)
        o = StageOutcome(stage, "run", "failed", reason, duration_s=dur, error=msg, result=exc)
        emit(o)
        return o
    dur = round(time.perf_counter() - t0, 4)
    results = stage_results(stage, res)
    entries[stage].update(status="ran", duration_s=dur, last_success={
        "finished_at": _now(), "duration_s": dur, "config": cfg.to_dict(), "config_hash": chash, "inputs": inputs,
        "outputs": [file_fingerprint(p) for p in stage_outputs(wf, stage)], "results": results})
    save()
    o = StageOutcome(stage, "run", "ran", reason, duration_s=dur, results=results, result=res)
    emit(o)
    return o


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
