"""Plots as PNG bytes: matplotlib's object API with the Agg canvas (no pyplot state, safe without a display)."""

from __future__ import annotations

import functools
import io as _bytesio

import numpy as np
import pandas as pd

from .genres import OTHER_KEY, UNKNOWN_KEY
from .load import STATUS_COLOURS, STATUS_LABELS, STATUSES, _fmt_hours, _num


def literal_text(fn):
    """Run a plotting function with matplotlib's math text off: every string is drawn as written.

    Catalog text ("$uicideboy$", "R&B $$$", a lone "$") would otherwise be parsed as TeX math and
    either render wrong or raise a ValueError when the figure is drawn. Text objects read
    ``text.parse_math`` when they are created and the figure is drawn inside `fn`, so the whole call
    runs in the context.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from matplotlib import rc_context

        with rc_context({"text.parse_math": False, "text.usetex": False}):
            return fn(*args, **kwargs)

    return wrapper


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


@literal_text
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


@literal_text
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


@literal_text
def plot_duration_delta(cands: pd.DataFrame, bins: int) -> bytes | None:
    vals = pd.to_numeric(cands.get("duration_delta_s"), errors="coerce").dropna().to_numpy()
    if not len(vals):
        return None
    return _hist(vals, bins, "duration delta: version − mix (s)", "candidate pairs",
                 "Duration delta of the candidates")


@literal_text
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


@literal_text
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


@literal_text
def plot_vocal_energy(man: pd.DataFrame, bins: int) -> bytes | None:
    if "vocal_energy_ratio" not in man:
        return None
    m = man.drop_duplicates("pair_id") if "pair_id" in man else man
    vals = pd.to_numeric(m["vocal_energy_ratio"], errors="coerce").dropna().to_numpy()
    if not len(vals):
        return None
    return _hist(vals, bins, "vocal energy ratio (energy of vocal target / energy of mix)", "pairs with targets",
                 "Vocal energy ratio of the targets")


@literal_text
def plot_pair_spectra(spectra: dict[str, np.ndarray], sr_hz: int, hop: int, start_s: float,
                      from_targets: bool) -> bytes:
    """A small picture of one pair: mix, instrumental target and vocal target magnitudes in dB, side by side.

    Args:
        spectra: mix, instrumental, vocals -> magnitude of shape (bins, frames), same shape each.
        sr_hz, hop: Their STFT (for the axes).
        start_s: Time of the first frame on the mix's timeline (s).
        from_targets: Whether the targets are the shard's (else recomputed; said in the titles).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 2.5), dpi=64)  # a fixed layout: constrained layout doubled the drawing time
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.2, top=0.88, wspace=0.06)
    mix = spectra["mix"]
    ref = float(mix.max()) if mix.size and mix.max() > 0 else 1.0
    n_frames = mix.shape[1] if mix.ndim == 2 else 0
    extent = (start_s, start_s + n_frames * hop / sr_hz, 0, sr_hz / 2000.0)
    what = "target" if from_targets else "would-be target"
    titles = {"mix": "|mix|", "instrumental": f"instrumental {what}", "vocals": f"vocal {what}"}
    axes = fig.subplots(1, 3, sharey=True)
    for ax, name in zip(axes, ("mix", "instrumental", "vocals")):
        db = 20 * np.log10(np.maximum(spectra[name], ref * 1e-4) / ref)
        ax.imshow(db, origin="lower", aspect="auto", extent=extent, vmin=-80, vmax=0, cmap="magma",
                  interpolation="nearest")
        ax.set_title(titles[name], fontsize=9)
        ax.set_xlabel("time on the mix (s)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("kHz", fontsize=8)
    buf = _bytesio.BytesIO()
    fig.savefig(buf, format="png", dpi=64)
    return buf.getvalue()
