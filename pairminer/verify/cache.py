"""The fingerprint cache of the verify stage: Chromaprint fingerprints by file, reused across runs.

A file's key covers its path, size, mtime, `max_seconds` and, for local files, a digest of its first
and last MiB, so a replaced file is fingerprinted again. The cache is a folder of Parquet parts
(schema `fingerprints`), each written atomically; appends never rewrite a part.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import time
import uuid
from typing import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import AudioError
from ..storage import ensure_dir, is_url, remove_stale_temps, write_table
from .fingerprint import Fingerprint

log = logging.getLogger(__name__)

# Part of every cache key: bump it when the stored fingerprint or band format changes.
CACHE_FORMAT = "chromaprint2-bands16db-hop455-v2"
_EDGE_BYTES = 1 << 20


def content_digest(path: str, size: int) -> str:
    """Cheap content check of a local file: blake2b of its first and last MiB plus its size.

    Catches a same-size file replaced with its mtime kept (``cp -p``, ``rsync -a``, ``tar -x``)
    at the cost of reading at most 2 MiB.
    """
    h = hashlib.blake2b(str(size).encode("ascii"), digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(_EDGE_BYTES))
        if size > _EDGE_BYTES:
            f.seek(max(_EDGE_BYTES, size - _EDGE_BYTES))
            h.update(f.read(_EDGE_BYTES))
    return h.hexdigest()


def file_key(path: str, max_seconds: float | None) -> tuple[str, int, int]:
    """(cache key, size in bytes, mtime in ns) of a file; raises AudioError if it is missing.

    The key covers the path, size, mtime, `max_seconds` and, for local files, a digest of the first
    and last MiB (`content_digest`), so replaced content is fingerprinted again.
    """
    digest = ""
    try:
        if is_url(path):
            import fsspec

            fs, p = fsspec.core.url_to_fs(path)
            info = fs.info(p)
            size = int(info.get("size") or 0)
            mt = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("ETag") or ""
            mtime_ns = int(pd.Timestamp(mt).value) if not isinstance(mt, (int, float)) and mt else int(float(mt or 0) * 1e9)
        else:
            st = os.stat(path)
            size, mtime_ns = int(st.st_size), int(st.st_mtime_ns)
            if os.path.isfile(path):
                digest = content_digest(path, size)
    except FileNotFoundError as exc:
        raise AudioError(f"{path}: file not found") from exc
    except ImportError as exc:
        raise AudioError(f"{path}: cannot fetch, no fsspec backend for {path.split('://')[0]}:// is installed "
                         f"({exc}); install it, or give local paths") from exc
    except (OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot stat ({exc})") from exc
    raw = f"{CACHE_FORMAT}\0{path}\0{size}\0{mtime_ns}\0{max_seconds}\0{digest}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest(), size, mtime_ns


class FingerprintCache:
    """A folder of Parquet parts (schema `fingerprints`), each written atomically; appends never rewrite.

    A killed run leaves at most a temporary file (ignored, since it is not named ``part-*.parquet``).
    Duplicate keys across parts are harmless (the first is used). `compact()` merges parts.
    """

    def __init__(self, folder: str):
        self.folder = str(folder)
        ensure_dir(self.folder)
        remove_stale_temps(self.folder)  # a killed run's half-written part

    def parts(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.folder, "part-*.parquet")))

    def lookup(self, keys: Iterable[str]) -> dict[str, Fingerprint]:
        keys = sorted(set(keys))
        found: dict[str, Fingerprint] = {}
        if not keys:
            return found
        for part in self.parts():
            try:
                t = pq.read_table(part, filters=[("key", "in", keys)])
            except (pa.ArrowInvalid, OSError) as exc:
                log.warning("ignoring unreadable fingerprint cache part %s (%s)", part, exc)
                continue
            for rec in t.to_pylist():
                if rec["key"] not in found:
                    found[rec["key"]] = Fingerprint.decode(rec)
        return found

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        write_table(os.path.join(self.folder, name), pd.DataFrame(records), "fingerprints")

    def compact(self, max_parts: int = 32) -> None:
        """Merge the parts into one when there are more than `max_parts` (new part first, then deletes)."""
        parts = self.parts()
        if len(parts) <= max_parts:
            return
        table = pa.concat_tables([pq.read_table(p) for p in parts])
        df = table.to_pandas().drop_duplicates("key", keep="first")
        self.append(df.to_dict("records"))
        for p in parts:
            os.unlink(p)
