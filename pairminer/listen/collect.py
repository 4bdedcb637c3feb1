"""Aggregate raters' files: screening, per-system statistics, paired comparisons, a plot.

    collect_ratings(["r1.json", "r2.csv"], "test/key.json", "results", CollectConfig())

Writes `results/listen-results.json` (schema listen-results), `results/ratings.csv` (every rating of
every usable file, unblinded, with `kept` saying whether its rater passed the screening) and
`results/listen-results.png`.

Screening (after ITU-R BS.1534-3's post-screening): a rater whose hidden-reference ratings are below
`ref_min` for more than `screen_share` of the trials that had one, or whose anchor ratings are above
`anchor_max` for more than that share, is dropped. Statistics use the kept raters only.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import storage as pio
from ..errors import InputError
from . import KEY_FORMAT
from .config import CollectConfig
from .ratings import read_all

log = logging.getLogger(__name__)
CONDITION = {"hidden_reference": "hidden reference", "anchor": "anchor"}
TEST_NAME = ("Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided, zero differences dropped) on ratings "
             "paired by rater and trial; p-values Holm-corrected within each source")


@dataclass
class CollectResult:
    doc: dict
    json_path: str
    csv_path: str
    png_path: str | None
    problems: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        d = self.doc
        c = d["counts"]
        lines = [f"listen --collect: {c['files']} file(s) = {c['files_used']} used + {c['files_left_out']} left out; "
                 f"{c['raters']} rater(s) = {c['raters_kept']} kept + {c['raters_screened']} screened out; "
                 f"{c['ratings_kept']} rating(s) aggregated"]
        for p in self.problems:
            lines.append(f"left out {p['file']}: {p['problem']}")
        for r in d["raters"]:
            if not r["kept"]:
                lines.append(f"screened out rater {r['rater']}: {r['reason']}")
        lines.append(f"{'source':<13}{'condition':<22}{'n':>5}{'mean':>7}{'median':>8}   95% CI (bootstrap)")
        for s in d["summary"]:
            ci = f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}]" if s["n"] else ""
            mean = f"{s['mean']:7.2f}{s['median']:8.1f}" if s["n"] else f"{'-':>7}{'-':>8}"
            lines.append(f"{s['source']:<13}{s['condition'][:21]:<22}{s['n']:>5}{mean}   {ci}")
        for p in d["comparisons"]:
            pv = "n/a" if p["p_holm"] is None else f"{p['p_holm']:.3g}"
            lines.append(f"{p['source']}: {p['a']} vs {p['b']}: median difference {p['median_diff']:+.1f} over "
                         f"{p['n_pairs']} pair(s), p (Holm) = {pv}")
        lines.append(f"-> {self.json_path}, {self.csv_path}" + (f", {self.png_path}" if self.png_path else ""))
        return "\n".join(lines)


def load_key(path: str) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "key.json"
    if not p.is_file():
        raise InputError(f"{p} not found: --test takes the folder `pairminer listen` wrote (with key.json)")
    try:
        key = pio.read_json(str(p))
    except Exception as exc:
        raise InputError(f"{p} is not a readable key.json ({exc})") from None
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT:
        raise InputError(f"{p} is not the key.json of a `pairminer listen` test")
    return key


def bootstrap_ci(x: np.ndarray, n_boot: int, rng: np.random.Generator, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    if len(x) == 0:
        return float("nan"), float("nan")
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    means = x[idx].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def screen(df: pd.DataFrame, cfg: CollectConfig) -> list[dict]:
    """One record per rater: the control ratings seen, and kept or dropped with the reason."""
    out = []
    for rater, g in df.groupby("rater", sort=True):
        ref, anc = g[g["kind"] == "hidden_reference"], g[g["kind"] == "anchor"]
        low, high = int((ref["rating"] < cfg.ref_min).sum()), int((anc["rating"] > cfg.anchor_max).sum())
        why = []
        if len(ref) and low / len(ref) > cfg.screen_share:
            why.append(f"rated the hidden reference below {cfg.ref_min} in {low} of {len(ref)} trial(s)")
        if len(anc) and high / len(anc) > cfg.screen_share:
            why.append(f"rated the anchor above {cfg.anchor_max} in {high} of {len(anc)} trial(s)")
        out.append({"rater": str(rater), "file": str(g["file"].iloc[0]), "ratings": int(len(g)),
                    "hidden_reference_ratings": int(len(ref)), "hidden_reference_low": low,
                    "anchor_ratings": int(len(anc)), "anchor_high": high, "kept": not why,
                    "reason": "; ".join(why) if why else None})
    return out


def _holm(p: list[float | None]) -> list[float | None]:
    idx = [i for i, v in enumerate(p) if v is not None]
    order = sorted(idx, key=lambda i: p[i])
    out: list[float | None] = [None] * len(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out


def compare(kept: pd.DataFrame) -> list[dict]:
    """Paired comparisons between systems, per source (Wilcoxon signed-rank, Holm)."""
    from scipy.stats import wilcoxon

    out = []
    sysr = kept[kept["kind"] == "system"]
    for source, g in sysr.groupby("source", sort=True):
        wide = g.pivot_table(index=["rater", "trial"], columns="condition", values="rating", aggfunc="first")
        rows = []
        for a, b in itertools.combinations(sorted(wide.columns), 2):
            pair = wide[[a, b]].dropna()
            d = (pair[a] - pair[b]).to_numpy(dtype=float)
            p, note = None, None
            if np.count_nonzero(d) < 1:
                note = "no pair differs" if len(d) else "no trial rated both"
            else:
                p = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
            rows.append({"source": str(source), "a": str(a), "b": str(b), "n_pairs": int(len(d)),
                         "n_nonzero": int(np.count_nonzero(d)), "mean_diff": float(d.mean()) if len(d) else 0.0,
                         "median_diff": float(np.median(d)) if len(d) else 0.0, "p": p, "note": note})
        for r, ph in zip(rows, _holm([r["p"] for r in rows])):
            r["p_holm"] = ph
        out += rows
    return out


def collect_ratings(paths: list[str], test: str, out_dir: str, config: CollectConfig | None = None) -> CollectResult:
    """Aggregate the ratings files `paths` of the test in `test` (its folder or key.json) into `out_dir`."""
    from .plot import plot_results

    cfg = config or CollectConfig()
    key = load_key(test)
    if not paths:
        raise InputError("give the raters' files to --collect (the JSON or CSV the page downloads)")
    files, problems = read_all(list(paths), key)
    where = {s["id"]: (t["trial"], t["track"], t["source"], s["kind"], s["system"])
             for t in key["trials"] for s in t["stimuli"]}
    rows = [{"file": f.path, "rater": f.rater, "trial": r["trial"], "track": where[r["stimulus"]][1],
             "source": where[r["stimulus"]][2], "stimulus": r["stimulus"], "kind": where[r["stimulus"]][3],
             "condition": where[r["stimulus"]][4] or CONDITION[where[r["stimulus"]][3]], "rating": r["rating"],
             "plays": r["plays"]} for f in files for r in f.ratings]
    cols = ["file", "rater", "trial", "track", "source", "stimulus", "kind", "condition", "rating", "plays"]
    df = pd.DataFrame(rows, columns=cols)
    raters = screen(df, cfg) if len(df) else []
    kept_ids = {r["rater"] for r in raters if r["kept"]}
    df["kept"] = df["rater"].isin(kept_ids)
    kept = df[df["kept"]]
    rng = np.random.default_rng([cfg.seed, 1534])
    summary = []
    conds = [*key["systems"], "hidden reference", "anchor"]
    for source in key["config"]["sources"]:
        for cond in conds:
            if not any(t["source"] == source for t in key["trials"]):
                continue
            x = kept[(kept["source"] == source) & (kept["condition"] == cond)]["rating"].to_numpy(dtype=float)
            if not len(x) and cond in CONDITION.values():
                continue
            lo, hi = bootstrap_ci(x, cfg.bootstrap, rng)
            summary.append({"source": source, "condition": cond,
                            "kind": next((k for k, v in CONDITION.items() if v == cond), "system"),
                            "n": int(len(x)), "mean": float(x.mean()) if len(x) else None,
                            "median": float(np.median(x)) if len(x) else None,
                            "ci_low": lo if len(x) else None, "ci_high": hi if len(x) else None})
    comparisons = compare(kept) if len(kept) else []
    counts = {"files": len(paths), "files_used": len(files), "files_left_out": len(problems),
              "raters": len(raters), "raters_kept": len(kept_ids), "raters_screened": len(raters) - len(kept_ids),
              "ratings": int(len(df)), "ratings_kept": int(len(kept)), "ratings_screened": int(len(df) - len(kept))}
    doc = {"stage": "listen-collect", "test_id": key["test_id"], "title": key.get("title", ""),
           "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "config": {"ref_min": cfg.ref_min, "anchor_max": cfg.anchor_max, "screen_share": cfg.screen_share,
                      "bootstrap": cfg.bootstrap, "seed": cfg.seed},
           "scale": "1-7 (Jansson et al., ISMIR 2017)", "test": TEST_NAME,
           "interval": f"percentile bootstrap of the mean, 95%, {cfg.bootstrap} resamples, seed {cfg.seed}",
           "counts": counts, "files_left_out": problems, "raters": raters, "summary": summary,
           "comparisons": comparisons}
    pio.ensure_dir(out_dir)
    json_path, csv_path = str(Path(out_dir) / "listen-results.json"), str(Path(out_dir) / "ratings.csv")
    png = plot_results(doc) if any(s["n"] for s in summary) else None
    png_path = str(Path(out_dir) / "listen-results.png") if png else None
    if png:
        pio.write_bytes(png_path, png)
        doc["plot"] = "listen-results.png"
    pio.write_bytes(csv_path, df.to_csv(index=False).encode("utf-8"))
    pio.write_json(json_path, doc, "listen-results")
    return CollectResult(doc=doc, json_path=json_path, csv_path=csv_path, png_path=png_path, problems=problems)
