"""The results plot: mean rating and bootstrap 95% interval per condition, one panel per source."""

from __future__ import annotations

import io


def plot_results(doc: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = [s for s in dict.fromkeys(r["source"] for r in doc["summary"])]
    fig, axes = plt.subplots(1, len(sources), figsize=(4.2 * len(sources) + 1, 3.6), squeeze=False, sharey=True)
    colors = {"system": "#2b6cb0", "hidden_reference": "#276749", "anchor": "#9c4221"}
    for ax, src in zip(axes[0], sources):
        rows = [r for r in doc["summary"] if r["source"] == src and r["n"]]
        for i, r in enumerate(rows):
            ax.errorbar(i, r["mean"], yerr=[[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]], fmt="o",
                        color=colors[r["kind"]], capsize=4)
            ax.text(i, 0.75, f"n={r['n']}", ha="center", fontsize=7, color="#555")
        ax.set_xticks(range(len(rows)), [r["condition"] for r in rows], rotation=25, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylim(0.5, 7.5)
        ax.set_yticks(range(1, 8))
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(f"{src}", fontsize=10)
    axes[0][0].set_ylabel("rating (1-7), mean and 95% CI")
    c = doc["counts"]
    fig.suptitle(f"Listening test {doc['test_id']}: {c['raters_kept']} rater(s) kept of {c['raters']}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
