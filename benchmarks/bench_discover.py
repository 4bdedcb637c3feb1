"""Benchmark `pairminer discover` on generated catalogs with planted truth, against two peers.

For each size it measures, in the same run and on the same CSV file:
  * bare `pyarrow.csv.read_csv` of the file (the floor: just parsing it),
  * `pairminer discover --until candidates` (a fresh process, peak RSS from wait4),
  * DuckDB: the query a data engineer would write: normalise, split on the same keyword table, join on
    artist x 1 s duration bucket (and the two neighbours), |delta| < 1 s, Jaro-Winkler >= 0.9, best
    match per version (a fresh process, 2 threads),
  * Splink 5 (DuckDB backend): the same normalisation, then a deterministic link of versions to
    originals with the same blocking (artist x bucket, three rules for the neighbours) and the same
    Jaro-Winkler and window conditions, best match per version,
and prints wall time (median of --repeat runs), peak RSS, precision and recall against the planted
truth, recall per planted category, and the ratios discover/read, discover/duckdb, discover/splink.

    python benchmarks/bench_discover.py --rows 1000000 --rows 10000000
    python benchmarks/bench_discover.py --run-peer duckdb --csv CATALOG.csv --out pairs.parquet
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


def _keyword_regex() -> str:
    """pairminer's keyword table (all four kinds), folded, as one SQL regex alternation."""
    from pairminer.discover.text import DEFAULT_KEYWORDS, fold

    words = sorted({fold(w) for ws in DEFAULT_KEYWORDS.values() for w in ws if fold(w)}, key=len, reverse=True)
    return "|".join(w.replace("'", "''") for w in words)


# The normalisation both peers share (DuckDB SQL): artist key, folded title, keyword, match title.
NORMALISE_SQL = r"""
CREATE TABLE t AS
  SELECT track_id, TRY_CAST(duration AS DOUBLE) AS d,
         regexp_replace(trim(regexp_replace(strip_accents(lower(
           regexp_split_to_array(artist, '\s+(?:feat\.?|ft\.?|featuring|with|x|vs\.?)\s+|\s*[&,;/]\s*')[1])),
           '[^\w]+', ' ', 'g')), '^the ', '') AS akey,
         trim(regexp_replace(strip_accents(lower(title)), '[^\w]+', ' ', 'g')) AS ft
  FROM read_csv('{path}', header = true, all_varchar = true);
CREATE TABLE k AS
  SELECT *, regexp_extract(ft, '(?:^| )({kw})(?: |$)', 1) AS kw FROM t;
CREATE TABLE v AS
  SELECT track_id, akey, d, CAST(floor(d) AS BIGINT) AS b,
         trim(regexp_replace(regexp_replace(ft, '(?:^| )(?:{kw})(?: (?:version|ver|mix))*(?: |$)', ' ', 'g'),
              ' remastered \d{{4}}$', '')) AS mt
  FROM k WHERE kw <> '';
CREATE TABLE o AS
  SELECT track_id, akey, d, CAST(floor(d) AS BIGINT) AS b, trim(regexp_replace(ft, ' remastered \d{{4}}$', '')) AS mt
  FROM k WHERE kw = '';
"""

DUCKDB_SQL = r"""
SELECT version_track_id, mix_track_id, score FROM (
  SELECT v.track_id AS version_track_id, o.track_id AS mix_track_id, abs(v.d - o.d) AS ad,
         jaro_winkler_similarity(v.mt, o.mt) AS score
  FROM v, (VALUES (-1), (0), (1)) AS n(k), o
  WHERE o.akey = v.akey AND o.b = v.b + n.k AND abs(v.d - o.d) < 1.0
) WHERE score >= 0.9
QUALIFY row_number() OVER (PARTITION BY version_track_id ORDER BY score DESC, ad, mix_track_id) = 1
"""

DUCKDB_RUNNER = r"""
import sys, duckdb
normalise, sql, out = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(normalise)
con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")
"""

SPLINK_RUNNER = r"""
import sys, duckdb
normalise, out = sys.argv[1], sys.argv[2]
from splink import DuckDBAPI, Linker, SettingsCreator
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(normalise)
con.execute("CREATE TABLE vv AS SELECT track_id AS unique_id, akey, b, d, mt FROM v")
con.execute("CREATE TABLE oo AS SELECT track_id AS unique_id, akey, b, d, mt FROM o")
db = DuckDBAPI(connection=con)
cond = "l.akey = r.akey AND l.b = r.b + {k} AND abs(l.d - r.d) < 1.0 AND jaro_winkler_similarity(l.mt, r.mt) >= 0.9"
settings = SettingsCreator(link_type="link_only", unique_id_column_name="unique_id",
                           blocking_rules_to_generate_predictions=[cond.format(k=k) for k in (-1, 0, 1)],
                           retain_matching_columns=True, additional_columns_to_retain=["d", "mt"])
linker = Linker([db.register(con.table("vv"), dataset_display_name="versions"),
                 db.register(con.table("oo"), dataset_display_name="originals")], settings)
pairs = linker.inference.deterministic_link().as_pandas_dataframe()
import pandas as pd
from rapidfuzz.distance import JaroWinkler
best = pd.DataFrame({"version_track_id": [], "mix_track_id": []})
if len(pairs):
    # Splink orders the two sides itself: take the version from whichever side holds it.
    lv = pairs["source_dataset_l"] == "versions"
    p = pd.DataFrame({"version_track_id": pairs["unique_id_l"].where(lv, pairs["unique_id_r"]),
                      "mix_track_id": pairs["unique_id_r"].where(lv, pairs["unique_id_l"]),
                      "score": [JaroWinkler.similarity(a, b) for a, b in zip(pairs["mt_l"], pairs["mt_r"])],
                      "ad": (pairs["d_l"] - pairs["d_r"]).abs()})
    p = p.sort_values(["version_track_id", "score", "ad", "mix_track_id"], ascending=[True, False, True, True])
    best = p.drop_duplicates("version_track_id")[["version_track_id", "mix_track_id"]]
best.to_parquet(out)
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
    g.near_misses.to_parquet(work / f"traps-{rows}-{seed}.parquet")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="catalog size (repeatable) [1000000]")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    ap.add_argument("--work", default=str(HERE / "out"))
    ap.add_argument("--no-duckdb", action="store_true")
    ap.add_argument("--no-splink", action="store_true")
    ap.add_argument("--peer-repeat", type=int, default=1, help="runs of each peer [1]")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--generate", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--run-peer", choices=["duckdb", "splink"], default=None,
                    help="run one peer on --csv and write its pairs to --out (for timing it from outside)")
    ap.add_argument("--csv", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.run_peer:
        normalise = NORMALISE_SQL.format(path=args.csv, kw=_keyword_regex())
        argv = [normalise, DUCKDB_SQL, args.out] if args.run_peer == "duckdb" else [normalise, args.out]
        sys.argv = ["peer", *argv]
        exec(DUCKDB_RUNNER if args.run_peer == "duckdb" else SPLINK_RUNNER, {"__name__": "__peer__"})
        return
    if args.generate:
        generate(args.generate, args.seed, Path(args.work))
        return
    from pairminer.testing import GeneratedCatalog, category_report, precision_recall

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    results = []
    for rows in args.rows or [1_000_000]:
        print(f"== {rows:,} rows", flush=True)
        csv, truth_path = ensure_catalog(rows, args.seed, work)
        truth = pd.read_parquet(truth_path)
        g = GeneratedCatalog(pd.DataFrame(), truth, pd.read_parquet(work / f"traps-{rows}-{args.seed}.parquet"))
        fig: dict = {"rows": rows}
        reads = [run_measured([py, "-c", READ_RUNNER, str(csv)]) for _ in range(args.repeat)]
        fig["read_s"] = statistics.median(r[0] for r in reads)
        fig["read_rss_mib"] = max(r[1] for r in reads)
        out = work / f"discover-{rows}"
        runs = [run_measured([py, "-m", "pairminer", "discover", str(csv), "-o", str(out), "--until", "candidates",
                              "-q", "--kinds", KINDS]) for _ in range(args.repeat)]
        fig["discover_s"] = statistics.median(r[0] for r in runs)
        fig["discover_rss_mib"] = max(r[1] for r in runs)
        cands = pd.read_parquet(out / "candidates.parquet")
        fig["discover_precision"], fig["discover_recall"] = precision_recall(cands, truth)
        fig["discover_steps_s"] = json.loads((out / "discover-report.json").read_text())["timings_s"]
        per_cat = {"discover": category_report(cands, g)}
        normalise = NORMALISE_SQL.format(path=csv, kw=_keyword_regex())
        peers = []
        if not args.no_duckdb:
            peers.append(("duckdb", lambda o: [py, "-c", DUCKDB_RUNNER, normalise, DUCKDB_SQL, str(o)]))
        if not args.no_splink:
            peers.append(("splink", lambda o: [py, "-c", SPLINK_RUNNER, normalise, str(o)]))
        for name, cmd in peers:
            pout = work / f"{name}-{rows}.parquet"
            pruns = [run_measured(cmd(pout)) for _ in range(args.peer_repeat)]
            fig[f"{name}_s"] = statistics.median(r[0] for r in pruns)
            fig[f"{name}_rss_mib"] = max(r[1] for r in pruns)
            pc_ = pd.read_parquet(pout)
            fig[f"{name}_precision"], fig[f"{name}_recall"] = precision_recall(pc_, truth)
            fig[f"discover_vs_{name}"] = fig["discover_s"] / fig[f"{name}_s"]
            per_cat[name] = category_report(pc_, g)
        fig["discover_vs_read"] = fig["discover_s"] / fig["read_s"]
        for k, v in fig.items():
            print(f"  {k:22s} {v:.4g}" if isinstance(v, float) else f"  {k:22s} {v}", flush=True)
        cols = ["planted", "recall", "false_pairs"]
        table = pd.concat({k: v.set_index("category")[cols] for k, v in per_cat.items()}, axis=1)
        print(table.to_string(float_format=lambda x: f"{x:.3f}"), flush=True)
        fig["per_category"] = {k: v.to_dict(orient="records") for k, v in per_cat.items()}
        results.append(fig)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
