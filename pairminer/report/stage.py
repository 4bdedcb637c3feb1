"""The audit of what was mined: funnel, genre breakdown, hours of audio, plots and one HTML page.

`run_report(out_dir, report_dir, config)` reads whichever stage outputs exist in `out_dir`:

* discover: ``candidates.parquet``, ``rejects.parquet``, ``discover-report.json``
* verify:   ``verified.parquet``, ``verify-report.json``
* targets:  ``targets/manifest.parquet``, ``targets/targets-report.json``

and writes into `report_dir`: ``report.html`` (one self-contained page, images embedded),
``report.json`` (the same numbers, schema ``report``), ``genre_breakdown.csv`` / ``.parquet``
(schema ``genre-breakdown``) and one PNG per plot. A stage whose outputs are absent gets a section
saying it has not run; numbers are taken from the Parquet tables where present and from the stage's
JSON report otherwise.

Hours of audio of a set of pairs are always ``sum(mix_duration_s + version_duration_s) / 3600``:
both sides of every pair, since both are audio the pipeline decodes and keeps.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io as _bytesio
import json
import logging
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from .. import storage as pio
from ..config import StageConfig
from ..errors import ConfigError, InputError
from ..runinfo import Timings, versions
from .config import ReportConfig

log = logging.getLogger(__name__)

STATUSES = ("verified", "too_similar", "too_different", "error")
STATUS_LABELS = {
    "verified": "Verified",
    "too_similar": "Too similar",
    "too_different": "Too different",
    "error": "Errors",
}
STATUS_COLOURS = {"verified": "#2e7d32", "too_similar": "#ef6c00", "too_different": "#6a1b9a", "error": "#c62828"}
GENRE_COLUMNS = ["rank", "genre", "genre_key", "pairs", "pct_pairs", "hours", "pct_hours", "n_genres", "stage"]
OTHER_KEY, UNKNOWN_KEY = "other", "unknown"


@dataclass
class ReportResult:
    """What `run_report` wrote and the numbers it found.

    Attributes:
        report_dir: The output folder.
        html_path, json_path: report.html and report.json.
        genre_csv_path, genre_parquet_path: The genre breakdown table.
        plot_paths: Plot name -> PNG path, for the plots that had data.
        stages_present: Stages whose outputs were found, in pipeline order.
        funnel: The funnel steps (dicts as in report.json).
        genre_table: The genre breakdown (columns of schemas/genre-breakdown.schema.json).
        genre_stage: Whose pairs the genre table counts (targets, verified or candidates), or None.
    """

    report_dir: str
    html_path: str
    json_path: str
    genre_csv_path: str
    genre_parquet_path: str
    plot_paths: dict[str, str]
    stages_present: tuple[str, ...]
    funnel: list[dict]
    genre_table: pd.DataFrame
    genre_stage: str | None


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------

_STAGE_FILES = {
    "discover": {"candidates": "candidates.parquet", "rejects": "rejects.parquet", "report": "discover-report.json"},
    "verify": {"verified": "verified.parquet", "report": "verify-report.json"},
    "targets": {"manifest": "targets/manifest.parquet", "report": "targets/targets-report.json"},
}
_RUN_HINT = {
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
    for stage, roles in _STAGE_FILES.items():
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


# --------------------------------------------------------------------------------------------------
# Funnel
# --------------------------------------------------------------------------------------------------


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


def _step(key, label, count, hours=None, *, parent=None, level=0, source="") -> dict:
    return {"key": key, "label": label, "count": count, "hours": hours, "parent": parent, "level": level,
            "source": source, "pct_of_catalog": None, "pct_of_parent": None}


def build_funnel(stages: dict[str, StageOutputs]) -> list[dict]:
    """The funnel from catalog rows to pairs with targets.

    Returns:
        A list of steps, each a dict with key, label, count (int or None when unknown), hours
        (mix + version hours of the pairs at that step; catalog hours for the catalog row; None
        where the outputs do not say), parent (key of the step it is a share of), level (indent),
        source (the file the count came from), pct_of_catalog and pct_of_parent (0-100 or None).
    """
    d, v, t = stages["discover"], stages["verify"], stages["targets"]
    steps: list[dict] = []
    dc = d.counts
    rejects = d.tables.get("rejects")
    cands = d.tables.get("candidates")
    rep = "discover-report.json"

    rejected = _int(dc.get("rows_rejected"))
    rejected_src = rep
    if rejected is None and rejects is not None:
        rejected, rejected_src = len(rejects), "rejects.parquet"
    used = _int(dc.get("rows_used"))
    catalog = _int(dc.get("rows_read"))
    if catalog is None and used is not None and rejected is not None:
        catalog = used + rejected
    if used is None and catalog is not None and rejected is not None:
        used = catalog - rejected
    hours_doc = d.report.get("hours") if isinstance(d.report.get("hours"), dict) else {}
    if d.present:
        steps.append(_step("catalog_rows", "Catalog rows", catalog, _num(hours_doc.get("catalog")), source=rep))
        steps.append(_step("rejected", "Rejected rows", rejected, parent="catalog_rows", level=1, source=rejected_src))
        steps.append(_step("rows_used", "Usable rows", used, parent="catalog_rows", level=1, source=rep))
        by_kind = dc.get("versions_by_kind") if isinstance(dc.get("versions_by_kind"), dict) else {}
        n_versions = _int(dc.get("versions"))
        if n_versions is None and by_kind:
            n_versions = sum(_int(n) or 0 for n in by_kind.values())
        steps.append(_step("versions", "Versions (all kinds)", n_versions, parent="rows_used", level=1, source=rep))
        for kind, n in sorted(by_kind.items(), key=lambda kv: (-(_int(kv[1]) or 0), str(kv[0]))):
            steps.append(_step(f"versions:{kind}", f"Versions: {kind}", _int(n), parent="versions", level=2,
                               source=rep))
        if cands is not None:
            n_cand, h_cand, src = len(cands), _hours(pair_seconds(cands)), "candidates.parquet"
        else:
            n_cand, src = _int(dc.get("kept")), rep
            hm, hv = _num(hours_doc.get("kept_mix")), _num(hours_doc.get("kept_version"))
            h_cand = hm + hv if hm is not None and hv is not None else None
        steps.append(_step("candidates", "Candidate pairs", n_cand, h_cand, parent="versions", level=1, source=src))
    if v.present:
        ver = v.tables.get("verified")
        parent = "candidates" if d.present else None
        if ver is not None and "status" in ver:
            status = ver["status"].astype(str)
            secs = pair_seconds(ver)
            extra = sorted(set(status.unique()) - set(STATUSES))
            for st in (*STATUSES, *extra):
                mask = status == st
                steps.append(_step(st, STATUS_LABELS.get(st, st), int(mask.sum()), _hours(secs[mask]),
                                   parent=parent, level=2, source="verified.parquet"))
        else:
            vc = v.counts
            vh = v.report.get("hours") if isinstance(v.report.get("hours"), dict) else {}
            for st in STATUSES:
                steps.append(_step(st, STATUS_LABELS[st], _int(vc.get(st)),
                                   _num(vh.get(st)), parent=parent, level=2, source="verify-report.json"))
    if t.present:
        tp = targets_pairs(stages)
        if tp is not None:
            n_t, h_t, src = len(tp), _hours(tp["pair_s"]), "targets/manifest.parquet"
        else:
            tc = t.counts
            w, s = _int(tc.get("written")), _int(tc.get("skipped_existing"))
            n_t = None if w is None else w + (s or 0)
            h_t, src = None, "targets/targets-report.json"
        parent = "verified" if v.present else ("candidates" if d.present else None)
        steps.append(_step("targets", "Pairs with targets", n_t, h_t, parent=parent, level=3 if v.present else 2,
                           source=src))
    by_key = {s["key"]: s for s in steps}
    cat = by_key.get("catalog_rows", {}).get("count")
    for s in steps:
        if s["count"] is None:
            continue
        if cat:
            s["pct_of_catalog"] = 100.0 * s["count"] / cat
        par = by_key.get(s["parent"]) if s["parent"] else None
        if par and par["count"]:
            s["pct_of_parent"] = 100.0 * s["count"] / par["count"]
    return steps


def funnel_checks(funnel: list[dict]) -> list[dict]:
    """Do the counts add up? rejected + usable = catalog; kinds sum to versions; statuses to candidates.

    Returns:
        One dict per check that could be made: name, ok (bool), detail (text).
    """
    by_key = {s["key"]: s["count"] for s in funnel}
    out = []

    def check(name, parts, total):
        vals = [by_key.get(p) for p in parts]
        if total is None or any(x is None for x in vals) or not parts:
            return
        got = sum(vals)
        out.append({"name": name, "ok": got == total, "detail": f"{' + '.join(parts)} = {got}, expected {total}"})

    check("rejected + usable = catalog rows", ["rejected", "rows_used"], by_key.get("catalog_rows"))
    kinds = [k for k in by_key if k.startswith("versions:")]
    check("versions by kind sum to versions", kinds, by_key.get("versions"))
    statuses = [s["key"] for s in funnel if s["parent"] == "candidates" and s["level"] == 2]
    if "candidates" in by_key:
        check("verify statuses sum to candidates", statuses, by_key.get("candidates"))
    return out


# --------------------------------------------------------------------------------------------------
# Genre breakdown
# --------------------------------------------------------------------------------------------------

_WS = re.compile(r"\s+")
_AND = re.compile(r"\s+and\s+")


def clean_genre(value: str) -> str:
    """Display cleaning of one genre value: Unicode NFKC, runs of whitespace -> one space, stripped."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", value)).strip()


def genre_key(value: str) -> str:
    """Grouping key: `clean_genre`, case-folded, '-'/'_' as spaces, ' and ' as ' & '.

    >>> genre_key("  Hip-Hop ") == genre_key("hip hop")
    True
    """
    s = clean_genre(value).casefold().replace("-", " ").replace("_", " ")
    return _AND.sub(" & ", _WS.sub(" ", s)).strip()


def split_genres(value: Any, separators: tuple[str, ...] = (";", "|")) -> list[str]:
    """The genre values in one cell: a list/array of strings, or a string split on `separators`.

    Missing values (None, NaN, empty or blank strings) give an empty list.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        out = []
        for v in value:
            out.extend(split_genres(v, separators))
        return out
    text = str(value)
    if separators:
        text = re.split("|".join(map(re.escape, separators)), text)
    else:
        text = [text]
    return [c for c in (clean_genre(t) for t in text) if c]


def _display(spellings: Counter) -> str:
    best = sorted(spellings.items(), key=lambda kv: (-kv[1], kv[0].islower() or kv[0].isupper(), kv[0]))[0][0]
    return best.title() if best.islower() else best


def round_to_total(values: np.ndarray, total: float = 100.0, decimals: int = 1) -> np.ndarray:
    """Shares of `values` as percentages rounded to `decimals` that sum exactly to `total`.

    Largest-remainder rounding: round every share down, then give the leftover units (0.1 each by
    default) to the shares with the largest remainders (the earlier row on ties).
    """
    values = np.asarray(values, dtype="float64")
    s = values.sum()
    if len(values) == 0 or s <= 0:
        return np.zeros(len(values))
    scale = 10**decimals
    units = values / s * total * scale
    floor = np.floor(units + 1e-9)
    left = int(round(total * scale - floor.sum()))
    order = np.argsort(-(units - floor), kind="stable")
    floor[order[:left]] += 1
    return np.round(floor / scale, decimals)


def genre_breakdown(
    pairs: pd.DataFrame,
    *,
    top_n: int = 12,
    mode: str = "first",
    separators: tuple[str, ...] = (";", "|"),
    stage: str = "candidates",
) -> pd.DataFrame:
    """Pairs and hours per genre: the top `top_n` genres, then "Other", then "Unknown".

    Args:
        pairs: One row per pair, with columns genre (string, list of strings, or null) and pair_s
            (float seconds of audio of the pair; NaN counts as 0 hours).
        top_n: Named genres kept; the rest (and a catalog genre literally called "Other") fold
            into "Other".
        mode: "first" uses the first value of a multi-valued genre; "split" gives each of the
            pair's k distinct (normalised) genres a 1/k share of the pair and of its hours.
        separators: Separators of several genres in one string.
        stage: Recorded in the `stage` column.

    Returns:
        A DataFrame with the columns of schemas/genre-breakdown.schema.json; pct_pairs and
        pct_hours each sum to 100.0 (or are all 0 with no pairs).
    """
    if mode not in ("first", "split"):
        raise ConfigError(f"genre mode {mode!r} is not one of 'first', 'split'")
    weights: dict[str, float] = {}
    secs: dict[str, float] = {}
    spell: dict[str, Counter] = {}
    pair_s = pd.to_numeric(pairs["pair_s"], errors="coerce").fillna(0.0).to_numpy() if len(pairs) else []
    memo: dict[str, dict[str, str]] = {}  # catalogs repeat a few genre strings many times
    for raw, s in zip(pairs["genre"].tolist() if len(pairs) else [], pair_s):
        keyed = memo.get(raw) if isinstance(raw, str) else None
        if keyed is None:
            keyed = {}
            for val in split_genres(raw, separators):
                keyed.setdefault(genre_key(val), val)
            if mode == "first":
                keyed = dict(list(keyed.items())[:1])
            if not keyed:
                keyed = {UNKNOWN_KEY: "Unknown"}
            if isinstance(raw, str):
                memo[raw] = keyed
        w = 1.0 / len(keyed)
        for k, val in keyed.items():
            weights[k] = weights.get(k, 0.0) + w
            secs[k] = secs.get(k, 0.0) + w * float(s)
            spell.setdefault(k, Counter())[val] += 1
    named = [k for k in weights if k not in (OTHER_KEY, UNKNOWN_KEY)]
    named.sort(key=lambda k: (-weights[k], -secs[k], _display(spell[k]).casefold()))
    top, rest = named[:top_n], named[top_n:]
    rows = [{"genre": _display(spell[k]), "genre_key": k, "pairs": weights[k], "hours": secs[k] / 3600.0,
             "n_genres": 1} for k in top]
    folded = rest + ([OTHER_KEY] if OTHER_KEY in weights else [])
    if folded:
        rows.append({"genre": "Other", "genre_key": OTHER_KEY, "pairs": sum(weights[k] for k in folded),
                     "hours": sum(secs[k] for k in folded) / 3600.0, "n_genres": len(folded)})
    if UNKNOWN_KEY in weights:
        rows.append({"genre": "Unknown", "genre_key": UNKNOWN_KEY, "pairs": weights[UNKNOWN_KEY],
                     "hours": secs[UNKNOWN_KEY] / 3600.0, "n_genres": 0})
    df = pd.DataFrame(rows, columns=["genre", "genre_key", "pairs", "hours", "n_genres"])
    df["pct_pairs"] = round_to_total(df["pairs"].to_numpy())
    df["pct_hours"] = round_to_total(df["hours"].to_numpy())
    df["rank"] = np.arange(1, len(df) + 1, dtype="int32")
    df["n_genres"] = df["n_genres"].astype("int32")
    df["pairs"] = df["pairs"].astype("float64")
    df["hours"] = df["hours"].astype("float64")
    df["stage"] = stage
    return df[GENRE_COLUMNS].reset_index(drop=True)


def final_pairs(stages: dict[str, StageOutputs]) -> tuple[str | None, pd.DataFrame | None]:
    """The pairs of the last stage present: targets > verified (status verified) > candidates.

    Returns:
        (stage name, DataFrame with genre and pair_s), or (None, None) when no table is present.
    """
    tp = targets_pairs(stages)
    if tp is not None:
        return "targets", tp
    ver = stages["verify"].tables.get("verified")
    if ver is not None and "status" in ver:
        ok = ver[ver["status"].astype(str) == "verified"]
        return "verified", pd.DataFrame({"genre": ok["genre"] if "genre" in ok else None, "pair_s": pair_seconds(ok)})
    cands = stages["discover"].tables.get("candidates")
    if cands is not None:
        return "candidates", pd.DataFrame(
            {"genre": cands["genre"] if "genre" in cands else None, "pair_s": pair_seconds(cands)}
        )
    return None, None


# --------------------------------------------------------------------------------------------------
# Text tables (for the terminal; the CLI echoes them)
# --------------------------------------------------------------------------------------------------


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
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def format_genre_table(table: pd.DataFrame) -> str:
    """The genre breakdown as a plain-text table (genre, pairs, % pairs, hours, % hours)."""
    rows = [[r.genre, _fmt_count(r.pairs), _fmt_pct(r.pct_pairs), _fmt_hours(r.hours), _fmt_pct(r.pct_hours)]
            for r in table.itertuples()]
    return _text_table(["genre", "pairs", "% pairs", "hours", "% hours"], rows, {1, 2, 3, 4})


def format_funnel(funnel: list[dict]) -> str:
    """The funnel as a plain-text table (step, count, % of catalog, % of previous step, hours)."""
    rows = [["  " * s["level"] + s["label"], _fmt_count(s["count"]), _fmt_pct(s["pct_of_catalog"]),
             _fmt_pct(s["pct_of_parent"]), _fmt_hours(s["hours"])] for s in funnel]
    return _text_table(["step", "count", "% catalog", "% of parent", "hours"], rows, {1, 2, 3, 4})


# --------------------------------------------------------------------------------------------------
# Plots (matplotlib's object API with the Agg canvas: no pyplot state, safe without a display)
# --------------------------------------------------------------------------------------------------


def _figure(width_in: float = 8.0, height_in: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = _bytesio.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def plot_funnel(funnel: list[dict]) -> bytes | None:
    """Horizontal bars of the funnel counts (log scale when they span > 2 decades)."""
    steps = [s for s in funnel if s["count"] is not None]
    if not steps:
        return None
    colours = {**STATUS_COLOURS, "targets": "#00838f", "rejected": "#9e9e9e"}
    fig = _figure(9.0, 0.45 * len(steps) + 1.4)
    ax = fig.add_subplot()
    y = np.arange(len(steps))
    counts = np.array([max(s["count"], 0) for s in steps], dtype=float)
    ax.barh(y, np.maximum(counts, 0.8), color=[colours.get(s["key"], "#1565c0") for s in steps])
    ax.set_yticks(y, ["  " * s["level"] + s["label"] for s in steps])
    ax.invert_yaxis()
    pos = counts[counts > 0]
    if len(pos) and pos.max() / pos.min() > 100:
        ax.set_xscale("log")
        ax.set_xlabel("count (rows or pairs, log scale)")
    else:
        ax.set_xlabel("count (rows or pairs)")
    for yi, s in zip(y, steps):
        pct = f" ({s['pct_of_parent']:.1f}% of parent)" if s["pct_of_parent"] is not None else ""
        ax.text(max(s["count"], 0.8), yi, f" {s['count']:,}{pct}", va="center", fontsize=9)
    ax.set_xlim(right=ax.get_xlim()[1] * (40 if ax.get_xscale() == "log" else 1.45))
    ax.set_title("Funnel: catalog rows to pairs with targets")
    return _png(fig)


def plot_genres(table: pd.DataFrame, stage: str | None) -> bytes | None:
    """Horizontal bars of % of pairs per genre, annotated with hours."""
    if table is None or table.empty:
        return None
    fig = _figure(8.0, 0.4 * len(table) + 1.4)
    ax = fig.add_subplot()
    y = np.arange(len(table))
    colours = ["#9e9e9e" if k in (OTHER_KEY, UNKNOWN_KEY) else "#1565c0" for k in table["genre_key"]]
    ax.barh(y, table["pct_pairs"], color=colours)
    ax.set_yticks(y, table["genre"].tolist())
    ax.invert_yaxis()
    for yi, r in zip(y, table.itertuples()):
        ax.text(r.pct_pairs, yi, f" {r.pct_pairs:.1f}%  ({_fmt_hours(r.hours)} h)", va="center", fontsize=9)
    ax.set_xlim(0, max(table["pct_pairs"].max() * 1.35, 1))
    ax.set_xlabel("share of pairs (%)")
    ax.set_title(f"Genre breakdown of {_STAGE_NOUN.get(stage, 'pairs')}")
    return _png(fig)


_STAGE_NOUN = {"targets": "pairs with targets", "verified": "verified pairs", "candidates": "candidate pairs"}


def _hist(values, bins, xlabel, ylabel, title, *, range_=None, groups=None) -> bytes | None:
    from matplotlib.ticker import MaxNLocator

    fig = _figure()
    ax = fig.add_subplot()
    if groups:
        edges = np.histogram_bin_edges(np.concatenate([g for _, g, _ in groups]), bins=bins, range=range_)
        for label, g, colour in groups:
            ax.hist(g, bins=edges, histtype="step", linewidth=2, color=colour, label=f"{label} (n={len(g):,})")
        ax.legend()
    else:
        ax.hist(values, bins=bins, range=range_, color="#1565c0", edgecolor="white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_duration_delta(cands: pd.DataFrame, bins: int) -> bytes | None:
    vals = pd.to_numeric(cands.get("duration_delta_s"), errors="coerce").dropna().to_numpy()
    if not len(vals):
        return None
    return _hist(vals, bins, "duration delta: version − mix (s)", "candidate pairs",
                 "Duration delta of the candidates")


def plot_title_score(cands: pd.DataFrame, bins: int) -> bytes | None:
    vals = pd.to_numeric(cands.get("title_score"), errors="coerce")
    if not vals.notna().any():
        return None
    if "n_near_best" in cands:
        amb = pd.to_numeric(cands["n_near_best"], errors="coerce").fillna(1) > 1
        groups = [("unambiguous", vals[~amb].dropna().to_numpy(), "#1565c0"),
                  ("ambiguous (n_near_best > 1)", vals[amb].dropna().to_numpy(), "#ef6c00")]
        groups = [g for g in groups if len(g[1])]
    else:
        groups = None
    return _hist(vals.dropna().to_numpy(), bins, "title score (rapidfuzz, 0–100)", "candidate pairs",
                 "Title score of the candidates", range_=(0, 100), groups=groups)


def plot_ber(ver: pd.DataFrame, bins: int, config: dict) -> bytes | None:
    from matplotlib.ticker import MaxNLocator

    if "ber" not in ver or "status" not in ver:
        return None
    ber = pd.to_numeric(ver["ber"], errors="coerce")
    status = ver["status"].astype(str)
    groups = [(STATUS_LABELS.get(s, s), ber[(status == s) & ber.notna()].to_numpy(), STATUS_COLOURS.get(s, "#555"))
              for s in (*STATUSES, *sorted(set(status) - set(STATUSES)))]
    groups = [g for g in groups if len(g[1])]
    if not groups:
        return None
    png_fig = _figure()
    ax = png_fig.add_subplot()
    edges = np.histogram_bin_edges(np.concatenate([g for _, g, _ in groups]), bins=bins)
    for label, g, colour in groups:
        ax.hist(g, bins=edges, histtype="step", linewidth=2, color=colour, label=f"{label} (n={len(g):,})")
    for key, value in sorted((config or {}).items()):
        if "ber" in key.lower() and _num(value) is not None and 0 <= float(value) <= 1:
            ax.axvline(float(value), color="#424242", linestyle="--", linewidth=1)
            ax.text(float(value), 0.98, f" {key}={float(value):g}", rotation=90, va="top", fontsize=8,
                    transform=ax.get_xaxis_transform())
    ax.set_xlabel("bit error rate of the best offset (BER, 0–1; 0 = identical fingerprints)")
    ax.set_ylabel("pairs")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Chromaprint BER by verify status (errors have no BER)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _png(png_fig)


def plot_vocal_energy(man: pd.DataFrame, bins: int) -> bytes | None:
    if "vocal_energy_ratio" not in man:
        return None
    m = man.drop_duplicates("pair_id") if "pair_id" in man else man
    vals = pd.to_numeric(m["vocal_energy_ratio"], errors="coerce").dropna().to_numpy()
    if not len(vals):
        return None
    return _hist(vals, bins, "vocal energy ratio (energy of vocal target / energy of mix)", "pairs with targets",
                 "Vocal energy ratio of the targets")


# --------------------------------------------------------------------------------------------------
# Examples, report.json, HTML
# --------------------------------------------------------------------------------------------------

_EXAMPLE_COLUMNS = ["pair_id", "artist", "mix_title", "version_title", "version_kind", "genre", "duration_delta_s",
                    "title_score", "n_near_best", "ber", "offset_s", "overlap_s", "reason", "mix_audio_path",
                    "version_audio_path"]


_EXAMPLE_HEADERS = {"version_kind": "kind", "duration_delta_s": "Δ duration (s)", "title_score": "title score",
                    "n_near_best": "near best", "ber": "BER", "offset_s": "offset (s)", "overlap_s": "overlap (s)"}
_EXAMPLE_NUMERIC = {"duration_delta_s", "title_score", "n_near_best", "ber", "offset_s", "overlap_s"}


def examples(stages: dict[str, StageOutputs], per_status: int, seed: int) -> dict[str, list[dict]]:
    """Example pairs per verify status (or "candidate" when verify has not run), a seeded random draw."""
    ver = stages["verify"].tables.get("verified")
    out: dict[str, list[dict]] = {}
    if ver is not None and "status" in ver:
        groups = [(s, ver[ver["status"].astype(str) == s]) for s in (*STATUSES, *sorted(set(ver["status"].astype(str))
                                                                                         - set(STATUSES)))]
    elif stages["discover"].tables.get("candidates") is not None:
        groups = [("candidate", stages["discover"].tables["candidates"])]
    else:
        return out
    for name, df in groups:
        if not len(df) or per_status == 0:
            out[name] = []
            continue
        pick = df.sample(n=min(per_status, len(df)), random_state=seed)
        pick = pick.sort_values("pair_id") if "pair_id" in pick else pick
        cols = [c for c in _EXAMPLE_COLUMNS if c in pick]
        rows = []
        for rec in pick[cols].to_dict("records"):
            rows.append({k: _jsonable(v) for k, v in rec.items()})
        out[name] = rows
    return out


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


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;
 color:#212121;background:#fafafa;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:1.7em;margin:.2em 0 .1em} h2{border-bottom:2px solid #1565c0;padding-bottom:4px;margin-top:2em}
h3{margin-top:1.4em} .meta{color:#616161;font-size:.92em}
table{border-collapse:collapse;margin:.6em 0 1em;background:#fff;font-size:.9em}
th,td{border:1px solid #e0e0e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#e3f2fd} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#f7f9fc}
img{max-width:100%;height:auto;border:1px solid #e0e0e0;background:#fff;margin:.4em 0}
.missing{background:#fff8e1;border-left:4px solid #ffa000;padding:8px 12px}
.bad{background:#ffebee;border-left:4px solid #c62828;padding:8px 12px}
.ok{color:#2e7d32} .fail{color:#c62828;font-weight:bold}
pre{background:#263238;color:#eceff1;padding:10px 12px;overflow:auto;font-size:.82em;max-height:420px}
nav a{margin-right:14px} code{background:#eceff1;padding:0 3px}
table.examples{display:block;overflow-x:auto;max-width:100%} .examples td{max-width:280px;overflow-wrap:break-word} .examples td.n{white-space:nowrap}
th{white-space:nowrap}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return f'<p class="meta">No data to plot for {_e(alt)}.</p>'
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] = frozenset(), cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                         for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f'<table class="{_e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _missing(stage: str, so: StageOutputs) -> str:
    return (f'<p class="missing"><b>{_e(stage)} has not run</b>: none of {_e(", ".join(so.missing))} '
            f"found in OUT. To add it, {_e(_RUN_HINT[stage])}.</p>")


def _problems(so: StageOutputs) -> str:
    return "".join(f'<p class="bad">Could not read: {_e(p)}</p>' for p in so.problems)


def _fmt_cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return "" if v is None else str(v)


def _examples_html(ex: dict[str, list[dict]]) -> str:
    parts = []
    for name, rows in ex.items():
        parts.append(f"<h3>{_e(STATUS_LABELS.get(name, name.capitalize()))}: {len(rows)} example(s)</h3>")
        if not rows:
            parts.append('<p class="meta">No pairs with this status.</p>')
            continue
        cols = [c for c in _EXAMPLE_COLUMNS if c in rows[0] and not c.endswith("_audio_path")]
        body = []
        for r in rows:
            tip = f"mix: {r.get('mix_audio_path') or '?'}\nversion: {r.get('version_audio_path') or '?'}"
            cells = [f'<td title="{_e(tip)}">{_e(r.get("pair_id"))}</td>'] if "pair_id" in cols else []
            cells += [f'<td class="n">{_e(_fmt_cell(r.get(c)))}</td>' if c in _EXAMPLE_NUMERIC
                      else f"<td>{_e(_fmt_cell(r.get(c)))}</td>" for c in cols if c != "pair_id"]
            body.append("<tr>" + "".join(cells) + "</tr>")
        head = "".join(f'<th title="{_e(c)}">{_e(_EXAMPLE_HEADERS.get(c, c))}</th>' for c in cols)
        parts.append(f'<table class="examples"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
    parts.append('<p class="meta">Hover a pair_id for the audio paths of the mix and the version.</p>')
    return "".join(parts)


def _kv_rows(d: dict) -> list[list[Any]]:
    return [[k, _fmt_count(_num(v)) if _num(v) is not None else json.dumps(v, ensure_ascii=False)]
            for k, v in d.items()]


def render_html(doc: dict, plots: dict[str, bytes | None], stages: dict[str, StageOutputs],
                genre_table: pd.DataFrame) -> str:
    """The self-contained report page (inline CSS, base64 PNGs, no scripts and no external URLs)."""
    f = doc["funnel"]
    p: list[str] = []
    p.append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             '<link rel="icon" href="data:,">'
             f"<title>pairminer report: {_e(doc['out_dir'])}</title><style>{_CSS}</style></head><body><main>")
    present = [s for s, so in stages.items() if so.present]
    p.append(f"<h1>pairminer report</h1><p class=\"meta\">Outputs in <code>{_e(doc['out_dir'])}</code>; "
             f"generated {_e(doc['generated_at'])} by pairminer {_e(doc['versions'].get('pairminer'))}. "
             f"Stages found: {_e(', '.join(present) or 'none')}.</p>")
    p.append('<nav><a href="#funnel">Funnel</a><a href="#genres">Genres</a><a href="#discover">Discover</a>'
             '<a href="#verify">Verify</a><a href="#targets">Targets</a><a href="#examples">Examples</a>'
             '<a href="#provenance">Configs &amp; versions</a></nav>')

    p.append('<h2 id="funnel">Funnel</h2>')
    p.append('<p class="meta">Hours are the audio of both sides of each pair (mix + version durations); the '
             'catalog row is the whole catalog. "% of parent" is the share of the step it is indented under.</p>')
    p.append(_table(["step", "count", "% of catalog rows", "% of parent", "hours"],
                    [["\u00a0\u00a0\u00a0\u00a0" * s["level"] + s["label"], _fmt_count(s["count"]),
                      _fmt_pct(s["pct_of_catalog"]), _fmt_pct(s["pct_of_parent"]), _fmt_hours(s["hours"])]
                     for s in f], {1, 2, 3, 4}))
    for c in doc["checks"]:
        cls, mark = ("ok", "✓") if c["ok"] else ("fail", "✗")
        p.append(f'<div class="{cls}">{mark} {_e(c["name"])}: {_e(c["detail"])}</div>')
    p.append(_img(plots.get("funnel"), "funnel"))

    g = doc["genre_breakdown"]
    p.append('<h2 id="genres">Genre breakdown</h2>')
    if g["stage"] is None:
        p.append('<p class="missing">No pair table found, so there is no genre breakdown.</p>')
    else:
        p.append(f'<p class="meta">Counting {_e(_STAGE_NOUN[g["stage"]])} ({_fmt_count(g["pairs_total"])} pairs, '
                 f'{_fmt_hours(g["hours_total"])} h); genre mode <code>{_e(g["mode"])}</code>, top {g["top_n"]} '
                 f"genres, the rest folded into Other.</p>")
        p.append(_table(["#", "genre", "pairs", "% pairs", "hours", "% hours", "genres folded"],
                        [[r.rank, r.genre, _fmt_count(r.pairs), _fmt_pct(r.pct_pairs), _fmt_hours(r.hours),
                          _fmt_pct(r.pct_hours), r.n_genres] for r in genre_table.itertuples()],
                        {0, 2, 3, 4, 5, 6}))
        p.append(_img(plots.get("genre_breakdown"), "genre breakdown"))

    d = stages["discover"]
    p.append('<h2 id="discover">Discover</h2>')
    if not d.present:
        p.append(_missing("discover", d))
    else:
        p.append(_problems(d))
        by_reason = d.counts.get("rejected_by_reason")
        if not isinstance(by_reason, dict) and d.tables.get("rejects") is not None:
            by_reason = d.tables["rejects"]["reason_code"].value_counts().to_dict()
        if by_reason:
            p.append("<h3>Rejected rows by reason</h3>")
            p.append(_table(["reason_code", "rows"], sorted(([k, _fmt_count(v)] for k, v in by_reason.items()),
                                                             key=lambda r: r[0]), {1}))
        p.append("<h3>Counts from discover-report.json</h3>")
        p.append(_table(["count", "value"], _kv_rows(d.counts), {1}) if d.counts else
                 '<p class="meta">discover-report.json not found; counts above come from the Parquet tables.</p>')
        p.append(_img(plots.get("duration_delta"), "duration delta distribution"))
        p.append(_img(plots.get("title_score"), "title score distribution"))

    v = stages["verify"]
    p.append('<h2 id="verify">Verify</h2>')
    if not v.present:
        p.append(_missing("verify", v))
    else:
        p.append(_problems(v))
        errs = v.counts.get("errors_by_reason")
        if not isinstance(errs, dict) and v.tables.get("verified") is not None and "reason" in v.tables["verified"]:
            ver = v.tables["verified"]
            errs = ver.loc[ver["status"].astype(str) == "error", "reason"].fillna("?").value_counts().to_dict()
        if errs:
            p.append("<h3>Errors by reason</h3>")
            p.append(_table(["reason", "pairs"], [[k, _fmt_count(n)] for k, n in errs.items()], {1}))
        extra = {k: v.report[k] for k in ("metadata_confusion_share", "realtime_factor") if k in v.report}
        if extra:
            p.append(_table(["figure", "value"], [[k, json.dumps(x)] for k, x in extra.items()], {1}))
        p.append(_img(plots.get("ber_by_status"), "BER histogram by status"))

    t = stages["targets"]
    p.append('<h2 id="targets">Targets</h2>')
    if not t.present:
        p.append(_missing("targets", t))
    else:
        p.append(_problems(t))
        if t.counts:
            p.append(_table(["count", "value"], _kv_rows(t.counts), {1}))
        tx = {k: t.report[k] for k in ("hours", "frames", "bytes", "realtime_factor") if k in t.report}
        if tx:
            p.append(_table(["figure", "value"], [[k, json.dumps(x)] for k, x in tx.items()], {1}))
        fails = t.report.get("failures")
        if isinstance(fails, list) and fails:
            p.append(f"<h3>Failures ({len(fails)})</h3><pre>{_e(json.dumps(fails[:50], indent=1))}</pre>")
        p.append(_img(plots.get("vocal_energy_ratio"), "vocal energy ratio distribution"))

    p.append('<h2 id="examples">Example pairs</h2>')
    p.append('<p class="meta">A seeded random draw per status, to eyeball mistakes.</p>' if doc["examples"]
             else '<p class="missing">No pair table found.</p>')
    p.append(_examples_html(doc["examples"]))

    p.append('<h2 id="provenance">Configs and versions</h2>')
    for stage, s in doc["stages"].items():
        if not s["present"]:
            continue
        p.append(f"<h3>{_e(stage)}</h3>")
        for part in ("config", "versions", "timings_s"):
            if s.get(part):
                p.append(f"<p><b>{_e(part)}</b></p><pre>{_e(json.dumps(s[part], indent=2, ensure_ascii=False))}</pre>")
        if not any(s.get(x) for x in ("config", "versions")):
            p.append('<p class="meta">No JSON report found for this stage, so its config is unknown.</p>')
    p.append(f"<h3>report</h3><pre>{_e(json.dumps({'config': doc['config'], 'versions': doc['versions']}, indent=2))}"
             "</pre>")
    p.append("</main></body></html>")
    return "".join(p)


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------


def run_report(
    out_dir: str,
    report_dir: str,
    config: ReportConfig | None = None,
    *,
    progress: bool = True,
) -> ReportResult:
    """Write the audit of `out_dir` into `report_dir`.

    Args:
        out_dir: The folder the pipeline stages wrote (local path or fsspec URL).
        report_dir: Where report.html, report.json, genre_breakdown.csv/.parquet and the PNGs go.
        config: ReportConfig (defaults when None).
        progress: Log each step at INFO level (the report is fast; there is no progress bar).

    Returns:
        ReportResult with the output paths and the numbers.

    Raises:
        InputError: `out_dir` does not exist or holds no pairminer output at all.
    """
    config = config or ReportConfig()
    timings = Timings()
    out_dir = str(out_dir)
    if not pio.exists(out_dir):
        raise InputError(f"{out_dir} does not exist; give the -o folder of `pairminer discover`")
    with timings.step("load"):
        stages = load_outputs(out_dir)
    if not any(so.present for so in stages.values()):
        probs = [p for so in stages.values() for p in so.problems]
        why = f" ({'; '.join(probs)})" if probs else ""
        raise InputError(f"{out_dir} holds no readable pairminer output (candidates.parquet, verified.parquet, "
                         f"targets/manifest.parquet or their JSON reports){why}; run `pairminer discover CATALOG "
                         f"-o {out_dir}` first or point at the right folder")
    say = log.info if progress else log.debug
    say("report: stages found in %s: %s", out_dir, ", ".join(s for s, so in stages.items() if so.present))

    with timings.step("numbers"):
        funnel = build_funnel(stages)
        checks = funnel_checks(funnel)
        for c in checks:
            if not c["ok"]:
                log.warning("counts do not add up: %s (%s)", c["name"], c["detail"])
        gstage, gpairs = final_pairs(stages)
        gtable = genre_breakdown(gpairs if gpairs is not None else pd.DataFrame({"genre": [], "pair_s": []}),
                                 top_n=config.top_n, mode=config.genre_mode,
                                 separators=tuple(config.genre_separators), stage=gstage or "candidates")
        ex = examples(stages, config.examples_per_status, config.example_seed)

    with timings.step("plots"):
        cands = stages["discover"].tables.get("candidates")
        ver = stages["verify"].tables.get("verified")
        man = stages["targets"].tables.get("manifest")
        vconf = stages["verify"].report.get("config")
        plots = {
            "funnel": plot_funnel(funnel),
            "genre_breakdown": plot_genres(gtable, gstage) if gstage else None,
            "duration_delta": plot_duration_delta(cands, config.hist_bins) if cands is not None else None,
            "title_score": plot_title_score(cands, config.hist_bins) if cands is not None else None,
            "ber_by_status": plot_ber(ver, config.hist_bins, vconf if isinstance(vconf, dict) else {})
            if ver is not None else None,
            "vocal_energy_ratio": plot_vocal_energy(man, config.hist_bins) if man is not None else None,
        }

    with timings.step("write"):
        pio.ensure_dir(report_dir)
        paths = {name: pio.join(report_dir, f"{name}.png") for name, png in plots.items() if png}
        for name, path in paths.items():
            pio.write_bytes(path, plots[name])
        csv_path = pio.join(report_dir, "genre_breakdown.csv")
        pq_path = pio.join(report_dir, "genre_breakdown.parquet")
        pio.write_table(pq_path, gtable, "genre-breakdown")
        pio.write_bytes(csv_path, gtable.to_csv(index=False, float_format="%.6g").encode("utf-8"))
        doc = {
            "stage": "report",
            "out_dir": out_dir,
            "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "config": config.to_dict(),
            "versions": versions(),
            "stages": {s: _stage_summary(so) for s, so in stages.items()},
            "funnel": funnel,
            "checks": checks,
            "genre_breakdown": {
                "stage": gstage,
                "mode": config.genre_mode,
                "top_n": config.top_n,
                "pairs_total": float(gtable["pairs"].sum()),
                "hours_total": float(gtable["hours"].sum()),
                "rows": gtable.drop(columns=["stage"]).to_dict("records"),
            },
            "examples": ex,
            "plots": sorted(paths),
        }
        html_path = pio.join(report_dir, "report.html")
        json_path = pio.join(report_dir, "report.json")
        pio.write_bytes(html_path, render_html(doc, plots, stages, gtable).encode("utf-8"))
        doc["timings_s"] = timings.to_dict()
        pio.write_json(json_path, doc, "report")
    say("report: wrote %s (%.1f s)", html_path, timings.total_s)
    return ReportResult(
        report_dir=str(report_dir),
        html_path=html_path,
        json_path=json_path,
        genre_csv_path=csv_path,
        genre_parquet_path=pq_path,
        plot_paths=paths,
        stages_present=tuple(s for s, so in stages.items() if so.present),
        funnel=funnel,
        genre_table=gtable,
        genre_stage=gstage,
    )
