"""Freshness: fingerprints of a stage's config, inputs and outputs, and the run-or-skip decision.

After a stage succeeds, OUT/run.json records its config (and a hash of it), a fingerprint of each
input file (path, size, mtime_ns and, for local files, a sha256 of the content), of the audio files
its input table names, and of each output file. On the next run a stage is skipped ("fresh") when
all of those still match. A file whose mtime moved but whose size did not (`touch`, a copy of the
same bytes) is compared by content, so it does not make the stage rerun.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from .. import stages as registry
from .. import storage as pio
from ..config import StageConfig
from .file import Workflow

log = logging.getLogger(__name__)

_HASH_CHUNK = 1 << 20


def config_hash(config: StageConfig) -> str:
    """sha256 of the config's canonical JSON dump (key order and tuple/list spelling do not matter).

    A config may add output-format facts with a `freshness_extra()` method (targets: the shard
    FORMAT_VERSION), so that a format change makes old outputs stale.
    """
    doc = config.to_dict()
    extra = getattr(config, "freshness_extra", None)
    if callable(extra):
        doc = {**doc, "__format__": extra()}
    text = json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _local(path: str) -> str:
    """A local path as the OS spells it (`file:///x` is /x)."""
    return path[len("file://"):] if path.startswith("file://") else path


def content_hash(path: str) -> str | None:
    """sha256 of a local regular file's bytes (None for a URL, a folder or an unreadable file)."""
    if pio.is_url(path):
        return None
    h = hashlib.sha256()
    try:
        with open(_local(path), "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
    except (IsADirectoryError, OSError):
        return None
    return h.hexdigest()


@functools.lru_cache(maxsize=4096)
def _hash_of(path: str, size: int, mtime_ns: int | None) -> str | None:
    """content_hash, computed once per (path, size, mtime) in a process (decide and refresh both ask)."""
    return content_hash(path)


def refreshed(old: list[dict], new: list[dict]) -> list[dict]:
    """The recorded fingerprints `old`, with the stats of `new` where only the mtime moved (same content).

    A skipped stage keeps them, so a touched file is hashed once, not on every later run.
    """
    new_by = {d["path"]: d for d in new}
    out = []
    for d in old or []:
        n = new_by.get(d["path"])
        if n is not None and d.get("sha256") and n != {k: v for k, v in d.items() if k != "sha256"} \
                and same_file(d, n):
            d = {**n, "sha256": d["sha256"]}
        out.append(d)
    return out


def file_fingerprint(path: str, *, content: bool = False) -> dict[str, Any]:
    """{"path", "size", "mtime_ns"} of a file (local stat, or fsspec info for a URL); missing -> size -1.

    With `content`, a local regular file also gets "sha256" (recorded when a stage runs, so that a
    later touch of the same bytes can be told from a change).
    """
    try:
        if pio.is_url(path):
            import fsspec

            fs, p = fsspec.core.url_to_fs(path)
            info = fs.info(p)
            stamp = (info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("ETag")
                     or info.get("created"))
            return {"path": path, "size": int(info.get("size") or 0), "mtime_ns": None, "stamp": str(stamp)}
        st = os.stat(_local(path))
        fp: dict[str, Any] = {"path": path, "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
        if content and Path(_local(path)).is_file():
            digest = content_hash(path)
            if digest:
                fp["sha256"] = digest
        return fp
    except FileNotFoundError:
        return {"path": path, "size": -1, "mtime_ns": None}


def same_file(prev: dict | None, new: dict) -> bool:
    """Whether fingerprint `new` (stat only) shows the file `prev` recorded, unchanged.

    Equal stats are unchanged; a different size is a change; the same size with another mtime is
    decided by the content hash when `prev` recorded one.
    """
    if prev is None:
        return False
    strip = {k: v for k, v in prev.items() if k != "sha256"}
    if strip == {k: v for k, v in new.items() if k != "sha256"}:
        return True
    if prev.get("sha256") and prev.get("size") == new.get("size") and new.get("size", -1) >= 0 \
            and prev.get("stamp") is None and new.get("stamp") is None:
        same = _hash_of(new["path"], new["size"], new.get("mtime_ns")) == prev["sha256"]
        if same:
            log.info("%s: modification time changed, content did not", new["path"])
        return same
    return False


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
# Where each stage reads and writes (the registry's artifacts, placed in this workflow's OUT)


def stage_inputs(wf: Workflow, stage: str) -> list[str]:
    """Files a stage reads (the audio files they name are fingerprinted separately)."""
    return [wf.artifact_path(a) for a in registry.stage(stage).reads]


def stage_outputs(wf: Workflow, stage: str) -> list[str]:
    """Files a stage writes that must exist (and be unchanged) for it to count as fresh."""
    return [wf.artifact_path(a) for a in registry.stage(stage).freshness_outputs]


def input_fingerprints(wf: Workflow, stage: str, *, content: bool = False) -> list[dict]:
    spec = registry.stage(stage)
    fps = [file_fingerprint(p, content=content) for p in stage_inputs(wf, stage)]
    if wf.fingerprint_audio and spec.audio_from:
        cfg = wf.config(stage)
        fps.append(audio_fingerprint(stage_inputs(wf, stage)[0], only_verified=spec.audio_from == "verified",
                                     audio_root=getattr(cfg, "audio_root", None)))
    return fps


def hash_in_background(fps: list[dict]) -> Callable[[], list[dict]]:
    """Start hashing the content of the files `fps` (stat-only fingerprints) in a thread; the returned
    function waits and gives `fps` with "sha256" added to each local regular file still as it was stat'ed.

    The stage reads its inputs meanwhile (hashlib releases the GIL, so the hash of a big catalog overlaps
    the stage instead of delaying its start). A file whose stat moved while it was hashed gets no sha256
    (a later run compares it by stat alone, and reruns if it differs).
    """
    import threading

    todo = [d for d in fps if d.get("size", -1) >= 0 and d.get("mtime_ns") is not None and "stamp" not in d
            and not pio.is_url(d["path"])]
    got: dict[str, str | None] = {}

    def work() -> None:
        for d in todo:
            if Path(_local(d["path"])).is_file():
                got[d["path"]] = content_hash(d["path"])

    t = threading.Thread(target=work, name="pairminer-input-hash", daemon=True)
    t.start()

    def result() -> list[dict]:
        t.join()
        out = []
        for d in fps:
            digest = got.get(d["path"])
            if digest and file_fingerprint(d["path"]) == {k: v for k, v in d.items() if k != "sha256"}:
                d = {**d, "sha256": digest}
            out.append(d)
        return out

    return result


def output_fingerprints(wf: Workflow, stage: str, *, content: bool = False) -> list[dict]:
    return [file_fingerprint(p, content=content) for p in stage_outputs(wf, stage)]


# ----------------------------------------------------------------------------------------------
# The decision


def _config_diff(old: dict | None, new: dict) -> str:
    if not isinstance(old, dict):
        return "config changed"
    diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
             if json.dumps(old.get(k), sort_keys=True, default=str) != json.dumps(new.get(k), sort_keys=True,
                                                                                    default=str)]
    if not diffs:
        return "output format changed (e.g. a new shard FORMAT_VERSION)"
    return "config changed: " + ", ".join(diffs[:4]) + (f" (+{len(diffs) - 4} more)" if len(diffs) > 4 else "")


def changed(old: list[dict], new: list[dict], what: str) -> str | None:
    """Why the files `new` differ from the recorded `old` ("input changed: PATH"), or None."""
    old_by = {d["path"]: d for d in old or []}
    for d in new:
        prev = old_by.get(d["path"])
        if same_file(prev, d):  # unchanged (an optional input, e.g. report's, may stay absent)
            continue
        if d.get("size") == -1:
            return f"{what} missing: {d['path']}"
        return f"{what} changed: {d['path']}" if prev and prev.get("size") != -1 else f"{what} new: {d['path']}"
    return None


def same_inputs(old: list[dict] | None, new: list[dict]) -> bool:
    """Whether the inputs recorded as `old` are still `new` (content-aware, as `changed`)."""
    return old is not None and len(old) == len(new) and changed(old, new, "input") is None


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
    why = changed(last.get("inputs", []), input_fingerprints(wf, stage), "input")
    if why:
        return "run", why
    why = changed(last.get("outputs", []), output_fingerprints(wf, stage), "output")
    if why:
        return "run", why
    return "skip", "fresh"
