"""One pair's stems on disk: quantised so that they sum back to the mixture, written atomically.

A pair's folder is written under a temporary name in its split folder and renamed into place when
its three files are complete, so a killed run leaves either a whole folder or a temporary one (which
the next run removes). The same stems give the same bytes (soundfile/libsndfile, no timestamps).

Quantisation: with a PCM subtype the mixture and the "clean" stem (the matched version: the
instrumental of an instrumental pair, the vocals of an acapella pair) are rounded to the grid, and
the other stem is their integer difference. The three files therefore sum exactly
(`mixture == vocals + instrumental` sample for sample) unless the difference leaves the integer
range, which is clipped and counted (`clipped_samples`). With FLOAT the difference is taken in
float32 and the sum is exact to float32 rounding (|error| <= 2^-24 of full scale).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np

SOURCES = ("vocals", "instrumental")
FILES = ("mixture", *SOURCES)
TMP_PREFIX = ".tmp-stems-"
_BITS = {"PCM_16": 16, "PCM_24": 24}


def folder_name(pair_id: str) -> str:
    """A filesystem-safe, unique folder name for a pair (its pair_id, with a hash when characters were replaced)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(pair_id)).strip("._") or "pair"
    if safe != str(pair_id) or len(safe) > 120:
        safe = f"{safe[:100]}-{hashlib.blake2b(str(pair_id).encode('utf-8'), digest_size=4).hexdigest()}"
    return safe


def quantise(mixture: np.ndarray, clean: np.ndarray, subtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(mixture, clean, rest = mixture - clean, clipped samples) on the subtype's grid, as arrays to write."""
    if subtype == "FLOAT":
        m = mixture.astype(np.float32)
        c = clean.astype(np.float32)
        return m, c, m - c, 0
    bits = _BITS[subtype]
    full = float(2 ** (bits - 1))
    lo, hi = -full, full - 1

    def grid(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(np.asarray(x, np.float64) * full), lo, hi).astype(np.int32)

    m, c = grid(mixture), grid(clean)
    rest = m - c
    clipped = int(np.count_nonzero((rest < lo) | (rest > hi)))
    rest = np.clip(rest, lo, hi).astype(np.int32)
    if bits == 16:
        return m.astype(np.int16), c.astype(np.int16), rest.astype(np.int16), clipped
    # libsndfile writes int32 data to PCM_24 by keeping the top 24 bits: put the grid there.
    return m << 8, c << 8, rest << 8, clipped


def write_pair(root: str | os.PathLike, relpath: str, stems: dict[str, np.ndarray], sr: int, *, fmt: str = "wav",
               subtype: str = "PCM_16") -> int:
    """Write mixture/vocals/instrumental of one pair into ROOT/relpath atomically; returns clipped samples.

    Args:
        root: the stems root.
        relpath: "<split>/<folder>".
        stems: "mixture", "vocals", "instrumental" float arrays (samples, channels) and "clean": which of
            the two stems is the matched version ("instrumental" or "vocals").
        sr: sample rate.
        fmt: "wav" or "flac".
        subtype: "PCM_16", "PCM_24" or "FLOAT".
    """
    import soundfile as sf

    clean_name = stems["clean"]
    rest_name = "vocals" if clean_name == "instrumental" else "instrumental"
    m, c, r, clipped = quantise(stems["mixture"], stems[clean_name], subtype)
    final = Path(root) / relpath
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name, data in (("mixture", m), (clean_name, c), (rest_name, r)):
            sf.write(str(tmp / f"{name}.{fmt}"), data, sr, subtype=subtype, format=fmt.upper())
        if final.exists():  # a folder of an earlier, unfinished run: replaced by the same content
            if not is_pair_folder(final):
                from ..errors import OutputError

                raise OutputError(f"{final} exists and holds files stems did not write; move it away")
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return clipped


def is_pair_folder(path: Path) -> bool:
    """True when `path` holds only stems files as this stage writes them (safe to replace or remove)."""
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    allowed = {f"{f}.{ext}" for f in FILES for ext in ("wav", "flac")}
    return bool(names) and names <= allowed


def remove_temps(root: str | os.PathLike) -> None:
    """Remove the temporary pair folders a killed run left in the split folders."""
    for split in Path(root).iterdir() if Path(root).is_dir() else ():
        if split.is_dir() and not split.name.startswith("."):
            for p in split.glob(f"{TMP_PREFIX}*"):
                shutil.rmtree(p, ignore_errors=True)
