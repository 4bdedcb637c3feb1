"""similarity.png: the BER histogram of the compared pairs by status, with the two thresholds."""

from __future__ import annotations

import numpy as np

from .config import VerifyConfig

BER_BINS = np.linspace(0, 0.6, 61)


def plot_similarity(hists: dict[str, np.ndarray], n_err: int, n: int, config: VerifyConfig, path: str) -> str | None:
    """BER histogram by status (counts per `BER_BINS` bin, summed over the batches) with the two thresholds."""
    import io as _io

    # The object API with the Agg canvas, not pyplot: no backend selection or figure manager
    # (pyplot's import and set-up were most of the plot's cost in benchmarks/bench_chain.py).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..storage import write_bytes

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    bins = BER_BINS
    colors = {"verified": "tab:green", "too_similar": "tab:orange", "too_different": "tab:red"}
    for status, color in colors.items():
        counts = hists.get(status)
        if counts is not None and counts.sum():
            ax.hist(bins[:-1], bins=bins, weights=counts, alpha=0.7, color=color,
                    label=f"{status} ({int(counts.sum())})")
    for x, name in ((config.min_ber, "min_ber"), (config.max_ber, "max_ber")):
        ax.axvline(x, color="k", ls="--", lw=1)
        ax.text(x, ax.get_ylim()[1] * 0.95, f" {name}={x:g}", va="top", fontsize=8)
    ax.set_xlabel("bit error rate at the best offset")
    ax.set_ylabel("pairs")
    ax.set_title(f"verify: {n} candidates ({n_err} errors not shown)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper center", fontsize=8)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_bytes(path, buf.getvalue())
    return path
