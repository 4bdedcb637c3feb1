"""Benchmark `pairminer discover` on generated catalogs with planted truth.

For each size it measures, in the same run and on the same CSV file:
  * bare `pyarrow.csv.read_csv` of the file (the floor: just parsing it),
  * `pairminer discover --until candidates` (a fresh process, peak RSS from wait4),
  * one DuckDB SQL query of the same rules (a fresh process, peak RSS from wait4),
and prints wall time (median of --repeat runs), peak RSS, precision and recall against the planted
truth, and the ratios discover/read and discover/duckdb.

    python benchmarks/bench_discover.py --rows 1000000 --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
KINDS = "instrumental,acapella,karaoke,off-vocal"

DUCKDB_SQL = r"""
WITH t AS (
  SELECT track_id, title, TRY_CAST(duration AS DOUBLE) AS d,
         regexp_replace(trim(regexp_replace(strip_accents(lower(
           regexp_split_to_array(artist, '\s+(?:feat\.?|ft\.?|featuring|with|x|vs\.?)\s+|\s*[&,;/]\s*')[1])),
           '[^\w]+', ' ', 'g')), '^the ', '') AS akey,
         trim(regexp_replace(strip_accents(lower(title)), '[^\w]+', ' ', 'g')) AS ft
  FROM read_csv('{path}', header = true, all_varchar = true)
),
k AS (
  SELECT *, regexp_extract(ft, '(?:^| )(instrumentals?|instr|inst|acapella|a cappella|acappella|a capella|karaoke|off vocal|offvocal|オフボーカル)(?: |$)', 1) AS kw
  FROM t
),
v AS (
  SELECT track_id, akey, d,
         trim(regexp_replace(regexp_replace(ft, '(?:^| )(instrumentals?|instr|inst|acapella|a cappella|acappella|a capella|karaoke|off vocal|offvocal|オフボーカル)(?: (?:version|ver|mix))*(?: |$)', ' ', 'g'),
              ' remastered \d{{4}}$', '')) AS mt
  FROM k WHERE kw <> ''
),
o AS (
  SELECT track_id, akey, d, trim(regexp_replace(ft, ' remastered \d{{4}}$', '')) AS mt FROM k WHERE kw = ''
),
p AS (
  SELECT v.track_id AS version_track_id, o.track_id AS mix_track_id, abs(v.d - o.d) AS ad,
         1.0 - levenshtein(v.mt, o.mt) / greatest(length(v.mt), length(o.mt), 1) AS score
  FROM v JOIN o ON v.akey = o.akey AND abs(v.d - o.d) < 1.0
)
SELECT version_track_id, mix_track_id, score FROM p WHERE score >= 0.9
QUALIFY row_number() OVER (PARTITION BY version_track_id ORDER BY score DESC, ad, mix_track_id) = 1
"""

DUCKDB_RUNNER = r"""
import sys, duckdb
sql, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")
"""

READ_RUNNER = r"""
import sys, pyarrow.csv as c
t = c.read_csv(sys.argv[1]); print(t.num_rows)
"""


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Run a command; return (wall seconds, peak RSS in MiB of that process tree's largest member)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-2000:]}")
    return wall, rusage.ru_maxrss / 1024


def ensure_catalog(rows: int, seed: int, work: Path) -> tuple[Path, Path]:
    csv, truth = work / f"catalog-{rows}-{seed}.csv", work / f"truth-{rows}-{seed}.parquet"
    if not csv.exists() or not truth.exists():
        # Generate in a child process, so this process stays small: a forked child's peak RSS
        # (ru_maxrss) starts from its parent's.
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(rows), "--seed", str(seed), "--work", str(work)],
                       check=True)
        print(f"  generated {rows:,} rows in {time.perf_counter() - t:.1f} s -> {csv} "
              f"({csv.stat().st_size / 2**20:.0f} MiB)", flush=True)
    return csv, truth


def generate(rows: int, seed: int, work: Path) -> None:
    from pairminer.testing import make_catalog, write_catalog_csv

    g = make_catalog(rows, seed=seed)
    write_catalog_csv(g.catalog, str(work / f"catalog-{rows}-{seed}.csv"))
    g.truth.to_parquet(work / f"truth-{rows}-{seed}.parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="catalog size (repeatable) [1000000]")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--work", default=str(HERE / "out"))
    ap.add_argument("--no-duckdb", action="store_true")
    ap.add_argument("--duckdb-repeat", type=int, default=1, help="runs of the (slow) DuckDB query [1]")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--generate", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        generate(args.generate, args.seed, Path(args.work))
        return
    from pairminer.testing import precision_recall

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    exe = str(Path(py).parent / "pairminer")
    results = []
    for rows in args.rows or [1_000_000]:
        print(f"== {rows:,} rows", flush=True)
        csv, truth_path = ensure_catalog(rows, args.seed, work)
        truth = pd.read_parquet(truth_path)
        fig: dict = {"rows": rows}
        reads = [run_measured([py, "-c", READ_RUNNER, str(csv)]) for _ in range(args.repeat)]
        fig["read_s"] = statistics.median(r[0] for r in reads)
        fig["read_rss_mib"] = max(r[1] for r in reads)
        out = work / f"discover-{rows}"
        runs = [run_measured([exe, "discover", str(csv), "-o", str(out), "--until", "candidates", "-q",
                              "--kinds", KINDS]) for _ in range(args.repeat)]
        fig["discover_s"] = statistics.median(r[0] for r in runs)
        fig["discover_rss_mib"] = max(r[1] for r in runs)
        cands = pd.read_parquet(out / "candidates.parquet")
        fig["discover_precision"], fig["discover_recall"] = precision_recall(cands, truth)
        fig["discover_steps_s"] = json.loads((out / "discover-report.json").read_text())["timings_s"]
        if not args.no_duckdb:
            sql = DUCKDB_SQL.format(path=csv)
            dout = work / f"duckdb-{rows}.parquet"
            druns = [run_measured([py, "-c", DUCKDB_RUNNER, sql, str(dout)]) for _ in range(args.duckdb_repeat)]
            fig["duckdb_s"] = statistics.median(r[0] for r in druns)
            fig["duckdb_rss_mib"] = max(r[1] for r in druns)
            dc = pd.read_parquet(dout)
            fig["duckdb_precision"], fig["duckdb_recall"] = precision_recall(dc, truth)
            fig["discover_vs_duckdb"] = fig["discover_s"] / fig["duckdb_s"]
        fig["discover_vs_read"] = fig["discover_s"] / fig["read_s"]
        for k, v in fig.items():
            print(f"  {k:22s} {v:.4g}" if isinstance(v, float) else f"  {k:22s} {v}", flush=True)
        results.append(fig)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
