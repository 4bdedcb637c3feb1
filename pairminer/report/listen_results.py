"""The report's "Listening test results" section: any listen-results.json that `pairminer listen
--collect` wrote under OUT (OUT/listen-results.json, or one or two folders down), with its plot."""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

from .. import storage as pio

log = logging.getLogger(__name__)
NAME = "listen-results.json"


def find_results(out_dir: str) -> list[dict]:
    """The results documents under `out_dir` (local folders only), each with `_path` and `_png`."""
    if pio.is_url(out_dir) or not Path(out_dir).is_dir():
        return []
    root = Path(out_dir)
    found = []
    for pattern in (NAME, f"*/{NAME}", f"*/*/{NAME}"):
        for p in sorted(root.glob(pattern)):
            try:
                doc = pio.read_json(str(p))
            except Exception as exc:
                log.warning("report: skipping %s: %s", p, exc)
                continue
            if not isinstance(doc, dict) or doc.get("stage") != "listen-collect":
                continue
            png = p.parent / str(doc.get("plot") or "listen-results.png")
            doc["_path"] = str(p.relative_to(root))
            doc["_png"] = png.read_bytes() if png.is_file() else None
            found.append(doc)
    return found


def summary_json(docs: list[dict]) -> list[dict]:
    """What report.json keeps of each: where it is, its test, counts and the per-condition summary."""
    return [{"path": d["_path"], "test_id": d.get("test_id"), "counts": d.get("counts"), "summary": d.get("summary"),
             "comparisons": d.get("comparisons")} for d in docs]


def section_html(docs: list[dict]) -> str:
    """The section, or "" when there are no results."""
    if not docs:
        return ""
    e = lambda x: html.escape("" if x is None else str(x), quote=True)
    p = ['<h2 id="listen-results">Listening test results</h2>',
         '<p class="meta">Blinded ratings on the 1-7 scale of Jansson et al. (ISMIR 2017), from '
         '<code>pairminer listen --collect</code>; see docs/evaluation.md.</p>']
    for d in docs:
        c = d.get("counts") or {}
        p.append(f"<h3>Test <code>{e(d.get('test_id'))}</code> ({e(d['_path'])})</h3>"
                 f"<p>{c.get('raters_kept', 0)} of {c.get('raters', 0)} rater(s) kept after screening, "
                 f"{c.get('ratings_kept', 0)} rating(s); {c.get('files_left_out', 0)} file(s) left out.</p>")
        p.append("<table><tr><th>source</th><th>condition</th><th>n</th><th>mean</th><th>median</th>"
                 "<th>95% CI</th></tr>")
        for s in d.get("summary") or []:
            if not s.get("n"):
                continue
            p.append(f"<tr><td>{e(s['source'])}</td><td>{e(s['condition'])}</td><td>{s['n']}</td>"
                     f"<td>{s['mean']:.2f}</td><td>{s['median']:.1f}</td>"
                     f"<td>[{s['ci_low']:.2f}, {s['ci_high']:.2f}]</td></tr>")
        p.append("</table>")
        for cmp_ in d.get("comparisons") or []:
            pv = "n/a" if cmp_.get("p_holm") is None else f"{cmp_['p_holm']:.3g}"
            p.append(f"<p class=\"meta\">{e(cmp_['source'])}: {e(cmp_['a'])} vs {e(cmp_['b'])}: median difference "
                     f"{cmp_['median_diff']:+.1f} over {cmp_['n_pairs']} pair(s), p (Holm) = {pv}</p>")
        if d.get("_png"):
            p.append(f'<img alt="listening test results" src="data:image/png;base64,'
                     f'{base64.b64encode(d["_png"]).decode("ascii")}">')
    return "".join(p)
