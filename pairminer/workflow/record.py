"""run.json's records: the entries of earlier runs, what a skipped stage carries over, which stages run."""

from __future__ import annotations

import datetime as _dt
import logging

from .. import stages as registry
from .. import storage as pio
from ..config import did_you_mean
from ..errors import ConfigError, InputError
from .file import Workflow
from .ownership import _entry_output, _known_written, output_key

log = logging.getLogger(__name__)

RUN_JSON = registry.artifact("run_record").path
RUN_SCHEMA = registry.artifact("run_record").schema


def _carry(wf: Workflow, prev: dict | None, stage: str, status: str, reason: str) -> dict:
    """This invocation's entry for a stage that does not run: keep its last success and its records."""
    e = {"stage": stage, "output": output_key(wf, stage), "status": status, "reason": reason, "duration_s": None,
         "error": None, "config_hash": (prev or {}).get("config_hash"), "inputs": (prev or {}).get("inputs", []),
         "last_success": (prev or {}).get("last_success"), "owned": list((prev or {}).get("owned") or [])}
    if registry.stage(stage).owns is not None:
        folder = wf.artifact_path(registry.stage(stage).owns)
        e["written"] = [] if pio.is_url(folder) else _known_written(wf, folder, prev)
    return e


# ----------------------------------------------------------------------------------------------
# The run


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _read_previous(wf: Workflow) -> list[dict]:
    """Every stage entry of OUT/run.json: this workflow's and other workflows' (`other_entries`)."""
    path = wf.path(RUN_JSON)
    if not pio.exists(path):
        return []
    try:
        doc = pio.read_json(path)
    except InputError as exc:
        log.warning("ignoring unreadable %s (%s); every stage will run", path, exc)
        return []
    if not isinstance(doc, dict):
        return []
    out = []
    for key in ("stages", "other_entries"):
        items = doc.get(key)
        if isinstance(items, list):
            out += [e for e in items if isinstance(e, dict) and e.get("stage") in registry.STAGE_NAMES]
    return out


def _previous_entry(wf: Workflow, stage: str, entries: list[dict]) -> dict | None:
    """The entry of `stage` for this workflow's output folder of it (an old entry without `output` is
    taken when its recorded config names the same folder, or names none)."""
    want = output_key(wf, stage)
    legacy = None
    for e in entries:
        if e.get("stage") != stage:
            continue
        out = _entry_output(e)
        if out == want:
            if "output" in e:
                return e
            legacy = legacy or e
        elif out is None and legacy is None:
            legacy = e
    return legacy


def selected_stages(wf: Workflow, from_stage: str | None, until: str | None) -> list[str]:
    """The stages of `wf` from `from_stage` to `until` (inclusive), in registry order."""
    names = registry.STAGE_NAMES
    for name, value in (("--from", from_stage), ("--until", until)):
        if value is not None and value not in names:
            raise ConfigError(f"{name}: {did_you_mean('stage', value, names)}")
    lo = names.index(from_stage) if from_stage else 0
    hi = names.index(until) if until else len(names) - 1
    if lo > hi:
        raise ConfigError(f"--from {from_stage} comes after --until {until}; the order is {' -> '.join(names)}")
    return [s for s in names[lo:hi + 1] if s in wf.stages]


def check_before_work(wf: Workflow, selected: list[str]) -> None:
    """Refuse up front what would otherwise fail after hours of work.

    An fsspec URL needs its backend installed (s3fs for s3://, gcsfs for gs://...); a stage that owns a
    folder (memory-mapped shards, checkpoints) needs a local or shared-filesystem OUT.
    """
    pio.check_url_backend(wf.out, what="-o / out:")
    pio.check_url_backend(wf.catalog, what="the catalog")
    if pio.is_url(wf.out):
        local = [s for s in selected if registry.stage(s).owns is not None]
        if local:
            first = registry.STAGE_NAMES[registry.STAGE_NAMES.index(local[0]) - 1]
            raise ConfigError(
                f"-o {wf.out}: {' and '.join(local)} write memory-mappable shards and checkpoints and need a local or "
                f"shared filesystem folder; use such a folder, or stop before {local[0]} with --until {first}")
