"""Does a huge "Various Artists" block cost more than its neighbours?

Runs discover on two generated catalogs of the same size and seed, one with a 200,000-track
"Various Artists" block and one without, and prints wall time, blocked pairs and pairs within the
duration window for each, and the ratio.

    python benchmarks/bench_va_block.py --rows 2000000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from pairminer.discover.stage import DiscoverConfig, run_discover
from pairminer.testing import make_catalog, write_catalog_csv


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--va", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    kinds = ("instrumental", "acapella", "karaoke", "off-vocal")
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for va in (0, args.va):
            path = f"{tmp}/c{va}.csv"
            write_catalog_csv(make_catalog(args.rows, seed=3, va_tracks=va).catalog, path)
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                res = run_discover(path, f"{tmp}/o{va}", DiscoverConfig(kinds=kinds), progress=False)
                times.append(time.perf_counter() - t)
            out[va] = statistics.median(times)
            print(f"VA block {va:>7,} tracks: discover {out[va]:.2f} s (median of {args.repeat}), "
                  f"blocked {res.counts['blocked_pairs']:,}, within window {res.counts['within_window']:,}, "
                  f"kept {res.counts['kept']:,}")
    print(f"ratio with/without the VA block: {out[args.va] / out[0]:.2f}")


if __name__ == "__main__":
    main()
