"""The report's stems section: how the exported pairs cancel, and the stems of the best and worst to hear.

Reads OUT/stems/metadata.parquet (the stems stage's table) and, for the best and worst pairs by
`cancellation_db`, a short excerpt of their vocals and instrumental files, compressed for the page.
"""

from __future__ import annotations

import base64
import html
import logging
from typing import Any

import numpy as np
import pandas as pd

from .. import storage as pio
from ..errors import AudioError, InputError
from ..stages import ARTIFACTS

log = logging.getLogger(__name__)

STEMS_DIR = ARTIFACTS["stems_dir"].path
METADATA = ARTIFACTS["stems_metadata"].path
_BINS = np.arange(-10, 91, 5)


def load_stems(out_dir: str) -> pd.DataFrame | None:
    """metadata.parquet of OUT/stems, or None when there is none (or it cannot be read: logged)."""
    path = pio.join(out_dir, *METADATA.split("/"))
    if not pio.exists(path):
        return None
    try:
        return pio.read_table(path).to_pandas()
    except InputError as exc:
        log.warning("report: skipping the stems section: %s", exc)
        return None


def summary(meta: pd.DataFrame | None, n_examples: int = 2) -> dict[str, Any] | None:
    """Counts by method and split, hours, the cancellation distribution, and the best and worst pairs."""
    if meta is None:
        return None
    c = pd.to_numeric(meta["cancellation_db"], errors="coerce")
    hist = np.histogram(np.clip(c.dropna(), _BINS[0], _BINS[-1]), bins=_BINS)[0] if c.notna().any() else []
    order = meta.assign(_c=c).sort_values(["_c", "pair_id"], ascending=[False, True], na_position="last")
    cols = ["pair_id", "path", "method", "cancellation_db", "drift_ppm", "polarity", "model", "reason"]

    def rows(df: pd.DataFrame) -> list[dict]:
        return [{k: (None if pd.isna(v) else v) if not isinstance(v, (list, np.ndarray)) else list(v)
                 for k, v in r.items()} for r in df[cols].to_dict("records")]

    return {
        "pairs": int(len(meta)),
        "hours": float(meta["duration_s"].sum()) / 3600.0 if len(meta) else 0.0,
        "methods": {str(k): int(v) for k, v in meta["method"].value_counts().items()},
        "splits": {str(k): int(v) for k, v in meta["split"].value_counts().items()},
        "cancellation_db": {f"p{q}": float(c.quantile(q / 100)) for q in (10, 50, 90)} if c.notna().any() else {},
        "cancellation_hist": {"edges_db": _BINS.tolist(), "counts": [int(x) for x in hist]},
        "best": rows(order.head(n_examples)),
        "worst": rows(order.tail(n_examples).iloc[::-1]) if len(order) > n_examples else [],
    }


def clips(out_dir: str, doc: dict | None, clip_s: float, bitrate_kbps: int) -> dict[str, dict[str, tuple[str, bytes]]]:
    """pair_id -> stem -> (mime, compressed excerpt) for the best and worst pairs (none without ffmpeg)."""
    from .clips import audio_codec, encode_clip

    codec = audio_codec()
    if doc is None or codec is None or pio.is_url(out_dir):
        return {}
    import soundfile as sf

    out: dict[str, dict[str, tuple[str, bytes]]] = {}
    for r in doc["best"] + doc["worst"]:
        folder = pio.join(out_dir, *STEMS_DIR.split("/"), *str(r["path"]).split("/"))
        got = {}
        try:
            for stem in ("mixture", "vocals", "instrumental"):
                path = next((f"{folder}/{stem}.{ext}" for ext in ("wav", "flac") if pio.exists(f"{folder}/{stem}.{ext}")),
                            None)
                if path is None:
                    raise AudioError(f"{folder}: no {stem} file")
                info = sf.info(path)
                n = int(min(info.frames, clip_s * info.samplerate))
                start = max(0, (info.frames - n) // 2)
                y, sr = sf.read(path, start=start, frames=n, dtype="float32", always_2d=True)
                got[stem] = (codec[2], encode_clip(y.mean(axis=1), sr, bitrate_kbps, codec))
        except (AudioError, RuntimeError, OSError) as exc:
            log.warning("report: no stems clips for %s: %s", r["pair_id"], exc)
            continue
        out[r["pair_id"]] = got
    return out


def section_html(doc: dict | None, blobs: dict[str, dict[str, tuple[str, bytes]]], hist_png: bytes | None) -> str:
    """The stems section of report.html."""
    e = html.escape
    p = ['<h2 id="stems">Stems</h2>']
    if doc is None:
        p.append('<p class="missing">No stems/metadata.parquet: run `pairminer stems OUT/verified.parquet -o '
                 'OUT/stems` (or `pairminer discover`, which chains it).</p>')
        return "".join(p)
    methods = ", ".join(f"{k} {v}" for k, v in sorted(doc["methods"].items())) or "none"
    q = doc["cancellation_db"]
    p.append(f"<p>{doc['pairs']} pair(s), {doc['hours']:.2f} h of stems ({e(methods)}); cancellation where the "
             f"voice is absent: median {q.get('p50', float('nan')):.1f} dB (10th percentile "
             f"{q.get('p10', float('nan')):.1f} dB, 90th {q.get('p90', float('nan')):.1f} dB).</p>")
    if hist_png:
        p.append(f'<img alt="cancellation" src="data:image/png;base64,{base64.b64encode(hist_png).decode()}">')
    for title, rows in (("Best cancelling pairs", doc["best"]), ("Worst cancelling pairs", doc["worst"])):
        if not rows:
            continue
        p.append(f"<h3>{title}</h3><table><tr><th>pair</th><th>method</th><th>cancellation dB</th><th>drift ppm"
                 "</th><th>polarity</th><th>listen</th></tr>")
        for r in rows:
            audio = "".join(f'<div>{e(stem)} <audio controls preload="none" src="data:{mime};base64,'
                            f'{base64.b64encode(blob).decode()}"></audio></div>'
                            for stem, (mime, blob) in blobs.get(r["pair_id"], {}).items())
            c = r["cancellation_db"]
            p.append(f"<tr><td><code>{e(str(r['pair_id']))}</code></td><td>{e(str(r['method']))}</td>"
                     f"<td>{'' if c is None else f'{c:.1f}'}</td><td>{r['drift_ppm'] or 0:.1f}</td>"
                     f"<td>{r['polarity']}</td><td>{audio or '(no clip)'}</td></tr>")
        p.append("</table>")
    return "".join(p)


def plot_cancellation(doc: dict | None) -> bytes | None:
    """Histogram of cancellation_db (PNG)."""
    if doc is None or not doc["pairs"]:
        return None
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h = doc["cancellation_hist"]
    fig = Figure(figsize=(7, 3))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.stairs(h["counts"], h["edges_db"], fill=True, alpha=0.7)
    ax.set_xlabel("cancellation where the voice is absent (dB)")
    ax.set_ylabel("pairs")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
