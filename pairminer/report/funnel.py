"""The funnel: catalog rows -> usable rows -> versions -> candidates -> verify statuses -> targets."""

from __future__ import annotations

import pandas as pd

from .load import (STATUS_LABELS, STATUSES, StageOutputs, _fmt_count, _fmt_hours, _fmt_pct, _hours, _int,
                   _jsonable, _num, _text_table, pair_seconds, targets_pairs)


def _step(key, label, count, hours=None, *, parent=None, level=0, source="") -> dict:
    return {"key": key, "label": label, "count": count, "hours": hours, "parent": parent, "level": level,
            "source": source, "pct_of_catalog": None, "pct_of_parent": None}


def _discover_steps(stages: dict[str, StageOutputs], steps: list[dict]) -> None:
    """Catalog rows, rejected, usable, versions (by kind), near misses (by reason), candidates."""
    d = stages["discover"]
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
        n_near = _int(dc.get("near_misses"))
        if n_near is not None:
            steps.append(_step("near_misses", "Versions without a pair (near misses)", n_near, parent="versions",
                               level=1, source=rep))
            reasons = dc.get("near_misses_by_reason") if isinstance(dc.get("near_misses_by_reason"), dict) else {}
            for reason, k in reasons.items():
                steps.append(_step(f"near_misses:{reason}", f"Near misses: {reason.replace('_', ' ')}", _int(k),
                                   parent="near_misses", level=2, source=rep))
        steps.append(_step("candidates", "Candidate pairs", n_cand, h_cand, parent="versions", level=1, source=src))


def _verify_steps(stages: dict[str, StageOutputs], steps: list[dict]) -> None:
    """One step per verify status, shares of the candidates."""
    d, v = stages["discover"], stages["verify"]
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


def _targets_steps(stages: dict[str, StageOutputs], steps: list[dict]) -> None:
    """Pairs with targets, a share of the verified pairs."""
    d, v, t = stages["discover"], stages["verify"], stages["targets"]
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


FUNNEL_STEPS = {"discover": _discover_steps, "verify": _verify_steps, "targets": _targets_steps}
"""Stage -> the function that appends its funnel steps. A stage of the registry (pairminer.stages)
may instead name its own as ``extra={"report_funnel": "module:function"}`` in its StageSpec."""


def funnel_contributors() -> list:
    """The funnel-step functions of the registry's stages, in pipeline order."""
    import importlib

    from .. import stages as registry

    out = []
    for spec in registry.STAGES:
        ref = spec.extra.get("report_funnel") if isinstance(spec.extra, dict) else None
        if ref:
            module, _, attr = ref.partition(":")
            fn = getattr(importlib.import_module(module), attr)
        else:
            fn = FUNNEL_STEPS.get(spec.name)
        if fn is not None:
            out.append(fn)
    return out


def build_funnel(stages: dict[str, StageOutputs]) -> list[dict]:
    """The funnel from catalog rows to pairs with targets.

    Returns:
        A list of steps, each a dict with key, label, count (int or None when unknown), hours
        (mix + version hours of the pairs at that step; catalog hours for the catalog row; None
        where the outputs do not say), parent (key of the step it is a share of), level (indent),
        source (the file the count came from), pct_of_catalog and pct_of_parent (0-100 or None).
    """
    steps: list[dict] = []
    for contribute in funnel_contributors():
        contribute(stages, steps)
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
    if "near_misses" in by_key:
        check("candidates + near misses = versions", ["candidates", "near_misses"], by_key.get("versions"))
        check("near misses by reason sum to near misses", [k for k in by_key if k.startswith("near_misses:")],
              by_key.get("near_misses"))
    statuses = [s["key"] for s in funnel if s["parent"] == "candidates" and s["level"] == 2]
    if "candidates" in by_key:
        check("verify statuses sum to candidates", statuses, by_key.get("candidates"))
    return out


def format_funnel(funnel: list[dict]) -> str:
    """The funnel as a plain-text table (step, count, % of catalog, % of previous step, hours)."""
    rows = [["  " * s["level"] + s["label"], _fmt_count(s["count"]), _fmt_pct(s["pct_of_catalog"]),
             _fmt_pct(s["pct_of_parent"]), _fmt_hours(s["hours"])] for s in funnel]
    return _text_table(["step", "count", "% catalog", "% of parent", "hours"], rows, {1, 2, 3, 4})


# --------------------------------------------------------------------------------------------------
# Near misses: what a wider duration window or a lower title score would add
# --------------------------------------------------------------------------------------------------

NEAR_MISS_REASONS = {
    "delta_over_window": "duration delta at or over the window (--max-delta)",
    "score_below_min": "title score under --min-score",
    "recording_qualifier_mismatch": "titles name different recordings (live, remix, demo ...)",
    "block_capped": "not compared with every original: its window held more than --max-block-comparisons",
}
_WINDOW_FACTORS = (1.5, 2.0, 3.0, 5.0)
_SCORE_STEPS = (2.0, 5.0, 10.0, 20.0)


def near_miss_summary(stages: dict[str, StageOutputs], rows_per_reason: int = 20) -> dict:
    """What near_misses.parquet says a looser discover would add.

    Returns:
        A dict: present (bool), note, total, by_reason (reason -> count), window (current max_delta_s
        and, per wider window, the pairs it would add), score (current min_score and, per lower
        threshold, the pairs it would add), rows (reason -> up to `rows_per_reason` example rows:
        the nearest misses first).
    """
    d = stages["discover"]
    nm = d.tables.get("near_misses")
    if nm is None:
        why = ("discover has not run" if not d.present else
               "near_misses.parquet is not in OUT (written by newer versions of discover; rerun discover to get it)")
        return {"present": False, "note": why, "total": 0, "by_reason": {}, "window": None, "score": None,
                "rows": {}}
    conf = d.report.get("config") if isinstance(d.report.get("config"), dict) else {}
    reason = nm["reason"].astype(str) if "reason" in nm else pd.Series("?", index=nm.index)
    out = {"present": True, "note": "", "total": int(len(nm)),
           "by_reason": {k: int(v) for k, v in reason.value_counts().sort_index().items()}}
    delta = pd.to_numeric(nm.get("delta_s"), errors="coerce").abs() if "delta_s" in nm else pd.Series(dtype=float)
    max_delta = _num(conf.get("max_delta", conf.get("max_delta_s")))
    if max_delta is not None and len(delta):
        # only misses that are over the window: a wider window adds nothing for the others
        counts = d.report.get("counts") if isinstance(d.report.get("counts"), dict) else {}
        window = _num(counts.get("window_s")) or max_delta
        ow = pd.to_numeric(nm["over_window_s"], errors="coerce") if "over_window_s" in nm else delta * 0
        real = (reason == "delta_over_window") & ((delta >= window) | (ow > 0))
        over = delta[real]
        out["window"] = {"max_delta_s": max_delta, "wider": [
            {"max_delta_s": max_delta * f, "pairs_added": int((over < max_delta * f).sum())} for f in _WINDOW_FACTORS]}
    else:
        out["window"] = None
    score = pd.to_numeric(nm.get("score"), errors="coerce") if "score" in nm else pd.Series(dtype=float)
    min_score = _num(conf.get("min_score", conf.get("min_title_score")))
    if min_score is not None and len(score):
        low = score[reason == "score_below_min"]
        out["score"] = {"min_score": min_score, "lower": [
            {"min_score": min_score - s, "pairs_added": int((low >= min_score - s).sum())} for s in _SCORE_STEPS]}
    else:
        out["score"] = None
    rows = {}
    cols = [c for c in ("version_track_id", "artist", "version_title", "version_kind", "mix_track_id", "mix_title",
                        "delta_s", "score") if c in nm]
    for r in out["by_reason"]:
        part = nm[reason == r]
        if r == "delta_over_window" and len(delta):
            part = part.assign(_k=delta[part.index]).sort_values(["_k", "version_track_id"])
        elif r == "score_below_min" and len(score):
            part = part.assign(_k=-score[part.index]).sort_values(["_k", "version_track_id"])
        rows[r] = [{k: _jsonable(v) for k, v in rec.items()} for rec in part[cols].head(rows_per_reason).to_dict("records")]
    out["rows"] = rows
    return out
