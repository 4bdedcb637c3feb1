import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import pairminer.audiopass.driver as audiopass_driver
from pairminer.cli import main
from pairminer.errors import ConfigError, InputError
from pairminer.verify.fingerprint import ITEM_S
from pairminer.storage import read_json, read_table, write_table
from pairminer.schemas import json_schema, table_schema
from pairminer.synth import make_song, shift_and_gain, write_audio
from pairminer.verify.stage import VerifyConfig, error_category, run_verify
from pairminer.testing import candidate_row

SR = 22050
DUR_S = 16.0
VOCAL_DB = -5.0  # a typical mix balance (see data/make_sample.py)
# version file -> expected status
CASES = {
    "inst.flac": "verified",
    "shifted.flac": "verified",
    "copy.flac": "too_similar",
    "unrelated.flac": "too_different",
    "corrupt.flac": "error",
    "missing.flac": "error",
    "silent.wav": "error",
    "short.wav": "error",
}
SHIFT_S, SHIFT_DB = 0.43, -3.0


def _candidate(i: int, mix: str, version: str | None, delta_s: float = 0.0) -> dict:
    return candidate_row(i, mix, version, duration_s=DUR_S, delta_s=delta_s, pair_id=f"m{i}__{version}")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("verify")
    s = make_song(31, DUR_S, sr_hz=SR)
    mix = s.accompaniment + np.float32(10 ** (VOCAL_DB / 20)) * s.vocals
    write_audio(d / "mix.flac", mix, SR, stereo=True)
    write_audio(d / "inst.flac", s.accompaniment, SR, stereo=True)
    write_audio(d / "shifted.flac", shift_and_gain(s.accompaniment, SR, SHIFT_S, SHIFT_DB), SR)
    write_audio(d / "copy.flac", mix, SR)
    write_audio(d / "unrelated.flac", make_song(32, DUR_S, sr_hz=SR, tempo_bpm=s.tempo_bpm).mix, SR)
    data = (d / "inst.flac").read_bytes()
    (d / "corrupt.flac").write_bytes(data[: len(data) // 3])
    write_audio(d / "silent.wav", np.zeros(int(DUR_S * SR), np.float32), SR)
    write_audio(d / "short.wav", mix[: 2 * SR], SR)
    rows = [_candidate(i, "mix.flac", v) for i, v in enumerate(CASES)]
    write_table(d / "candidates.parquet", pd.DataFrame(rows), "candidates")
    return d


@pytest.fixture
def count_decodes(monkeypatch):
    calls: list[str] = []
    real = audiopass_driver.decode

    def counting(path, requests):
        calls.append(path)
        return real(path, requests)

    monkeypatch.setattr(audiopass_driver, "decode", counting)
    return calls


@pytest.fixture(scope="module")
def first_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = run_verify(corpus / "candidates.parquet", out, VerifyConfig(), progress=False)
    return out, result


def _table(path) -> pd.DataFrame:
    return pd.read_parquet(path)


def test_every_case_classified(first_run):
    out, result = first_run
    df = _table(result.verified_path)
    got = dict(zip(df["version_audio_path"], df["status"]))
    assert got == CASES
    assert result.n_candidates == len(CASES) == len(df)
    assert result.n_verified + result.n_too_similar + result.n_too_different + result.n_error == len(df)
    assert (result.n_verified, result.n_too_similar, result.n_too_different, result.n_error) == (2, 1, 1, 4)
    ok = df[df["status"] != "error"]
    assert ok["ber"].notna().all() and ok["overlap_s"].gt(10).all()
    assert df.loc[df["status"] == "verified", "reason"].isna().all()
    assert df.loc[df["status"] == "too_similar", "ber"].item() < 0.02
    assert df.loc[df["status"] == "too_different", "ber"].item() > VerifyConfig().max_ber
    # the second check: copy << instrumental << unrelated
    r = dict(zip(df["version_audio_path"], df["residual_share"]))
    assert r["copy.flac"] < 0.2 and r["copy.flac"] < r["inst.flac"] < r["unrelated.flac"]


def test_offset_and_gain_recovered(first_run):
    df = _table(first_run[1].verified_path).set_index("version_audio_path")
    assert abs(df.loc["shifted.flac", "offset_s"] - SHIFT_S) < ITEM_S
    assert abs(df.loc["inst.flac", "offset_s"]) < ITEM_S
    assert df.loc["shifted.flac", "version_gain_db"] == pytest.approx(SHIFT_DB, abs=2.0)  # coarse: item-aligned bands
    assert abs(df.loc["inst.flac", "version_gain_db"]) < 0.5


def test_errors_name_file_and_reason(first_run):
    out, result = first_run
    df = _table(result.verified_path).set_index("version_audio_path")
    for name, why in [("corrupt.flac", "truncated|corrupt|unreadable"), ("missing.flac", "file not found"),
                      ("silent.wav", "silent"), ("short.wav", "too short")]:
        reason = df.loc[name, "reason"]
        assert reason.startswith("version ") and name in reason
        assert pd.Series([reason]).str.contains(why).item(), reason
    report = read_json(result.report_path)
    assert report["counts"]["errors_by_reason"] == {"unreadable": 1, "file not found": 1, "silent": 1,
                                                    "too short": 1} or sum(
        report["counts"]["errors_by_reason"].values()) == 4
    assert sum(report["counts"]["errors_by_reason"].values()) == report["counts"]["error"] == 4
    assert {"file not found", "silent", "too short"} <= set(report["counts"]["errors_by_reason"])


def test_outputs_match_their_schemas(first_run, corpus):
    out, result = first_run
    table = read_table(result.verified_path, "verified")
    table_schema("verified").validate(table)
    cands = pd.read_parquet(corpus / "candidates.parquet")
    df = table.to_pandas()
    assert list(df["pair_id"]) == list(cands["pair_id"])  # every candidate once, in order
    pd.testing.assert_frame_equal(df[cands.columns], cands)
    report = read_json(result.report_path)
    json_schema("verify-report").validate(report)
    assert report["stage"] == "verify" and report["config"] == VerifyConfig().to_dict()
    c = report["counts"]
    assert c["candidates"] == c["verified"] + c["too_similar"] + c["too_different"] + c["error"] == len(CASES)
    assert report["metadata_confusion_share"] == pytest.approx(1 / 4)
    assert report["hours"]["verified"] == pytest.approx(2 * DUR_S / 3600, rel=0.01)
    assert report["realtime_factor"] > 1
    png = Path(result.plot_path).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    parts = list(Path(result.cache_dir).glob("part-*.parquet"))
    assert parts
    table_schema("fingerprints").validate(read_table(parts[0]))


def test_cache_reuse_decodes_nothing(corpus, tmp_path, count_decodes):
    cache = tmp_path / "cache"
    cfg = VerifyConfig(cache_dir=str(cache))
    r1 = run_verify(corpus / "candidates.parquet", tmp_path / "a", cfg, progress=False)
    # every file decoded exactly once, though mix.flac is in all 8 candidates
    assert sorted(Path(p).name for p in count_decodes) == sorted(
        ["mix.flac"] + [n for n in CASES if n != "missing.flac"])
    assert r1.n_decoded == 5 and r1.n_cached == 0
    count_decodes.clear()
    r2 = run_verify(corpus / "candidates.parquet", tmp_path / "b", cfg, progress=False)
    failed = {Path(p).name for p in count_decodes}
    assert failed == {"corrupt.flac", "silent.wav", "short.wav"}  # bad files are not cached, good ones are
    assert r2.n_decoded == 0 and r2.n_cached == 5
    pd.testing.assert_frame_equal(_table(r1.verified_path), _table(r2.verified_path))
    # another candidates file sharing tracks reuses them too
    count_decodes.clear()
    write_table(tmp_path / "c2.parquet", pd.DataFrame([_candidate(0, str(corpus / "inst.flac"),
                                                                  str(corpus / "copy.flac"))]), "candidates")
    r3 = run_verify(tmp_path / "c2.parquet", tmp_path / "c", cfg, progress=False)
    assert count_decodes == [] and r3.n_cached == 2


def test_cache_invalidated_when_a_file_changes(corpus, tmp_path, count_decodes):
    d = tmp_path / "audio"
    d.mkdir()
    for n in ("mix.flac", "inst.flac"):
        (d / n).write_bytes((corpus / n).read_bytes())
    write_table(d / "c.parquet", pd.DataFrame([_candidate(0, "mix.flac", "inst.flac")]), "candidates")
    cfg = VerifyConfig(cache_dir=str(tmp_path / "cache"))
    run_verify(d / "c.parquet", tmp_path / "o", cfg, progress=False)
    assert len(count_decodes) == 2
    count_decodes.clear()
    os.utime(d / "inst.flac", ns=(1, 1))
    r = run_verify(d / "c.parquet", tmp_path / "o", cfg, progress=False)
    assert [Path(p).name for p in count_decodes] == ["inst.flac"] and r.n_cached == 1


def test_no_cache_leaves_nothing_and_batches_agree(corpus, tmp_path, first_run, count_decodes):
    cfg = VerifyConfig(no_cache=True, batch_pairs=3, pairs_per_task=2)
    r = run_verify(corpus / "candidates.parquet", tmp_path, cfg, progress=False)
    assert r.cache_dir is None and r.n_decoded == 5 and r.n_cached == 0
    assert not any(p.name.startswith(".fingerprint-cache") or p.name == "fingerprint-cache" for p in tmp_path.iterdir())
    # across 3 batches mix.flac is still decoded once (a run-scoped cache)
    assert [Path(p).name for p in count_decodes].count("mix.flac") == 1
    pd.testing.assert_frame_equal(_table(r.verified_path), _table(first_run[1].verified_path))


def test_audio_root_and_escape(corpus, tmp_path):
    write_table(tmp_path / "c.parquet", pd.DataFrame([_candidate(0, "mix.flac", "inst.flac"),
                                                      _candidate(1, "mix.flac", "../../etc/passwd"),
                                                      _candidate(2, "mix.flac", None)]), "candidates")
    r = run_verify(tmp_path / "c.parquet", tmp_path / "o", VerifyConfig(audio_root=str(corpus), no_cache=True),
                   progress=False)
    df = _table(r.verified_path)
    assert list(df["status"]) == ["verified", "error", "error"]
    assert "escapes --audio-root" in df["reason"][1] and "no audio_path" in df["reason"][2]


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        run_verify(tmp_path / "nope.parquet", tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match="min_ber"):
        VerifyConfig(min_ber=0.5, max_ber=0.4)  # refused when built
    with pytest.raises(ConfigError, match="did you mean 'max_ber'"):
        VerifyConfig.from_dict({"max_bre": 0.3})
    assert error_category("x.flac: file not found") == "file not found"
    assert error_category("something odd") == "other"


def test_cli(corpus, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["verify", str(corpus / "candidates.parquet"), "-o", str(tmp_path / "o"), "-q",
                               "--max-ber", "0.36", "--no-cache"])
    assert res.exit_code == 0, res.output
    assert "2 verified, 1 too similar, 1 too different, 4 errors" in res.output
    assert json.loads((tmp_path / "o" / "verify-report.json").read_text())["config"]["max_ber"] == 0.36
    res = runner.invoke(main, ["verify", str(corpus / "candidates.parquet"), "-o", str(tmp_path / "p"),
                               "--min-ber", "0.9"])
    assert res.exit_code == 2 and "Traceback" not in res.output and "min_ber" in res.output
    assert "--max-seconds" in runner.invoke(main, ["verify", "--help"]).output


@pytest.mark.slow
def test_local_cluster_matches_threads(corpus, tmp_path, first_run):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        r = run_verify(corpus / "candidates.parquet", tmp_path, VerifyConfig(no_cache=True),
                       scheduler=cl.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(_table(r.verified_path), _table(first_run[1].verified_path))


def test_a_verified_table_can_be_verified_again(tmp_path):
    """Re-verifying (e.g. with new thresholds) takes verified.parquet as input: extra columns are dropped."""
    from pairminer.verify.stage import VerifyConfig, run_verify

    sample = Path(__file__).resolve().parents[2] / "data" / "sample"
    from pairminer.discover.stage import run_discover

    d = run_discover(sample / "catalog.csv", tmp_path / "d", progress=False)
    first = run_verify(d.candidates_path, tmp_path / "v1", VerifyConfig(), progress=False)
    again = run_verify(first.verified_path, tmp_path / "v2", VerifyConfig(max_ber=0.5, min_peak_ratio=0.0),
                       progress=False)
    a = pd.read_parquet(first.verified_path).set_index("pair_id")
    b = pd.read_parquet(again.verified_path).set_index("pair_id")
    assert list(a.index) == list(b.index)
    # a looser max_ber turns the too_different pair into a verified one, and nothing else changes status
    changed = a.index[a["status"] != b["status"]].tolist()
    assert all(a.loc[p, "status"] == "too_different" and b.loc[p, "status"] == "verified" for p in changed)
    assert len(changed) == (a["status"] == "too_different").sum() >= 1
