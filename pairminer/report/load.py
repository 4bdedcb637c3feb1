"""Reading OUT: which stage outputs exist, the tables and reports they hold, and shared number helpers.

The report names no output file itself: `STAGE_FILES` maps its roles onto the artifact table of
`pairminer.stages`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import storage as pio
from ..errors import InputError
from ..stages import ARTIFACTS

log = logging.getLogger(__name__)

STATUSES = ("verified", "too_similar", "too_different", "error")
STATUS_LABELS = {
    "verified": "Verified",
    "too_similar": "Too similar",
    "too_different": "Too different",
    "error": "Errors",
}
STATUS_COLOURS = {"verified": "#2e7d32", "too_similar": "#ef6c00", "too_different": "#6a1b9a", "error": "#c62828"}


# The report's roles for the artifacts of the registry (pairminer.stages), per stage it reports on.
_ROLES = {
    "discover": {"candidates": "candidates", "rejects": "rejects", "report": "discover_report",
                 "near_misses": "near_misses"},
    "verify": {"verified": "verified", "report": "verify_report"},
    "targets": {"manifest": "manifest", "report": "targets_report"},
}
STAGE_FILES = {stage: {role: ARTIFACTS[name].path for role, name in roles.items()} for stage, roles in _ROLES.items()}
"""Stage -> role -> path under OUT, read from the registry's artifact table."""
TARGETS_DIR = ARTIFACTS["targets_dir"].path
RUN_HINT = {
    "discover": "run `pairminer discover CATALOG -o OUT`",
    "verify": "run `pairminer verify OUT/candidates.parquet -o OUT`",
    "targets": "run `pairminer targets OUT/verified.parquet -o OUT/targets`",
}


@dataclass
class StageOutputs:
    """One stage's outputs as found in OUT.

    Attributes:
        name: discover | verify | targets.
        files: Role -> path of each file that exists.
        missing: Relative names of the expected files that do not exist.
        tables: Role -> DataFrame for each Parquet file read.
        report: The stage's JSON report ({} when absent).
        problems: Files that exist but could not be read, with the reason.
    """

    name: str
    files: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def present(self) -> bool:
        return bool(self.tables) or bool(self.report)

    @property
    def counts(self) -> dict:
        c = self.report.get("counts")
        return c if isinstance(c, dict) else {}


def load_outputs(out_dir: str) -> dict[str, StageOutputs]:
    """Read every stage output that exists in `out_dir` (local path or fsspec URL).

    A file that exists but cannot be read is recorded in `problems` (and logged), not raised, so
    that one broken file does not hide the rest of the report.
    """
    stages = {}
    for stage, roles in STAGE_FILES.items():
        so = StageOutputs(stage)
        for role, rel in roles.items():
            path = pio.join(out_dir, *rel.split("/"))
            if not pio.exists(path):
                so.missing.append(rel)
                continue
            so.files[role] = path
            try:
                if rel.endswith(".json"):
                    doc = pio.read_json(path)
                    if not isinstance(doc, dict):
                        raise InputError(f"{path} holds a JSON {type(doc).__name__}, not an object")
                    so.report = doc
                else:
                    so.tables[role] = pio.read_table(path).to_pandas()
            except InputError as exc:
                log.warning("skipping %s: %s", path, exc)
                so.problems.append(str(exc))
        stages[stage] = so
    return stages


def _num(value: Any) -> float | None:
    """A finite number or None (JSON reports may hold null, strings or nothing)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int(value: Any) -> int | None:
    f = _num(value)
    return None if f is None else int(round(f))


def pair_seconds(df: pd.DataFrame) -> pd.Series:
    """Seconds of audio per pair: mix_duration_s + version_duration_s (NaN where unknown)."""
    if "mix_duration_s" in df and "version_duration_s" in df:
        return pd.to_numeric(df["mix_duration_s"], errors="coerce") + pd.to_numeric(
            df["version_duration_s"], errors="coerce"
        )
    return pd.Series(np.nan, index=df.index, dtype="float64")


def _hours(seconds: pd.Series) -> float | None:
    s = seconds.dropna()
    return float(s.sum() / 3600.0) if len(s) else (0.0 if len(seconds) == 0 else None)


def _duration_lookup(stages: dict[str, StageOutputs]) -> pd.Series:
    """pair_id -> seconds of audio (mix + version), from verified.parquet then candidates.parquet."""
    parts = []
    for stage, role in (("verify", "verified"), ("discover", "candidates")):
        df = stages[stage].tables.get(role)
        if df is not None and "pair_id" in df:
            parts.append(pd.Series(pair_seconds(df).to_numpy(), index=df["pair_id"].astype(str)))
    if not parts:
        return pd.Series(dtype="float64")
    s = pd.concat(parts)
    return s[~s.index.duplicated(keep="first")]


def targets_pairs(stages: dict[str, StageOutputs]) -> pd.DataFrame | None:
    """One row per pair with targets: pair_id, genre, pair_s (mix + version seconds).

    The manifest may hold several rows per pair (one per shard chunk); the pair's first row gives
    its genre. Durations come from verified/candidates by pair_id; a pair found in neither falls back
    to 2 x the manifest's duration_s (its aligned length, counted for both sides).
    """
    man = stages["targets"].tables.get("manifest")
    if man is None or "pair_id" not in man:
        return None
    man = man.assign(pair_id=man["pair_id"].astype(str))
    first = man.drop_duplicates("pair_id", keep="first").set_index("pair_id")
    lookup = _duration_lookup(stages)
    pair_s = lookup.reindex(first.index)
    if "duration_s" in first:
        pair_s = pair_s.fillna(2.0 * pd.to_numeric(first["duration_s"], errors="coerce"))
    if "genre" in first:
        genre = first["genre"]
    else:
        genre = _genre_lookup(stages).reindex(first.index)
    return pd.DataFrame({"pair_id": first.index, "genre": genre.to_numpy(), "pair_s": pair_s.to_numpy()})


def _genre_lookup(stages: dict[str, StageOutputs]) -> pd.Series:
    for stage, role in (("verify", "verified"), ("discover", "candidates")):
        df = stages[stage].tables.get(role)
        if df is not None and "pair_id" in df and "genre" in df:
            s = pd.Series(df["genre"].to_numpy(), index=df["pair_id"].astype(str))
            return s[~s.index.duplicated(keep="first")]
    return pd.Series(dtype="object")


def _fmt_count(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.0f}" if float(x) == int(x) else f"{x:,.1f}"


def _fmt_pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}%"


def _fmt_hours(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.1f}" if x >= 10 else f"{x:,.2f}"


def _text_table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    from ..termsafe import clean

    rows = [[clean(c) for c in r] for r in rows]  # catalog text (genres, titles) is untrusted
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])



def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.ndarray, list, tuple)):
        return "; ".join(map(str, v))
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def _stage_summary(so: StageOutputs) -> dict:
    rep = so.report
    return {
        "present": so.present,
        "files": sorted(so.files),
        "missing": so.missing,
        "problems": so.problems,
        "rows": {role: int(len(df)) for role, df in so.tables.items()},
        "counts": so.counts,
        "config": rep.get("config") if isinstance(rep.get("config"), dict) else None,
        "versions": rep.get("versions") if isinstance(rep.get("versions"), dict) else None,
        "timings_s": rep.get("timings_s") if isinstance(rep.get("timings_s"), dict) else None,
        "extra": {k: rep[k] for k in ("hours", "metadata_confusion_share", "realtime_factor", "frames", "bytes",
                                      "input") if k in rep},
    }
