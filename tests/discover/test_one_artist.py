"""Issue 24 #5, a one-artist catalog: every row under "Unknown Artist" made the blocked pairs grow with the
catalog's size squared (1M rows: 13.8 GB; 2M: MemoryError). The pairs are now built and scored in bounded
chunks, capped versions use one sorted index (never a window per version), a run whose large artists would
block more than `max_blocked_pairs` stops before any pair is built with the artist to blame, and a capped
version's near miss says so (`block_capped`) rather than claiming a wider window would pair it.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pairminer.cli import main
from pairminer.discover import blocks
from pairminer.discover.catalog import read_catalog
from pairminer.discover.stage import (DiscoverConfig, blocked_pairs_estimate, big_artist_durations,
                                      block_window_score, concat_versions, run_discover, split_partition,
                                      version_side)
from pairminer.errors import CatalogError
from pairminer.report.funnel import near_miss_summary
from pairminer.report.load import load_outputs
from pairminer.testing import make_catalog, write_catalog_csv


def _one_artist_csv(path, n_rows: int, seed: int = 5) -> str:
    cat = make_catalog(n_rows, seed=seed).catalog
    cat["artist"] = "Unknown Artist"
    write_catalog_csv(cat, str(path))
    return str(path)


def _block_inputs(path: str, cfg: DiscoverConfig):
    part = read_catalog(path).table
    det = split_partition(part, cfg.detector())
    side = version_side(concat_versions([det]), cfg, 0.0)
    return part, det, side


def _peak_mib(fn) -> tuple[float, object]:
    tracemalloc.start()
    try:
        out = fn()
        return tracemalloc.get_traced_memory()[1] / 2**20, out
    finally:
        tracemalloc.stop()


def test_one_artist_block_memory_is_bounded_by_the_chunk(tmp_path, monkeypatch):
    # 80k rows of one artist: ~1,400 versions x ~700 originals in each window = 930k pairs. Built at
    # once they took 148 MiB at peak (the old code; 40k rows: 40 MiB, quadratic; 1M rows: 13.8 GB); in
    # chunks of 20,000 pairs the peak is 16 MiB (40k rows: 8 MiB, linear).
    path = _one_artist_csv(tmp_path / "one.csv", 80_000)
    cfg = DiscoverConfig()
    part, det, side = _block_inputs(path, cfg)
    full = block_window_score(part, det, side, cfg)
    assert full["blocked"] > 900_000 and full["capped_versions"].size == 0
    monkeypatch.setattr(blocks, "_CHUNK_PAIRS", 20_000)
    peak, res = _peak_mib(lambda: block_window_score(part, det, side, cfg))
    assert peak < 40, f"peak {peak:.1f} MiB for {res['blocked']:,} blocked pairs"
    # the chunks change nothing: the same counts and the same pairs
    assert (res["blocked"], res["within"], res["above"]) == (full["blocked"], full["within"], full["above"])
    key = ["version_row", "mix_track_id"]
    pd.testing.assert_frame_equal(res["pairs"].sort_values(key).reset_index(drop=True),
                                  full["pairs"].sort_values(key).reset_index(drop=True))


def test_capped_versions_memory_is_linear(tmp_path):
    # Nearly every version capped (a window over 50 originals): the old code kept a sorted copy of each
    # distinct window (1,344 x ~700 entries: 132 MiB at peak at 80k rows, 34 MiB at 40k); one sorted
    # index is linear in the partition (25 MiB; 13 MiB at 40k).
    path = _one_artist_csv(tmp_path / "one.csv", 80_000)
    cfg = DiscoverConfig(max_block_comparisons=50)
    part, det, side = _block_inputs(path, cfg)
    peak, res = _peak_mib(lambda: block_window_score(part, det, side, cfg))
    assert res["capped_versions"].size > 0.9 * len(side["row"])
    assert res["blocked"] <= 64 * res["capped_versions"].size + 50 * len(side["row"])
    assert peak < 40, f"peak {peak:.1f} MiB"


def test_blocked_pairs_cap_stops_before_any_pair_with_the_artist_to_blame(tmp_path, monkeypatch):
    path = _one_artist_csv(tmp_path / "one.csv", 40_000)
    res = run_discover(path, tmp_path / "ok", DiscoverConfig(), progress=False)
    blocked = res.counts["blocked_pairs"]
    # the pre-count is the count the block step makes (every row is one large artist)
    cfg = DiscoverConfig()
    part, det, side = _block_inputs(path, cfg)
    est, rows = blocked_pairs_estimate(side, [big_artist_durations(part, det["artist_keys"], ~det["is_version"])], cfg)
    assert est == blocked and rows[0][0] == "unknown artist"
    called = []
    orig = blocks._score_chunk

    def spy(*a, **k):
        called.append(1)
        return orig(*a, **k)

    monkeypatch.setattr(blocks, "_score_chunk", spy)
    with pytest.raises(CatalogError) as e:
        run_discover(path, tmp_path / "capped", DiscoverConfig(max_blocked_pairs=blocked - 1), progress=False)
    monkeypatch.setattr(blocks, "_score_chunk", orig)
    msg = str(e.value)
    assert "'unknown artist'" in msg and f"{blocked:,} pairs" in msg and "max_blocked_pairs" in msg
    assert "--max-blocked-pairs" in msg and "\n" not in msg
    assert not called, "pairs were built before the cap was checked"
    assert not (tmp_path / "capped" / "candidates.parquet").exists()
    # the CLI: one `error:` line, exit 2
    r = CliRunner().invoke(main, ["discover", path, "-o", str(tmp_path / "cli"), "--until", "discover", "-q",
                                  "--max-blocked-pairs", str(blocked - 1)])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: the artist 'unknown artist'"), r.output
    assert DiscoverConfig(max_blocked_pairs=blocked).max_blocked_pairs == blocked
    ok = run_discover(path, tmp_path / "at", DiscoverConfig(max_blocked_pairs=blocked), progress=False)
    assert ok.counts["blocked_pairs"] == blocked


def test_one_artist_counts_add_up(tmp_path, monkeypatch):
    monkeypatch.setattr(blocks, "_CHUNK_PAIRS", 10_000)
    path = _one_artist_csv(tmp_path / "one.csv", 20_000)
    with open(path, "a") as f:
        f.write("bad1,Unknown Artist,,200,Pop,\nbad2,Unknown Artist,Song,-1,Pop,\n")
    res = run_discover(path, tmp_path / "out", DiscoverConfig(max_block_comparisons=100), progress=False)
    k = res.counts
    assert k["rows_rejected"] == 2 and k["rows_read"] == k["rows_used"] + k["rows_rejected"]
    assert k["rows_used"] == k["originals"] + k["versions"]
    assert k["versions"] == k["kept"] + k["near_misses"]
    assert sum(k["near_misses_by_reason"].values()) == k["near_misses"]
    assert k["blocked_pairs"] >= k["within_window"] >= k["above_score"] >= k["kept"] > 0
    assert k["capped_versions"] > 0 and k["near_misses_by_reason"]["block_capped"] > 0


def _capped_typo_catalog(path) -> str:
    """3,000 originals of one artist within 1 s of each other, and a version with a typo at exactly its
    original's duration: its window holds 3,000 originals, over max_block_comparisons=100."""
    rng = np.random.default_rng(0)
    rows = [(f"o{i:05d}", "Unknown Artist", f"Track {i:05d} Song", round(200 + float(rng.uniform(-0.5, 0.5)), 3))
            for i in range(3000)]
    rows += [("o-src", "Unknown Artist", "Midnight Harbour Lights", 200.123),
             ("v-typo", "Unknown Artist", "Midnight Harbur Lights (Instrumental)", 200.123),
             ("o-far", "Lone Artist", "Paper Boats", 180.0), ("v-far", "Lone Artist", "Paper Boats (Instrumental)", 185.0)]
    pd.DataFrame(rows, columns=["track_id", "artist", "title", "duration"]).to_csv(path, index=False)
    return str(path)


def test_capped_near_misses_are_block_capped_not_over_the_window(tmp_path):
    path = _capped_typo_catalog(tmp_path / "typo.csv")
    out = tmp_path / "out"
    res = run_discover(path, out, DiscoverConfig(max_block_comparisons=100), progress=False)
    nm = pd.read_parquet(out / "near_misses.parquet").set_index("version_track_id")
    assert res.counts["capped_versions"] == 1
    # the typo was never scored against its original (exact base title only): not a duration problem
    assert nm.loc["v-typo", "reason"] == "block_capped"
    assert nm.loc["v-far", "reason"] == "delta_over_window" and nm.loc["v-far", "delta_s"] == pytest.approx(5.0)
    assert res.counts["near_misses_by_reason"]["block_capped"] == 1
    assert res.counts["near_misses_by_reason"]["delta_over_window"] == 1
    # the report's "a wider window would add" counts the real delta-over-window miss only (5 s: at 5x)
    summary = near_miss_summary(load_outputs(str(out)))
    assert [w["pairs_added"] for w in summary["window"]["wider"]] == [0, 0, 0, 0]
    assert summary["by_reason"]["block_capped"] == 1
    # uncapped, the same typo pairs: the cap, not the window, kept it apart
    res2 = run_discover(path, tmp_path / "uncapped", DiscoverConfig(), progress=False)
    assert res2.counts["kept"] == 1 and res2.counts["capped_versions"] == 0


def test_report_window_claim_ignores_misses_inside_the_window(tmp_path):
    # a near_misses.parquet written by the old code: "delta_over_window" at delta 0 (a capped typo)
    path = _capped_typo_catalog(tmp_path / "typo.csv")
    out = tmp_path / "out"
    run_discover(path, out, DiscoverConfig(max_block_comparisons=100), progress=False)
    nm = pd.read_parquet(out / "near_misses.parquet")
    nm.loc[nm["version_track_id"] == "v-typo", ["reason", "delta_s", "over_window_s"]] = ["delta_over_window", 0.0, 0.0]
    nm.to_parquet(out / "near_misses.parquet")
    summary = near_miss_summary(load_outputs(str(out)))
    assert summary["by_reason"]["delta_over_window"] == 2
    assert [w["pairs_added"] for w in summary["window"]["wider"]] == [0, 0, 0, 0]
