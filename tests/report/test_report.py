"""Tests of `pairminer report`: funnel arithmetic, genre table, missing stages, HTML in Chromium, CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from pairminer import storage as pio
from pairminer.cli import main
from pairminer.errors import ConfigError, InputError
from pairminer.report.stage import (
    ReportConfig,
    genre_breakdown,
    genre_key,
    round_to_total,
    run_report,
    split_genres,
)
from pairminer.schemas import json_schema
from pairminer.testing.report import (CATALOG_ROWS, N_VERSIONS, NASTY, REJECTED, STATUS, console_lines, make_out,
                                      run_chromium)

@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    out = make_out(tmp_path_factory.mktemp("out"))
    rep = out / "report"
    return out, run_report(str(out), str(rep), ReportConfig(top_n=3), progress=False)


# ---------------------------------------------------------------------------------------------------
# Funnel
# ---------------------------------------------------------------------------------------------------


def test_funnel_arithmetic(full_report):
    out, res = full_report
    f = {s["key"]: s for s in res.funnel}
    cands = pd.read_parquet(out / "candidates.parquet")
    ver = pd.read_parquet(out / "verified.parquet")
    assert f["catalog_rows"]["count"] == CATALOG_ROWS
    assert f["rejected"]["count"] == REJECTED
    assert f["rows_used"]["count"] == CATALOG_ROWS - REJECTED
    assert f["versions"]["count"] == N_VERSIONS
    assert f["versions:instrumental"]["count"] == 10 and f["versions:acapella"]["count"] == 2
    assert f["candidates"]["count"] == len(cands)
    for st_ in ("verified", "too_similar", "too_different", "error"):
        assert f[st_]["count"] == int((ver["status"] == st_).sum())
        assert f[st_]["parent"] == "candidates"
        assert f[st_]["pct_of_parent"] == pytest.approx(100 * f[st_]["count"] / len(cands))
    assert f["targets"]["count"] == pd.read_parquet(out / "targets" / "manifest.parquet")["pair_id"].nunique() == 4
    assert f["targets"]["pct_of_parent"] == pytest.approx(100 * 4 / f["verified"]["count"])
    assert f["candidates"]["pct_of_catalog"] == pytest.approx(100 * len(cands) / CATALOG_ROWS)
    assert f["rejected"]["pct_of_parent"] == pytest.approx(100 * REJECTED / CATALOG_ROWS)
    # hours: mix + version durations of the pairs at each step
    pair_h = (cands["mix_duration_s"] + cands["version_duration_s"]) / 3600
    assert f["candidates"]["hours"] == pytest.approx(pair_h.sum())
    ok = (ver["status"] == "verified").to_numpy()
    assert f["verified"]["hours"] == pytest.approx(pair_h[ok].sum())
    tp = set(pd.read_parquet(out / "targets" / "manifest.parquet")["pair_id"])
    assert f["targets"]["hours"] == pytest.approx(pair_h[cands["pair_id"].isin(tp)].sum())
    assert f["catalog_rows"]["hours"] == 1.9
    assert f["rejected"]["hours"] is None
    doc = json.loads(Path(res.json_path).read_text())
    assert doc["checks"] and all(c["ok"] for c in doc["checks"])
    assert doc["funnel"] == json.loads(json.dumps(res.funnel))


def test_funnel_checks_flag_counts_that_do_not_add_up(tmp_path):
    out = make_out(tmp_path / "out", stages=("discover",))
    doc = json.loads((out / "discover-report.json").read_text())
    doc["counts"]["rows_rejected"] = REJECTED + 1  # now rejected + used != read
    (out / "discover-report.json").write_text(json.dumps(doc))
    res = run_report(str(out), str(tmp_path / "rep"), progress=False)
    checks = json.loads(Path(res.json_path).read_text())["checks"]
    bad = [c for c in checks if not c["ok"]]
    assert [c["name"] for c in bad] == ["rejected + usable = catalog rows"]
    assert "✗" in Path(res.html_path).read_text(encoding="utf-8")


def test_funnel_from_json_only_when_tables_are_missing(tmp_path):
    out = make_out(tmp_path / "out", stages=("discover", "verify"))
    (out / "candidates.parquet").unlink()
    (out / "verified.parquet").unlink()
    res = run_report(str(out), str(tmp_path / "rep"), progress=False)
    f = {s["key"]: s for s in res.funnel}
    assert f["candidates"]["count"] == 10 and f["candidates"]["hours"] == pytest.approx(1.0)
    assert f["verified"]["count"] == 6 and f["verified"]["source"] == "verify-report.json"
    assert res.genre_stage is None and res.genre_table.empty


# ---------------------------------------------------------------------------------------------------
# Genre table
# ---------------------------------------------------------------------------------------------------


def _pairs(genres, seconds=None):
    return pd.DataFrame({"genre": pd.Series(genres, dtype=object),
                         "pair_s": seconds if seconds is not None else [3600.0] * len(genres)})


def test_genre_percentages_other_and_unknown():
    genres = ["Pop"] * 5 + ["Rap"] * 3 + ["Rock"] * 2 + ["Jazz", "Folk"] + [None, "", "  "]
    secs = list(np.arange(1, len(genres) + 1) * 600.0)
    t = genre_breakdown(_pairs(genres, secs), top_n=3)
    assert t["genre"].tolist() == ["Pop", "Rap", "Rock", "Other", "Unknown"]
    assert t["pairs"].tolist() == [5, 3, 2, 2, 3]
    assert t["n_genres"].tolist() == [1, 1, 1, 2, 0]
    total = len(genres)
    for r in t.itertuples():
        assert abs(r.pct_pairs - 100 * r.pairs / total) <= 0.1 + 1e-9
    assert round(t["pct_pairs"].sum(), 9) == 100.0 and round(t["pct_hours"].sum(), 9) == 100.0
    s = pd.Series(secs) / 3600
    assert t.loc[t.genre == "Pop", "hours"].item() == pytest.approx(s[:5].sum())
    assert t.loc[t.genre == "Other", "hours"].item() == pytest.approx(s[10:12].sum())
    assert t.loc[t.genre == "Unknown", "hours"].item() == pytest.approx(s[12:].sum())
    assert t["rank"].tolist() == [1, 2, 3, 4, 5]


def test_genre_percentages_sum_to_100_with_rounding():
    t = genre_breakdown(_pairs(["A", "B", "C"]), top_n=5)
    assert sorted(t["pct_pairs"].tolist()) == [33.3, 33.3, 33.4]
    assert round(t["pct_pairs"].sum(), 9) == 100.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=30))
def test_round_to_total_property(values):
    pct = round_to_total(np.array(values))
    if sum(values) > 0:
        assert round(pct.sum(), 6) == 100.0
        exact = 100 * np.array(values) / sum(values)
        assert np.all(np.abs(pct - exact) < 0.1 + 1e-6)
    else:
        assert not pct.any()


def test_genre_normalisation_and_display():
    t = genre_breakdown(_pairs(["pop", " Pop ", "POP", "Hip-Hop", "hip  hop", "hip_hop", "Drum and Bass",
                                "drum & bass", "hip hop"]), top_n=10)
    # the most frequent spelling ("hip hop" twice, after whitespace clean-up), title-cased when all lower;
    # on a tie a mixed-case spelling wins ("Pop" over "pop" and "POP")
    assert t["genre"].tolist() == ["Hip Hop", "Pop", "Drum and Bass"]
    assert t["genre_key"].tolist() == ["hip hop", "pop", "drum & bass"]
    assert t["pairs"].tolist() == [4, 3, 2]
    assert genre_key("  Rhythm And  Blues ") == genre_key("rhythm & blues")
    assert genre_breakdown(_pairs(["techno"]))["genre"].item() == "Techno"
    assert genre_breakdown(_pairs(["EDM", "EDM"]))["genre"].item() == "EDM"


def test_catalog_genre_called_other_folds_into_other():
    t = genre_breakdown(_pairs(["Pop", "Pop", "other", "Rap"]), top_n=5)
    assert t["genre"].tolist() == ["Pop", "Rap", "Other"]
    assert t.loc[t.genre == "Other", "pairs"].item() == 1


def test_genre_multi_valued_first_and_split():
    genres = ["Pop; Rock", "Rock|Jazz", ["Rap", "Pop"], "Pop", "pop; POP", np.array(["Jazz", "Soul", "Funk"])]
    first = genre_breakdown(_pairs(genres), top_n=10, mode="first")
    assert dict(zip(first.genre, first.pairs)) == {"Pop": 3, "Rock": 1, "Rap": 1, "Jazz": 1}
    split = genre_breakdown(_pairs(genres), top_n=10, mode="split")
    got = dict(zip(split.genre, split.pairs))
    want = {"Pop": 0.5 + 0.5 + 1 + 1, "Rock": 1.0, "Jazz": 0.5 + 1 / 3, "Rap": 0.5, "Soul": 1 / 3, "Funk": 1 / 3}
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k])
    assert split["pairs"].sum() == pytest.approx(len(genres))
    assert split["hours"].sum() == pytest.approx(len(genres))
    assert round(split["pct_pairs"].sum(), 9) == 100.0
    assert split_genres("a, b") == ["a, b"]  # the comma is part of names like "Folk, World, & Country"
    assert split_genres("a, b", (",",)) == ["a", "b"]
    assert split_genres(float("nan")) == [] and split_genres(None) == []


def test_genre_table_files_match_schema(full_report):
    out, res = full_report
    table = pio.read_table(res.genre_parquet_path, "genre-breakdown").to_pandas()
    assert "pct_pairs" in table and round(table["pct_pairs"].sum(), 6) == 100.0
    csv = pd.read_csv(res.genre_csv_path)
    assert csv["genre"].tolist() == table["genre"].tolist()
    assert np.allclose(csv["pct_pairs"], table["pct_pairs"])
    # targets ran, so the table counts the pairs with targets (4 pairs), their genre from the manifest
    assert res.genre_stage == "targets" and set(table["stage"]) == {"targets"}
    assert table["pairs"].sum() == 4
    man = pd.read_parquet(out / "targets" / "manifest.parquet").drop_duplicates("pair_id")
    firsts = [split_genres(g)[0] if split_genres(g) else "Unknown" for g in man["genre"]]
    assert sorted(table["genre_key"]) == sorted({genre_key(g) for g in firsts})


def test_genre_stage_falls_back_to_verified_then_candidates(tmp_path):
    out = make_out(tmp_path / "out", stages=("discover", "verify"))
    res = run_report(str(out), str(tmp_path / "rep"), ReportConfig(top_n=20), progress=False)
    assert res.genre_stage == "verified" and res.genre_table["pairs"].sum() == STATUS.count("verified")
    (out / "verified.parquet").unlink()
    (out / "verify-report.json").unlink()
    res = run_report(str(out), str(tmp_path / "rep"), ReportConfig(top_n=20), progress=False)
    assert res.genre_stage == "candidates" and res.genre_table["pairs"].sum() == 10
    t = res.genre_table.set_index("genre")
    assert t.loc["Pop", "pairs"] == 3 and t.loc["Unknown", "pairs"] == 2  # None and ""
    assert t.loc["Dance & House", "pairs"] == 1  # "Dance & House; Pop": the first value
    assert t.loc["Rock", "pairs"] == 2 and t.loc["Rock", "genre_key"] == "rock"


# ---------------------------------------------------------------------------------------------------
# Missing stages, bad inputs, report.json
# ---------------------------------------------------------------------------------------------------


def test_missing_stages_are_reported_gracefully(tmp_path):
    out = make_out(tmp_path / "out", stages=("discover",))
    res = run_report(str(out), str(tmp_path / "rep"), progress=False)
    assert res.stages_present == ("discover",)
    page = Path(res.html_path).read_text(encoding="utf-8")
    assert "verify has not run" in page and "targets has not run" in page
    assert "discover has not run" not in page
    doc = json.loads(Path(res.json_path).read_text())
    json_schema("report").validate(doc)
    assert doc["stages"]["verify"]["present"] is False
    assert "verified.parquet" in doc["stages"]["verify"]["missing"]
    assert sorted(doc["plots"]) == ["duration_delta", "funnel", "genre_breakdown", "title_score"]
    assert {s["key"] for s in res.funnel}.isdisjoint({"verified", "targets"})
    assert set(doc["examples"]) == {"candidate"}


def test_unreadable_file_is_recorded_not_fatal(tmp_path):
    out = make_out(tmp_path / "out", stages=("discover", "verify"))
    (out / "verify-report.json").write_text("{not json")
    res = run_report(str(out), str(tmp_path / "rep"), progress=False)
    doc = json.loads(Path(res.json_path).read_text())
    assert doc["stages"]["verify"]["problems"] and "not valid JSON" in doc["stages"]["verify"]["problems"][0]
    assert {s["key"]: s["count"] for s in res.funnel}["verified"] == STATUS.count("verified")  # still from verified.parquet


def test_empty_or_missing_out_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        run_report(str(tmp_path / "nope"), str(tmp_path / "rep"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="pairminer discover"):
        run_report(str(tmp_path / "empty"), str(tmp_path / "rep"))


def test_config_checks_and_yaml_round_trip():
    with pytest.raises(ConfigError, match="top_n"):
        ReportConfig.from_dict({"top_n": 0})
    with pytest.raises(ConfigError, match="genre_mode"):
        ReportConfig.from_dict({"genre_mode": "all"})
    with pytest.raises(ConfigError, match="top_n"):
        ReportConfig.from_dict({"top": 3})
    cfg = ReportConfig(top_n=4, genre_mode="split", genre_separators=(";", ","))
    assert ReportConfig.from_yaml(cfg.to_yaml()) == cfg


def test_report_json_has_the_same_numbers(full_report):
    out, res = full_report
    doc = json.loads(Path(res.json_path).read_text())
    json_schema("report").validate(doc)
    g = doc["genre_breakdown"]
    assert g["stage"] == "targets" and g["top_n"] == 3
    assert [r["genre"] for r in g["rows"]] == res.genre_table["genre"].tolist()
    assert [r["pct_pairs"] for r in g["rows"]] == res.genre_table["pct_pairs"].tolist()
    assert set(doc["examples"]) == {"verified", "too_similar", "too_different", "error"}
    assert len(doc["examples"]["verified"]) == 6 and len(doc["examples"]["error"]) == 1
    assert doc["stages"]["verify"]["config"] == {"max_ber": 0.35, "min_ber": 0.05}
    assert sorted(doc["plots"]) == sorted(res.plot_paths) == [
        "ber_by_status", "duration_delta", "funnel", "genre_breakdown", "title_score", "vocal_energy_ratio"]
    for path in res.plot_paths.values():
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained_and_escaped(full_report):
    _, res = full_report
    page = Path(res.html_path).read_text(encoding="utf-8")
    assert NASTY not in page and "&lt;script&gt;" in page
    assert page.count("<script") == 0
    assert "http://" not in page and "https://" not in page and "url(" not in page
    assert page.count('src="data:image/png;base64,') == len(res.plot_paths)
    for label in ("Funnel", "Genre breakdown", "Example pairs", "Configs and versions", "max_ber"):
        assert label in page


# ---------------------------------------------------------------------------------------------------
# The page in headless Chromium
# ---------------------------------------------------------------------------------------------------


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
    reason="Chromium is not installed (make test installs Debian's chromium)",
)


@needs_chromium
def test_console_check_catches_errors(tmp_path):
    """The console scan below is able to fail: a page with a script error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body>x<script>console.error('boom'); notDefined();</script></body></html>")
    proc = run_chromium([f"--screenshot={tmp_path / 'bad.png'}", "--window-size=300,200", bad.as_uri()], tmp_path)
    lines = console_lines(proc.stderr)
    assert any("boom" in ln for ln in lines) and any("notDefined" in ln for ln in lines), proc.stderr[-2000:]


@needs_chromium
def test_html_renders_in_headless_chromium(full_report, tmp_path):
    _, res = full_report
    url = Path(res.html_path).resolve().as_uri()
    shot = tmp_path / "shot.png"
    proc = run_chromium([f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", url], tmp_path)
    assert not console_lines(proc.stderr), console_lines(proc.stderr)
    assert shot.exists(), proc.stderr[-2000:]
    from matplotlib.image import imread

    img = imread(shot)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200, f"screenshot looks blank ({len(colours)} colours)"
    dom = run_chromium(["--dump-dom", url], tmp_path).stdout
    assert "Genre breakdown" in dom and "&lt;script&gt;" in dom
    assert "pwned" not in dom.split("<title>")[1].split("</title>")[0]
    assert dom.count("<img") == len(res.plot_paths)


# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------


def test_cli_report(tmp_path):
    out = make_out(tmp_path / "out", stages=("discover", "verify"))
    rep = tmp_path / "rep"
    r = CliRunner().invoke(main, ["report", str(out), "-o", str(rep), "--top-n", "2", "--genre-mode", "split"])
    assert r.exit_code == 0, r.output
    assert "Genre breakdown (verified)" in r.output and "Other" in r.output and "% pairs" in r.output
    assert "Catalog rows" in r.output and "report.html" in r.output
    t = pd.read_parquet(rep / "genre_breakdown.parquet")
    assert len(t) == 4 and t["genre"].tolist()[0] == "Pop" and t["genre"].tolist()[2:] == ["Other", "Unknown"]
    assert t["pairs"].iloc[0] == 2.5  # Pop, " pop " and half of "Dance & House; Pop"
    assert json.loads((rep / "report.json").read_text())["config"]["genre_mode"] == "split"
    assert math.isclose(t["pairs"].sum(), STATUS.count("verified"))


def test_cli_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(main, ["report", str(tmp_path / "missing"), "-o", str(tmp_path / "rep")])
    assert r.exit_code == 2
    assert r.output.startswith("error:") and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path), "-o", str(tmp_path / "rep"), "--top-n", "0"])
    assert r.exit_code == 2 and "top_n" in r.output and "Traceback" not in r.output


def test_targets_only_out_uses_manifest_durations(tmp_path):
    out = make_out(tmp_path / "out", stages=("targets",))
    res = run_report(str(out), str(tmp_path / "rep"), progress=False)
    assert res.stages_present == ("targets",)
    (step,) = res.funnel
    man = pd.read_parquet(out / "targets" / "manifest.parquet").drop_duplicates("pair_id")
    # no verified/candidates table to take mix + version durations from: 2 x the aligned duration_s
    assert step["count"] == len(man) and step["hours"] == pytest.approx(2 * man["duration_s"].sum() / 3600)
    assert res.genre_stage == "targets" and res.genre_table["hours"].sum() == pytest.approx(step["hours"])
    page = Path(res.html_path).read_text(encoding="utf-8")
    assert "discover has not run" in page and "verify has not run" in page


def test_cli_reads_a_yaml_config(tmp_path):
    out = make_out(tmp_path / "out", stages=("discover",))
    cfg = tmp_path / "report.yaml"
    cfg.write_text(ReportConfig(top_n=1, examples_per_status=2).to_yaml())
    r = CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "rep"), "--config", str(cfg), "-q"])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["config"]["top_n"] == 1 and len(doc["examples"]["candidate"]) == 2
    assert [r["genre"] for r in doc["genre_breakdown"]["rows"]] == ["Pop", "Other", "Unknown"]


def test_funnel_counts_near_misses_by_reason(tmp_path):
    out = make_out(tmp_path / "out", stages=("discover",))
    doc = json.loads((out / "discover-report.json").read_text())
    n_cand = len(pd.read_parquet(out / "candidates.parquet"))
    n_near = doc["counts"]["versions"] - n_cand
    doc["counts"]["near_misses"] = n_near
    doc["counts"]["near_misses_by_reason"] = {"delta_over_window": n_near - 1, "score_below_min": 1}
    (out / "discover-report.json").write_text(json.dumps(doc))
    res = run_report(str(out), str(tmp_path / "rep"), progress=False)
    f = {s["key"]: s for s in res.funnel}
    assert f["near_misses"]["count"] == n_near and f["near_misses"]["parent"] == "versions"
    assert f["near_misses:delta_over_window"]["count"] == n_near - 1
    keys = [s["key"] for s in res.funnel]
    assert keys.index("near_misses") < keys.index("candidates")  # verify statuses stay under the candidates
    checks = {c["name"]: c["ok"] for c in json.loads(Path(res.json_path).read_text())["checks"]}
    assert checks["candidates + near misses = versions"] and checks["near misses by reason sum to near misses"]
    # a near-miss count that does not add up is flagged
    doc["counts"]["near_misses"] = n_near + 1
    (out / "discover-report.json").write_text(json.dumps(doc))
    res = run_report(str(out), str(tmp_path / "rep2"), progress=False)
    checks = {c["name"]: c["ok"] for c in json.loads(Path(res.json_path).read_text())["checks"]}
    assert not checks["candidates + near misses = versions"]


def test_a_damaged_manifest_costs_its_sections_not_the_report(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pairminer.report.config import ReportConfig
    from pairminer.report.stage import run_report

    out = make_out(tmp_path / "out")
    man = pd.read_parquet(out / "targets" / "manifest.parquet")
    man["split"] = None  # a damaged manifest: null splits
    pq.write_table(pa.Table.from_pandas(man, preserve_index=False), out / "targets" / "manifest.parquet")
    res = run_report(str(out), str(tmp_path / "rep"), ReportConfig(top_n=3), progress=False)
    doc = json.loads(Path(res.json_path).read_text())
    assert "splits" in doc["section_errors"] and doc["funnel"] and doc["stages"]["targets"]["present"]
    assert "section splits could not be made" in Path(res.html_path).read_text()
    # a section whose code fails outright is recorded the same way
    man["duration_s"] = "not a number"
    man["vocal_energy_ratio"] = [[1.0]] * len(man)
    pq.write_table(pa.Table.from_pandas(man, preserve_index=False), out / "targets" / "manifest.parquet")
    res = run_report(str(out), str(tmp_path / "rep2"), ReportConfig(top_n=3), progress=False)
    doc = json.loads(Path(res.json_path).read_text())
    assert doc["section_errors"] and doc["funnel"]
