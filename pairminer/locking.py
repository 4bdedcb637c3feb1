"""One writer per output folder: an advisory lock on the folder a run writes.

Two runs writing into one OUT at the same time interleave their files (a model half from each run, a
manifest that lists shards the other run replaced) and both report success. Every command that writes
a stage's outputs takes `output_lock(folder)` first:

* the folder itself, exclusively: a second run into the same folder fails at once with
  `error: ... is being written by another pairminer run (pid N on HOST, `pairminer ...`, since ...)`;
* shared, every enclosing folder that is a pairminer output (it holds run.json or a run's lock
  note), so a workflow writing all of OUT and a `pairminer train ... -o OUT/runs/vocals` exclude each
  other, while two commands writing sibling folders do not.

The lock is `fcntl.flock` on the folder's own file descriptor (released by the kernel when the process
dies, so a killed run never leaves a stale lock, and no lock file is needed). While it is held the
folder has a note `.pairminer.lock` naming the holder, removed on release. URLs (object stores) cannot
be locked and are not; on a system without fcntl nothing is locked.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Iterator

from .errors import OutputError

log = logging.getLogger(__name__)

LOCK_NAME = ".pairminer.lock"

try:  # pragma: no cover - platform
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

# Lock files this process holds (exclusively or shared), so nested locks of one run do not block it.
_held: dict[str, int] = {}
_held_lock = threading.Lock()


def _holder_text(folder: Path) -> str:
    try:
        info = json.loads((folder / LOCK_NAME).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another pairminer run"
    if not isinstance(info, dict) or not info:
        return "another pairminer run"
    cmd = info.get("command") or "pairminer"
    return (f"another pairminer run (pid {info.get('pid')} on {info.get('host')}, `{cmd}`, since "
            f"{info.get('since')})")


def _try_lock(folder: Path, exclusive: bool) -> int | None:
    """An fd holding the lock on `folder`, None when another process holds it, -1 when the filesystem
    has no locks."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError as exc:  # a filesystem without locks: say so, go on unlocked
        os.close(fd)
        log.warning("cannot lock %s (%s); concurrent runs into this folder are not detected", folder, exc)
        return -1
    return fd


def _release(fd: int) -> None:
    if fd >= 0:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _is_output(folder: Path) -> bool:
    try:
        return (folder / "run.json").is_file() or (folder / LOCK_NAME).is_file()
    except OSError:
        return False


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, *, what: str = "") -> Iterator[None]:
    """Hold the write lock of `folder` (created if missing) for the `with` block.

    Raises:
        OutputError: another process writes into `folder`, or into a pairminer output folder that
            encloses it; or `folder` cannot be created.
    """
    from .storage import ensure_dir, is_url

    if fcntl is None or is_url(str(folder)):
        yield
        return
    folder_p = Path(os.path.abspath(folder))
    ensure_dir(folder_p)
    key = str(folder_p)
    fds: list[tuple[str, int]] = []
    note: Path | None = None
    try:
        with _held_lock:
            mine = key in _held
        if not mine:
            fd = _try_lock(folder_p, exclusive=True)
            if fd is None:
                raise OutputError(
                    f"{folder_p} is being written by {_holder_text(folder_p)}; two runs into one output folder "
                    "would corrupt each other's files: wait for it to finish, or write to another -o")
            fds.append((key, fd))
            if fd >= 0:
                info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(what),
                        "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
                try:
                    (folder_p / LOCK_NAME).write_text(json.dumps(info), encoding="utf-8")
                    note = folder_p / LOCK_NAME
                except OSError:
                    pass
        for parent in folder_p.parents:
            pkey = str(parent)
            with _held_lock:
                if pkey in _held:
                    continue
            if not _is_output(parent):
                continue
            fd = _try_lock(parent, exclusive=False)
            if fd is None:
                raise OutputError(
                    f"{parent} (which holds {folder_p}) is being written by {_holder_text(parent)}: wait for it "
                    "to finish, or write to another -o")
            fds.append((pkey, fd))
        with _held_lock:
            for k, _ in fds:
                _held[k] = _held.get(k, 0) + 1
        try:
            yield
        finally:
            with _held_lock:
                for k, _ in fds:
                    _held[k] -= 1
                    if not _held[k]:
                        del _held[k]
    finally:
        if note is not None:
            try:
                note.unlink()
            except OSError:
                pass
        for _, fd in reversed(fds):
            _release(fd)


def _command(what: str) -> str:
    if what:
        return what
    argv = [os.path.basename(sys.argv[0] or "pairminer"), *sys.argv[1:4]]
    return " ".join(argv) + (" ..." if len(sys.argv) > 4 else "")
