"""Where catalog bytes come from: local paths and fsspec URLs, single files, Parquet folders and globs."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CatalogError


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _open(path: str):
    try:
        if _is_url(path):
            import fsspec

            return fsspec.open(path, "rb").open()
        return open(path.removeprefix("file://"), "rb")
    except FileNotFoundError as exc:
        raise CatalogError(f"catalog {path} does not exist; check the path") from exc
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # fsspec backends raise many types
        raise CatalogError(f"cannot read catalog {path}: {exc}") from exc


def _read_range(path: str, start: int, end: int) -> bytes:
    with _open(path) as f:
        f.seek(start)
        return f.read() if end < 0 else f.read(end - start)


def _size(path: str) -> int:
    with _open(path) as f:
        return f.seek(0, os.SEEK_END)


def _list_files(path: str) -> list[str]:
    """The files a catalog path names: itself, the data files of a folder, or a glob's matches."""
    if _is_url(path):
        import fsspec

        try:
            fs, root = fsspec.core.url_to_fs(path)
        except Exception as exc:  # an unknown protocol, a missing backend
            raise CatalogError(f"cannot read catalog {path}: {exc}") from exc
        proto = path.split("://", 1)[0]

        def url(p: str) -> str:
            return p if "://" in p else f"{proto}://{p.lstrip('/') if proto != 'file' else p}"

        if any(ch in root for ch in "*?["):
            found = sorted(fs.glob(root))
            if not found:
                raise CatalogError(f"catalog {path}: no file matches this pattern")
            return [url(p) for p in found]
        try:
            if fs.isdir(root):
                found = sorted(p for p in fs.find(root) if _is_data_file(p))
                if not found:
                    raise CatalogError(f"catalog {path} is a folder without .parquet files; give a .csv or "
                                       ".parquet file, or a folder of Parquet files")
                return [url(p) for p in found]
        except CatalogError:
            raise
        except Exception:
            pass
        return [path]
    local = path.removeprefix("file://")
    if any(ch in local for ch in "*?["):
        import glob

        found = sorted(p for p in glob.glob(local, recursive=True) if os.path.isfile(p))
        if not found:
            raise CatalogError(f"catalog {path}: no file matches this pattern")
        return found
    p = Path(local)
    if not p.exists():
        raise CatalogError(f"catalog {path} does not exist; check the path")
    if p.is_dir():
        found = sorted(str(f) for f in p.rglob("*") if f.is_file() and _is_data_file(str(f.relative_to(p))))
        if not found:
            raise CatalogError(f"catalog {path} is a folder without .parquet files; give a .csv or .parquet "
                               "file, or a folder of Parquet files")
        return found
    return [str(p)]


def _is_data_file(rel: str) -> bool:
    """Parquet files of a dataset folder (hidden and `_`-prefixed names, as Spark writes, are skipped)."""
    parts = rel.replace("\\", "/").split("/")
    return rel.lower().endswith((".parquet", ".pq")) and not any(x.startswith((".", "_")) for x in parts)


def _base_dir(path: str) -> str:
    if _is_url(path):
        return path.rsplit("/", 1)[0]
    local = Path(path.removeprefix("file://"))
    if local.is_dir():
        return str(local.resolve())
    if any(ch in str(local) for ch in "*?["):
        local = Path(str(local).split("*")[0].split("?")[0].split("[")[0] + "x")
    return str(local.resolve().parent)
