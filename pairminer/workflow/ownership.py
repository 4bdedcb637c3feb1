"""What a workflow run owns: the files each stage wrote (recorded in run.json), and removing only those.

`pairminer run` removes a stage's earlier outputs before a forced or reconfigured rerun, and only the
files its run.json entry records writing (a snapshot of the folder taken while the stage runs names
the files of a killed run too), unchanged since; a user's file in the same folder is never touched.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .. import stages as registry
from .. import storage as pio
from ..errors import OutputError
from .file import Workflow

log = logging.getLogger(__name__)

def _relative(wf: Workflow, path: str) -> str:
    return os.path.relpath(path, wf.out) if not pio.is_url(path) else path[len(wf.out):].lstrip("/")


def output_key(wf: Workflow, stage: str) -> str:
    """The output folder of `stage` in this workflow, relative to OUT ("." for OUT itself): with the
    stage name, the key of its run.json entry."""
    spec = registry.stage(stage)
    path = wf.artifact_path(spec.run_output)
    rel = _relative(wf, path) if path != wf.out else "."
    return rel.replace(os.sep, "/") or "."


def _entry_output(entry: dict) -> str | None:
    """The output folder an entry of run.json is for; entries written before `output` existed: the
    folder their recorded config names (None when it cannot say)."""
    out = entry.get("output")
    if isinstance(out, str):
        return out
    try:
        spec = registry.stage(entry["stage"])
        art = registry.artifact(spec.run_output) if spec.run_output not in ("OUT", "catalog") else None
    except Exception:  # noqa: BLE001 - an unknown stage: not ours
        return None
    if art is None:
        return "."
    cfg = ((entry.get("last_success") or {}).get("config")) or None
    if "{" not in (art.path or ""):
        return art.path
    if not isinstance(cfg, dict):
        return None

    class _C:
        def __init__(self, d: dict) -> None:
            self.__dict__.update(d)

    try:
        return art.relpath(lambda st: _C(cfg))
    except Exception:  # noqa: BLE001
        return None


# ----------------------------------------------------------------------------------------------
# The files a stage wrote in the folder it owns


def _snapshot(wf: Workflow, folder: str | None) -> dict[str, list[int]] | None:
    """{path relative to OUT: [size, mtime_ns]} of every file under `folder` (None for none or a URL)."""
    from ..locking import LOCK_NAME

    if folder is None or pio.is_url(folder) or not os.path.isdir(folder):
        return None if folder is None or pio.is_url(folder) else {}
    out: dict[str, list[int]] = {}
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in files:
            if name == LOCK_NAME:
                continue
            p = os.path.join(root, name)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            out[os.path.relpath(p, wf.out).replace(os.sep, "/")] = [int(st.st_size), int(st.st_mtime_ns)]
    return out


def _as_records(files: dict[str, list[int]]) -> list[dict]:
    return [{"path": k, "size": v[0], "mtime_ns": v[1]} for k, v in sorted(files.items())]


def _as_files(records: list[dict] | None) -> dict[str, list[int]]:
    out = {}
    for r in records or []:
        if isinstance(r, dict) and isinstance(r.get("path"), str):
            out[r["path"]] = [r.get("size"), r.get("mtime_ns")]
    return out


def _written_after(wf: Workflow, folder: str | None, recorded: list[dict] | None,
                   before: dict[str, list[int]] | None) -> list[dict]:
    """The files of `folder` a stage's runs wrote: those `recorded` still there, plus every file that is
    new or changed since the snapshot `before` (taken when the stage started)."""
    now = _snapshot(wf, folder)
    if now is None:
        return []
    old = _as_files(recorded)
    written = {k: v for k, v in now.items() if k in old or before is None or before.get(k) != v}
    return _as_records(written)


def _known_written(wf: Workflow, folder: str | None, prev: dict | None) -> list[dict]:
    """The recorded files, plus those of a run that was killed while it ran (its `before` snapshot)."""
    prev = prev or {}
    recorded = prev.get("written") or []
    if prev.get("status") == "running" and isinstance(prev.get("before"), list):
        return _written_after(wf, folder, recorded, _as_files(prev["before"]))
    return list(recorded)


def _remove_written(wf: Workflow, stage: str, folder: str, written: list[dict]) -> list[dict]:
    """Remove the files a stage wrote (only while each is as recorded) and the folders that emptied;
    return the records of the files kept."""
    kept = []
    removed_dirs = set()
    n = 0
    for r in written:
        p = os.path.join(wf.out, *r["path"].split("/"))
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        except OSError:
            kept.append(r)
            continue
        if [int(st.st_size), int(st.st_mtime_ns)] != [r.get("size"), r.get("mtime_ns")]:
            log.warning("%s: keeping %s: it changed since pairminer wrote it", stage, p)
            kept.append(r)
            continue
        os.unlink(p)
        n += 1
        removed_dirs.add(os.path.dirname(p))
    top = os.path.abspath(folder)
    for d in sorted(removed_dirs, key=len, reverse=True):
        d = os.path.abspath(d)
        while d.startswith(top + os.sep) and d != top:
            try:
                os.rmdir(d)  # only when empty
            except OSError:
                break
            d = os.path.dirname(d)
    if n:
        log.warning("%s: removed the %d file(s) its previous run wrote in %s before rerunning", stage, n, folder)
    return kept


def _owned_folder(wf: Workflow, stage: str, prev: dict | None) -> tuple[str | None, bool]:
    """(the folder the stage owns, whether this workflow created it)."""
    spec = registry.stage(stage)
    if spec.owns is None:
        return None, False
    folder = wf.artifact_path(spec.owns)
    rel = _relative(wf, folder)
    if rel in ((prev or {}).get("owned") or []):
        return folder, True
    if pio.is_url(folder):
        return folder, True
    from ..locking import LOCK_NAME

    p = Path(folder)
    return folder, not p.exists() or (p.is_dir() and not any(c.name != LOCK_NAME for c in p.iterdir()))


def _reset_owned_folder(wf: Workflow, stage: str, folder: str, owned: bool, written: list[dict]) -> list[dict]:
    """Before a forced or reconfigured rerun: remove the files the stage's earlier runs wrote in the
    folder it would otherwise build on; return the records of files kept.

    Only files run.json records as written by this workflow are removed, never any other. A folder the
    workflow did not create and that holds files stops the run, naming the fix.
    """
    from ..locking import LOCK_NAME

    p = Path(folder)
    if pio.is_url(folder) or not p.is_dir() or not any(c.name != LOCK_NAME for c in p.iterdir()):
        return list(written)
    if not owned:
        raise OutputError(
            f"{stage}: {folder} holds files this workflow did not write (run.json does not record creating "
            f"it), and the {stage} stage must start from an empty folder; pairminer never deletes what it did not "
            "write: move the folder away (or delete it yourself), or choose another -o")
    return _remove_written(wf, stage, folder, written)


def _must_start_afresh(stage: str, prev: dict | None, chash: str, force: bool, resume: bool) -> bool:
    spec = registry.stage(stage)
    if spec.resumable and not resume:
        return True
    # The config that made the folder's current contents: its last success, else its last attempt.
    known = ((prev or {}).get("last_success") or {}).get("config_hash") or (prev or {}).get("config_hash")
    return spec.cleared_on_reconfigure and (force or known not in (None, chash))
