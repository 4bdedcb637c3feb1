"""Calibrate discover's --min-score and scorer on the calibration seed (1), never on the held-out seed (2,
used by tests/discover/test_discover.py and reported with --held-out).

Prints, for each scorer, precision/recall of the candidates kept at each threshold (title-score
distributions of true pairs and of every other pair that survives blocking, the window and the
recording-qualifier rule), then recall and false pairs per planted category at the defaults, for an
exact-durations catalog and a whole-seconds one.

    python benchmarks/calibrate_discover.py --rows 200000
    python benchmarks/calibrate_discover.py --rows 200000 --held-out
    python benchmarks/calibrate_discover.py --rows 50000 --held-out --style soundtrack

`--style soundtrack` reports on the soundtrack-like catalog (`testing_soundtrack`: album or franchise as
the artist, whole seconds) instead; `--style both` reports on both.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pandas as pd

from pairminer.discover.stage import DiscoverConfig, run_discover
from pairminer.testing import category_report, make_catalog, precision_recall, write_catalog_csv
from pairminer.testing_soundtrack import make_soundtrack_catalog

CALIBRATION_SEED, HELD_OUT_SEED = 1, 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--held-out", action="store_true", help="report on the held-out seed (no sweep)")
    ap.add_argument("--style", choices=["itunes", "soundtrack", "both"], default="itunes",
                    help="the generator: iTunes/Spotify-like (make_catalog), soundtrack-like, or both")
    args = ap.parse_args()
    seed = HELD_OUT_SEED if args.held_out else CALIBRATION_SEED
    pd.set_option("display.width", 200)
    with tempfile.TemporaryDirectory() as tmp:
        if args.style in ("soundtrack", "both"):
            g = make_soundtrack_catalog(args.rows, seed=seed)
            write_catalog_csv(g.catalog, f"{tmp}/s.csv")
            res = run_discover(f"{tmp}/s.csv", f"{tmp}/s", DiscoverConfig(), progress=False)
            c = pd.read_parquet(res.candidates_path)
            p, r = precision_recall(c, g.truth)
            print(f"soundtrack seed {seed}: {len(g.catalog):,} rows, {len(g.truth):,} planted pairs, "
                  f"{len(g.near_misses):,} traps: precision {p:.4f}, recall {r:.4f}")
            print(category_report(c, g)[["category", "kind", "planted", "found", "recall", "precision",
                                         "false_pairs"]].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
            if args.style == "soundtrack":
                return
        if not args.held_out:
            g = make_catalog(args.rows, seed=seed)
            want = set(zip(g.truth.mix_track_id, g.truth.version_track_id))
            write_catalog_csv(g.catalog, f"{tmp}/c.csv")
            print(f"seed {seed}: {args.rows:,} rows, {len(want):,} planted pairs")
            print(f"{'scorer':18s} {'min_score':>9s} {'precision':>9s} {'recall':>7s}")
            for scorer in ("ratio", "token_sort_ratio", "token_set_ratio", "WRatio"):
                res = run_discover(f"{tmp}/c.csv", f"{tmp}/o", DiscoverConfig(min_score=50, scorer=scorer),
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
        for resolution in (0.0, 1.0):
            g = make_catalog(args.rows, seed=seed, duration_resolution_s=resolution)
            write_catalog_csv(g.catalog, f"{tmp}/r.csv")
            res = run_discover(f"{tmp}/r.csv", f"{tmp}/r", DiscoverConfig(), progress=False)
            c = pd.read_parquet(res.candidates_path)
            p, r = precision_recall(c, g.truth)
            print(f"\nseed {seed}, durations {'whole seconds' if resolution else 'exact'}: precision {p:.4f}, "
                  f"recall {r:.4f}, detected resolution {res.counts['duration_resolution_s']} s")
            print(category_report(c, g)[["category", "kind", "planted", "found", "recall", "false_pairs"]]
                  .to_string(index=False, float_format=lambda x: f"{x:.4f}"))


if __name__ == "__main__":
    main()
