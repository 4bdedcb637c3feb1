"""Issue 15: discover at catalog scale, in bounded memory, against a bare pyarrow.dataset scan.

For each size it generates (under --work, /tmp by default, deleted afterwards unless --keep) a Parquet
dataset (files of --file-rows rows, row groups of 500k) and one CSV of the same rows, then measures in
the same run, each in a fresh process:
  * a bare `pyarrow.dataset` scan of the same files and columns (batches counted, nothing kept): the
    floor of reading them;
  * `pairminer discover --until discover` on them.
It prints the wall time, the peak RSS of the WHOLE process tree (the sum over the process and all its
children, sampled every 0.2 s with psutil), and the ratio discover/scan.

The rows are one `make_catalog(--chunk-rows)` chunk replicated with distinct ids and artists (artist
names carry the chunk number), so blocks stay realistic as the catalog grows and the planted pairs
scale with it.

    python benchmarks/bench_scale.py --rows 10000000 --rows 30000000 --formats parquet,csv
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

COLUMNS = ["track_id", "artist", "title", "duration", "genre", "audio_path"]

SCAN_RUNNER = r"""
import sys, pyarrow.dataset as ds
fmt, path = sys.argv[1], sys.argv[2]
d = ds.dataset(path, format=fmt)
print(sum(b.num_rows for b in d.to_batches(columns=["track_id", "artist", "title", "duration", "genre", "audio_path"])))
"""


def measure(cmd: list[str], interval_s: float = 0.2) -> tuple[float, float]:
    """Run cmd; return (wall s, peak RSS in MiB summed over the process tree)."""
    import psutil

    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [ps] + ps.children(recursive=True)
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(interval_s)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode()[-3000:]}")
    return wall, peak / 2**20


def generate(rows: int, chunk_rows: int, file_rows: int, work: Path) -> tuple[Path, Path]:
    """Write work/ds/part-*.parquet and work/catalog.csv; return their paths."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from pairminer.testing import make_catalog

    base = pa.Table.from_pandas(make_catalog(chunk_rows, seed=11).catalog[COLUMNS], preserve_index=False)
    base = base.set_column(3, "duration", pc.cast(base.column("duration"), pa.float64()))
    base = pa.table({n: (c.cast(pa.string()) if pa.types.is_large_string(c.type) else c)
                     for n, c in zip(base.column_names, base.columns)})
    ds_dir, csv_path = work / "ds", work / "catalog.csv"
    ds_dir.mkdir(parents=True, exist_ok=True)
    writer = None
    file_no, in_file = 0, 0
    with pacsv.CSVWriter(str(csv_path), base.schema) as csv_out:
        done, k = 0, 0
        while done < rows:
            t = base.slice(0, min(chunk_rows, rows - done))
            tag = f"{k:04d}"
            t = t.set_column(0, "track_id", pc.binary_join_element_wise(pa.scalar(tag), t.column("track_id"), "-"))
            t = t.set_column(1, "artist", pc.binary_join_element_wise(t.column("artist"), pa.scalar(tag), " #"))
            csv_out.write_table(t)
            if writer is None:
                writer = pq.ParquetWriter(ds_dir / f"part-{file_no:04d}.parquet", t.schema)
            writer.write_table(t, row_group_size=500_000)
            in_file += t.num_rows
            if in_file >= file_rows:
                writer.close()
                writer, file_no, in_file = None, file_no + 1, 0
            done += t.num_rows
            k += 1
    if writer is not None:
        writer.close()
    return ds_dir, csv_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="catalog size (repeatable) [10000000]")
    ap.add_argument("--formats", default="parquet,csv")
    ap.add_argument("--scheduler", default="threads")
    ap.add_argument("--chunk-rows", type=int, default=1_000_000)
    ap.add_argument("--file-rows", type=int, default=5_000_000)
    ap.add_argument("--work", default="/tmp/pairminer-bench-scale")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    py = sys.executable
    results = []
    for rows in args.rows or [10_000_000]:
        work = Path(args.work) / str(rows)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            t = time.perf_counter()
            ds_dir, csv_path = generate(rows, args.chunk_rows, args.file_rows, work)
            print(f"== {rows:,} rows: generated in {time.perf_counter() - t:.0f} s "
                  f"(CSV {csv_path.stat().st_size / 2**30:.2f} GiB, Parquet "
                  f"{sum(f.stat().st_size for f in ds_dir.iterdir()) / 2**30:.2f} GiB)", flush=True)
            for fmt in args.formats.split(","):
                path = ds_dir if fmt == "parquet" else csv_path
                scan_s, scan_mib = measure([py, "-c", SCAN_RUNNER, fmt, str(path)])
                out = work / f"out-{fmt}"
                disc_s, disc_mib = measure([py, "-m", "pairminer", "discover", str(path), "-o", str(out),
                                            "--until", "discover", "-q", "--scheduler", args.scheduler])
                rep = json.loads((out / "discover-report.json").read_text())
                fig = {"rows": rows, "format": fmt, "scheduler": args.scheduler,
                       "scan_s": round(scan_s, 2), "scan_tree_rss_mib": round(scan_mib),
                       "discover_s": round(disc_s, 2), "discover_tree_rss_mib": round(disc_mib),
                       "discover_vs_scan": round(disc_s / scan_s, 2),
                       "rows_read": rep["counts"]["rows_read"], "kept": rep["counts"]["kept"],
                       "steps_s": rep["timings_s"]}
                print("  " + json.dumps(fig), flush=True)
                results.append(fig)
                shutil.rmtree(out, ignore_errors=True)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
