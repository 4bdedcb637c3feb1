"""Atomic, schema-checked reads and writes of Parquet and JSON, on local paths or fsspec URLs.

Local writes go to a temporary name in the destination folder and are renamed into place, so a
killed run never leaves a half-written file under the final name. Remote object stores (s3://,
gs://) publish an object only when its upload completes, which gives the same guarantee.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ConfigError, InputError, OutputError

log = logging.getLogger(__name__)
from .schemas import json_schema, table_schema


def is_url(path: str | os.PathLike) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def check_url_backend(path: str | os.PathLike, *, what: str = "path") -> None:
    """Refuse, before any work, a URL whose fsspec backend is missing (s3:// without s3fs...).

    Raises:
        ConfigError: naming the URL, the package to install, or the unknown scheme.
    """
    path = str(path)
    if not is_url(path):
        return
    import fsspec

    protocol = path.split("://", 1)[0].split("::")[-1]
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        raise ConfigError(f"{what} {path}: {exc} (the fsspec backend for {protocol}:// is not installed); "
                          "install it, or use a local folder") from None
    except ValueError:
        raise ConfigError(f"{what} {path}: unknown URL scheme {protocol}://; use a local path or an fsspec URL "
                          "such as s3://, gs://, az://, memory://") from None


def join(base: str | os.PathLike, *parts: str) -> str:
    """Join path parts for local paths and URLs alike."""
    base = str(base)
    if is_url(base):
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
    return str(Path(base, *parts))


def exists(path: str | os.PathLike) -> bool:
    if is_url(path):
        import fsspec

        fs, p = fsspec.core.url_to_fs(str(path))
        return fs.exists(p)
    return Path(path).exists()


def ensure_dir(path: str | os.PathLike) -> None:
    """Create an output folder, turning permission and disk errors into OutputError."""
    if is_url(path):
        return
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {path}: {exc.strerror}; choose a writable -o folder") from exc
    if not os.access(path, os.W_OK):
        raise OutputError(f"output folder {path} is not writable; choose another -o folder or fix its permissions")


def _host_tag() -> str:
    import socket

    return "".join(c for c in socket.gethostname() if c.isalnum() or c == "-")[:32] or "host"


# Temporary names carry host and pid, so a rerun can tell a killed run's leftovers from a live writer's.
_HOST = _host_tag()
_STALE_AFTER_S = 24 * 3600


def remove_stale_temps(folder: str | os.PathLike) -> list[str]:
    """Delete temporary files that `atomic_path` left in `folder` when its process was killed.

    A temp file is stale when its writer ran on this host and is no longer alive, or when it is over a
    day old (a writer on another host). Live writers' temp files are kept. Returns the removed names.
    """
    if is_url(folder) or not Path(folder).is_dir():
        return []
    removed = []
    for p in Path(folder).iterdir():
        if not (p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file()):
            continue
        try:
            owner = next((part for part in p.name.split(".") if "~" in part), "")
            o_host, _, o_pid = owner.partition("~")
            if o_host == _HOST and o_pid.isdigit():
                stale = not _pid_alive(int(o_pid))
            else:
                stale = time.time() - p.stat().st_mtime > _STALE_AFTER_S
            if stale:
                p.unlink()
                removed.append(p.name)
        except OSError:
            continue
    if removed:
        log.info("removed %d temporary file(s) left by a killed run in %s", len(removed), folder)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_file(path: str | os.PathLike) -> None:
    """Delete a file if it exists (local path or URL).

    Stages delete their old report before they replace their tables: the report is written last and
    marks a complete run, so a run that fails half-way must not leave the previous run's report
    vouching for the new, unfinished outputs.
    """
    try:
        if is_url(path):
            import fsspec

            fs, p = fsspec.core.url_to_fs(str(path))
            if fs.exists(p):
                fs.rm(p)
            return
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot remove the old {path}: {exc.strerror}; check the -o folder's permissions") from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary local path next to `path`; rename it onto `path` when the block succeeds."""
    path = Path(path)
    ensure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}~{os.getpid()}.", suffix=f"{suffix}.tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the output the usual umask-based permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
            raise OutputError(f"cannot write {path}: {exc.strerror}; free disk space or choose another -o") from exc
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    if is_url(path):
        import fsspec

        with fsspec.open(str(path), "wb") as f:
            f.write(data)
        return
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean_floats(obj: Any) -> Any:
    """JSON has no NaN/inf; write them as null so every reader can parse the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_floats(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, doc: dict, schema: str | None = None) -> None:
    """Write a JSON document atomically, validating it first against `schemas/<schema>.schema.json`."""
    doc = json.loads(json.dumps(_clean_floats(doc), default=_json_default))
    if schema:
        json_schema(schema).validate(doc)
    write_bytes(path, (json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: str | os.PathLike) -> dict:
    try:
        if is_url(path):
            import fsspec

            with fsspec.open(str(path), "rb") as f:
                return json.loads(f.read())
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{path} does not exist") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); delete it and rerun the stage that writes it") from exc


def write_table(path: str | os.PathLike, data: Any, schema: str) -> pa.Table:
    """Conform `data` (DataFrame or Table) to `schemas/<schema>`, then write Parquet atomically.

    The Parquet metadata carries the schema name and version. Returns the written table.
    """
    table = table_schema(schema).conform(data)
    if is_url(path):
        import fsspec

        with fsspec.open(str(path), "wb") as f:
            pq.write_table(table, f, compression="zstd")
        return table
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return table


class TableWriter:
    """Write a table in batches: each batch is conformed to `schemas/<schema>` and appended as row groups.

    The file appears only on `close()` (atomically for a local path; a URL gets the finished file
    uploaded), so a killed run leaves no half table. Memory holds one batch, not the table.
    """

    def __init__(self, path: str | os.PathLike, schema: str):
        self.path, self.schema = str(path), table_schema(schema)
        self._stack = contextlib.ExitStack()
        if is_url(self.path):
            fd, self._tmp = tempfile.mkstemp(suffix=".parquet.tmp")
            os.close(fd)
            self._stack.callback(lambda: os.path.exists(self._tmp) and os.unlink(self._tmp))
        else:
            self._tmp = self._stack.enter_context(atomic_path(self.path, suffix=".parquet"))
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, data: Any) -> None:
        table = self.schema.conform(data)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema, compression="zstd")
        self._writer.write_table(table)
        self.rows += len(table)

    def close(self, empty: Any = None) -> str:
        """Finish the file (with `empty`, a zero-row frame, when no batch came) and put it in place."""
        if self._writer is None:
            self.write(empty)
        self._writer.close()
        if is_url(self.path):
            import fsspec

            with open(self._tmp, "rb") as src, fsspec.open(self.path, "wb") as dst:
                shutil.copyfileobj(src, dst)
        self._stack.close()
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        with contextlib.suppress(BaseException):
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


@contextlib.contextmanager
def _parquet_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn the ways a pairminer Parquet file can be missing or broken into one InputError each."""
    try:
        if not is_url(path) and Path(path).is_dir():
            raise InputError(f"{path} is a folder; give the path of a .parquet file")
        yield
    except FileNotFoundError as exc:
        raise InputError(f"{path} does not exist; run the stage that writes it first") from exc
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path} is not a readable Parquet file ({exc}); rerun the stage that writes it") from exc


def open_parquet(path: str | os.PathLike) -> tuple[pq.ParquetFile, Any]:
    """(ParquetFile, handle to close) of a local path or URL, for reading in row batches."""
    with _parquet_errors(path):
        if is_url(path):
            import fsspec

            f = fsspec.open(str(path), "rb").open()
            return pq.ParquetFile(f), f
        return pq.ParquetFile(str(path)), None


def read_table(path: str | os.PathLike, schema: str | None = None) -> pa.Table:
    """Read a Parquet file written by pairminer; with `schema`, validate it (every problem at once)."""
    with _parquet_errors(path):
        if is_url(path):
            import fsspec

            with fsspec.open(str(path), "rb") as f:
                table = pq.read_table(f)
        else:
            table = pq.read_table(path)
    if schema:
        table_schema(schema).validate(table)
    return table
