"""The self-contained report page: inline CSS, base64 images and audio, no scripts and no external URLs."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

import pandas as pd

from .clips import _EXAMPLE_COLUMNS, CLIP_LABELS, LISTEN_GROUPS, LISTEN_LABELS, Listening
from .funnel import NEAR_MISS_REASONS
from .load import RUN_HINT, STATUS_LABELS, StageOutputs, _fmt_count, _fmt_hours, _fmt_pct, _num
from .plots import _STAGE_NOUN

_EXAMPLE_HEADERS = {"version_kind": "kind", "duration_delta_s": "Δ duration (s)", "title_score": "title score",
                    "n_near_best": "near best", "ber": "BER", "offset_s": "offset (s)", "overlap_s": "overlap (s)"}
_EXAMPLE_NUMERIC = {"duration_delta_s", "title_score", "n_near_best", "ber", "offset_s", "overlap_s"}


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
.pair{background:#fff;border:1px solid #e0e0e0;padding:8px 12px;margin:.8em 0} .pair p{margin:.2em 0}
.clips{display:flex;flex-wrap:wrap;gap:10px} figure.clip{margin:4px 0} figcaption{font-size:.85em;color:#424242}
audio{width:260px;height:36px} img.spec{max-width:100%}
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
            f"found in OUT. To add it, {_e(RUN_HINT[stage])}.</p>")


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


def _genre_by_stage_html(rows: list[dict]) -> str:
    if not rows:
        return ""
    stages = [c[: -len("_pairs")] for c in rows[0] if c.endswith("_pairs")]
    if len(stages) < 2:
        return ""
    head = ["genre"] + [f"{_STAGE_NOUN.get(st, st)}: {x}" for st in stages for x in ("pairs", "hours")]
    body = [[r["genre"]] + [f(r[f"{st}_{x}"]) for st in stages for x, f in (("pairs", _fmt_count),
                                                                            ("hours", _fmt_hours))] for r in rows]
    total = ["Total"] + [f(sum(r[f"{st}_{x}"] for r in rows)) for st in stages for x, f in (("pairs", _fmt_count),
                                                                                           ("hours", _fmt_hours))]
    return ('<h3>Pairs and hours per genre at each stage</h3><p class="meta">Genres as in the table above; hours are '
            'mix + version audio of the pairs.</p>' + _table(head, body + [total], set(range(1, len(head)))))


def _splits_html(sp: dict) -> str:
    if not sp.get("present"):
        return ""
    rows = [[r["split"], _fmt_count(r["pairs"]), _fmt_hours(r["hours"]), _fmt_count(r["artists"])]
            for r in sp["rows"]]
    n = sp["artists_in_several_splits"]
    check = ('<div class="ok">✓ artist-disjoint: no artist is in two splits</div>' if n == 0 else
             f'<div class="fail">✗ {n} artist(s) are in more than one split</div>')
    return "<h3>Splits (assigned per artist)</h3>" + _table(["split", "pairs", "hours", "artists"], rows,
                                                              {1, 2, 3}) + check


def _audio(blob: bytes, mime: str, label: str) -> str:
    b64 = base64.b64encode(blob).decode("ascii")
    return (f'<figure class="clip"><figcaption>{_e(label)}</figcaption>'
            f'<audio controls preload="metadata" src="data:{_e(mime)};base64,{b64}"></audio></figure>')


def _listening_html(lst: Listening | None) -> str:
    if lst is None:
        return '<p class="missing">Listening was not built.</p>'
    p = []
    if lst.note:
        p.append(f'<p class="{"meta" if lst.available else "missing"}">{_e(lst.note)}</p>')
    if not lst.pairs:
        return "".join(p)
    p.append('<p class="meta">Each clip is cut from the same window of the mix\'s timeline. The version is shifted '
             'by the alignment offset and scaled by the gain; the targets are STFT magnitudes resynthesised with '
             'the mix\'s phase. All clips of a pair share one loudness factor.</p>')
    for group in LISTEN_GROUPS:
        rows = [r for r in lst.pairs if r["group"] == group]
        if not rows:
            continue
        p.append(f"<h3>{_e(LISTEN_LABELS[group])}</h3>")
        for r in rows:
            pid = r["pair_id"]
            facts = [f"status {r.get('status')}"]
            if r.get("ber") is not None:
                facts.append(f"BER {r['ber']:.3f}")
            if r.get("ber_margin") is not None:
                facts.append(f"margin {r['ber_margin']:.3f}")
            if r.get("align_offset_s") is not None:
                facts.append(f"offset {r['align_offset_s']:+.3f} s, gain {r['align_gain_db']:+.1f} dB")
            if r.get("clip_start_s") is not None:
                facts.append(f"clip {r['clip_start_s']:.1f}–{r['clip_start_s'] + r['clip_s']:.1f} s")
            p.append(f'<div class="pair" id="pair-{_e(pid)}"><p><b>{_e(r.get("artist"))}</b>: {_e(r.get("mix_title"))}'
                     f' / {_e(r.get("version_title"))} <code>{_e(pid)}</code></p>'
                     f'<p class="meta">{_e("; ".join(facts))}</p>')
            if r.get("reason"):
                p.append(f'<p class="meta">verify: {_e(r["reason"])}</p>')
            if r.get("error"):
                p.append(f'<p class="bad">No clips: {_e(r["error"])}</p></div>')
                continue
            blobs = lst.blobs.get(pid, {})
            p.append('<div class="clips">' + "".join(_audio(blobs[c], lst.mime, CLIP_LABELS.get(c, c))
                                                     for c in CLIP_LABELS if c in blobs) + "</div>")
            if not r.get("from_targets"):
                p.append('<p class="meta">No targets for this pair: the pictures show what targets would make.</p>')
            png = lst.pictures.get(pid)
            if png:
                p.append(f'<img class="spec" alt="spectrograms of {_e(pid)}" '
                         f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">')
            p.append("</div>")
    return "".join(p)


def _near_misses_html(nm: dict) -> str:
    if not nm.get("present"):
        return f'<p class="missing">No near misses to show: {_e(nm.get("note"))}.</p>'
    p = [f'<p class="meta">{_fmt_count(nm["total"])} version(s) that discover did not pair, with the nearest '
         "original it found and why it stopped.</p>"]
    p.append(_table(["reason", "what it means", "versions"],
                    [[k, NEAR_MISS_REASONS.get(k, ""), _fmt_count(v)] for k, v in nm["by_reason"].items()], {2}))
    if nm.get("window"):
        w = nm["window"]
        p.append(f"<h3>A wider duration window (now {w['max_delta_s']:g} s)</h3>")
        p.append(_table(["--max-delta (s)", "pairs it would add"],
                        [[f"{x['max_delta_s']:g}", _fmt_count(x["pairs_added"])] for x in w["wider"]], {0, 1}))
    if nm.get("score"):
        sc = nm["score"]
        p.append(f"<h3>A lower title score (now {sc['min_score']:g})</h3>")
        p.append(_table(["--min-score", "pairs it would add"],
                        [[f"{x['min_score']:g}", _fmt_count(x["pairs_added"])] for x in sc["lower"]], {0, 1}))
    p.append('<p class="meta">Pairs added by a looser setting would still have to pass verify.</p>')
    for reason, rows in nm["rows"].items():
        if not rows:
            continue
        p.append(f"<h3>{_e(reason)}: the nearest {len(rows)}</h3>")
        cols = list(rows[0])
        p.append(_table(cols, [[_fmt_cell(r.get(c)) for c in cols] for r in rows],
                        {i for i, c in enumerate(cols) if c in ("delta_s", "score")}, cls="examples"))
    return "".join(p)


def render_html(doc: dict, plots: dict[str, bytes | None], stages: dict[str, StageOutputs],
                genre_table: pd.DataFrame, listening: Listening | None = None) -> str:
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
    for name, why in (doc.get("section_errors") or {}).items():
        p.append(f'<div class="fail">✗ section {_e(name)} could not be made from damaged inputs and is left '
                 f'empty: {_e(why)}</div>')
    p.append('<nav><a href="#funnel">Funnel</a><a href="#genres">Genres</a><a href="#discover">Discover</a>'
             '<a href="#verify">Verify</a><a href="#targets">Targets</a><a href="#stems">Stems</a><a href="#listening">Listening</a>'
             '<a href="#near-misses">Near misses</a><a href="#examples">Examples</a>'
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
        p.append(_genre_by_stage_html(doc.get("genre_by_stage", [])))

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
        p.append(_splits_html(doc.get("splits", {})))
        p.append(_img(plots.get("vocal_energy_ratio"), "vocal energy ratio distribution"))

    p.append('<h2 id="listening">Listening</h2>')
    p.append(_listening_html(listening))

    p.append('<h2 id="near-misses">Near misses</h2>')
    p.append(_near_misses_html(doc.get("near_misses", {})))

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
