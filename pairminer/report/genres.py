"""The genre breakdown: pairs and hours per genre (top N, Other, Unknown), normalised genre keys."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .load import StageOutputs, _fmt_count, _fmt_hours, _fmt_pct, _text_table, pair_seconds, targets_pairs

GENRE_COLUMNS = ["rank", "genre", "genre_key", "pairs", "pct_pairs", "hours", "pct_hours", "n_genres", "stage"]
OTHER_KEY, UNKNOWN_KEY = "other", "unknown"

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


def format_genre_table(table: pd.DataFrame) -> str:
    """The genre breakdown as a plain-text table (genre, pairs, % pairs, hours, % hours)."""
    rows = [[r.genre, _fmt_count(r.pairs), _fmt_pct(r.pct_pairs), _fmt_hours(r.hours), _fmt_pct(r.pct_hours)]
            for r in table.itertuples()]
    return _text_table(["genre", "pairs", "% pairs", "hours", "% hours"], rows, {1, 2, 3, 4})


def stage_pairs(stages: dict[str, StageOutputs]) -> dict[str, pd.DataFrame]:
    """Pairs (genre, pair_s) of every stage present: candidates, verified (status verified), targets."""
    out = {}
    cands = stages["discover"].tables.get("candidates")
    if cands is not None:
        out["candidates"] = pd.DataFrame({"genre": cands["genre"] if "genre" in cands else None,
                                          "pair_s": pair_seconds(cands)})
    ver = stages["verify"].tables.get("verified")
    if ver is not None and "status" in ver:
        ok = ver[ver["status"].astype(str) == "verified"]
        out["verified"] = pd.DataFrame({"genre": ok["genre"] if "genre" in ok else None, "pair_s": pair_seconds(ok)})
    tp = targets_pairs(stages)
    if tp is not None:
        out["targets"] = tp[["genre", "pair_s"]]
    return out


def genre_by_stage(stages: dict[str, StageOutputs], *, top_n: int, mode: str,
                   separators: tuple[str, ...]) -> pd.DataFrame:
    """Pairs and hours per genre at every stage present, on the genres of the last stage.

    Returns:
        One row per genre of the last stage's table (its top_n, Other, Unknown), with columns genre,
        genre_key and, per stage present, ``<stage>_pairs`` and ``<stage>_hours`` (a genre folded into
        Other at the last stage is counted under Other at the earlier ones too).
    """
    per = stage_pairs(stages)
    if not per:
        return pd.DataFrame(columns=["genre", "genre_key"])
    last = list(per)[-1]
    base = genre_breakdown(per[last], top_n=top_n, mode=mode, separators=separators, stage=last)
    keep = set(base["genre_key"]) - {OTHER_KEY, UNKNOWN_KEY}
    table = base[["genre", "genre_key"]].copy()
    for stage, pairs in per.items():
        full = genre_breakdown(pairs, top_n=10**9, mode=mode, separators=separators, stage=stage)
        key = full["genre_key"].where(full["genre_key"].isin(keep | {UNKNOWN_KEY}), OTHER_KEY)
        agg = full.assign(genre_key=key).groupby("genre_key")[["pairs", "hours"]].sum()
        table[f"{stage}_pairs"] = table["genre_key"].map(agg["pairs"]).fillna(0.0).to_numpy()
        table[f"{stage}_hours"] = table["genre_key"].map(agg["hours"]).fillna(0.0).to_numpy()
        missing = set(agg.index) - set(table["genre_key"])
        if missing:  # e.g. Other exists earlier but not at the last stage
            extra = pd.DataFrame({"genre": ["Other" if k == OTHER_KEY else "Unknown" for k in sorted(missing)],
                                  "genre_key": sorted(missing)})
            for col in table.columns[2:]:
                extra[col] = 0.0
            extra[f"{stage}_pairs"] = [agg.loc[k, "pairs"] for k in sorted(missing)]
            extra[f"{stage}_hours"] = [agg.loc[k, "hours"] for k in sorted(missing)]
            table = pd.concat([table, extra], ignore_index=True)
    return table.fillna(0.0)


def split_sizes(stages: dict[str, StageOutputs]) -> dict:
    """Sizes of the artist-disjoint train/valid/test splits of the targets.

    Returns:
        {"rows": [{split, pairs, hours, artists}], "artists_in_several_splits": n (0 when the split is
        artist-disjoint), "present": bool}.
    """
    man = stages["targets"].tables.get("manifest")
    if man is None or "split" not in man or "pair_id" not in man:
        return {"present": False, "rows": [], "artists_in_several_splits": None}
    first = man.drop_duplicates("pair_id", keep="first")
    tp = targets_pairs(stages).set_index("pair_id")["pair_s"]
    secs = first["pair_id"].astype(str).map(tp)
    akey = first["artist_key"] if "artist_key" in first else first.get("artist", pd.Series("", index=first.index))
    rows = []
    order = {"train": 0, "valid": 1, "test": 2}
    for split in sorted(first["split"].astype(str).unique(), key=lambda s: (order.get(s, 9), s)):
        m = (first["split"].astype(str) == split).to_numpy()
        rows.append({"split": split, "pairs": int(m.sum()), "hours": float(secs[m].fillna(0).sum() / 3600.0),
                     "artists": int(akey[m].nunique())})
    several = int((first.assign(_a=akey).groupby("_a")["split"].nunique() > 1).sum())
    return {"present": True, "rows": rows, "artists_in_several_splits": several}
