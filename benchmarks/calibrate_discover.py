"""Calibrate discover's --min-score: title-score distributions of true pairs and of every other pair
that survives blocking and the duration window, on a generated catalog with planted truth.

    python benchmarks/calibrate_discover.py --rows 200000
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pandas as pd

from pairminer.discover.stage import DiscoverConfig, run_discover
from pairminer.testing import make_catalog, write_catalog_csv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    g = make_catalog(args.rows, seed=args.seed)
    kinds = ("instrumental", "acapella", "karaoke", "off-vocal")
    want = set(zip(g.truth.mix_track_id, g.truth.version_track_id))
    with tempfile.TemporaryDirectory() as tmp:
        write_catalog_csv(g.catalog, f"{tmp}/c.csv")
        print(f"{args.rows:,} rows, {len(want):,} planted pairs")
        print(f"{'scorer':18s} {'min_score':>9s} {'precision':>9s} {'recall':>7s}")
        for scorer in ("ratio", "token_sort_ratio", "token_set_ratio", "WRatio"):
            res = run_discover(f"{tmp}/c.csv", f"{tmp}/o", DiscoverConfig(kinds=kinds, min_score=50, scorer=scorer),
                               progress=False)
            c = pd.read_parquet(res.candidates_path)
            c["true"] = [p in want for p in zip(c.mix_track_id, c.version_track_id)]
            for t in (70, 80, 85, 90, 95, 100):
                kept = c[c.title_score >= t]
                tp = int(kept["true"].sum())
                p = tp / len(kept) if len(kept) else 1.0
                print(f"{scorer:18s} {t:9d} {p:9.4f} {tp / len(want):7.4f}")
            if scorer == "ratio":
                q = np.percentile(c.loc[c["true"], "title_score"], [0, 1, 5, 50])
                f = c.loc[~c["true"], "title_score"]
                print(f"  true-pair scores: min {q[0]:.1f}, p1 {q[1]:.1f}, p5 {q[2]:.1f}, median {q[3]:.1f}")
                if len(f):
                    print(f"  best wrong-pair scores: max {f.max():.1f}, p99 {np.percentile(f, 99):.1f}, "
                          f"median {f.median():.1f} (n={len(f)})")


if __name__ == "__main__":
    main()
