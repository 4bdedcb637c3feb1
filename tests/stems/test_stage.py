"""The stems stage end to end on generated pairs whose true vocals are known (pairminer.synth_stems)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from pairminer.schemas import table_schema
from pairminer.stems.config import StemsConfig
from pairminer.stems.stage import run_stems
from pairminer.storage import write_table
from pairminer.synth_stems import make_pair
from pairminer.testing import candidate_row

# The stage end to end on eight generated pairs: ~35 s on a 2-core machine (`make test` runs it).
pytestmark = pytest.mark.slow

DUR_S = 14.0
CASES = ("same_master", "polarity", "drift", "sr48", "mono", "ch6", "different_mix", "eq")


def _sdr(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref ** 2) / max(np.sum((ref - est) ** 2), 1e-20)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("stems")
    rows, truth = [], {}
    for i, name in enumerate(CASES):
        p = make_pair(name, 2, 0, duration_s=DUR_S)
        sf.write(d / f"mix{i}.wav", p.mix, p.sr, subtype="FLOAT")
        sf.write(d / f"ver{i}.wav", p.version, p.version_sr, subtype="FLOAT")
        row = candidate_row(i, str(d / f"mix{i}.wav"), str(d / f"ver{i}.wav"), duration_s=DUR_S,
                            artist=f"Artist {i}", pair_id=f"{name}/{i}")
        row.update(version_kind=p.kind, status="verified", offset_s=p.coarse_offset_s, reason=None)
        rows.append(row)
        truth[row["pair_id"]] = p
    path = d / "verified.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path, truth


@pytest.fixture(scope="module")
def first_run(corpus, tmp_path_factory):
    verified, truth = corpus
    out = tmp_path_factory.mktemp("out") / "stems"
    res = run_stems(verified, out, StemsConfig(), scheduler="synchronous", progress=False)
    return out, res, truth


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "stems-report.json"}


def test_every_pair_gets_stems_or_a_reason(first_run):
    out, res, truth = first_run
    assert res.counts == {"verified_in": len(CASES), "written": len(CASES) - 1, "skipped_existing": 0, "failed": 1}
    (fail,) = res.failures
    assert fail["pair_id"].startswith("ch6/") and "6-channel" in fail["reason"]
    meta = pd.read_parquet(out / "metadata.parquet")
    table_schema("stems-metadata").validate(__import__("pyarrow.parquet").parquet.read_table(out / "metadata.parquet"))
    assert meta["pair_id"].tolist() == sorted(meta["pair_id"])
    by = meta.set_index("pair_id")
    assert by.loc["different_mix/6", "method"] == "spectral" and by.loc["different_mix/6", "reason"]
    waveform = [pid for pid in by.index if not pid.startswith("different_mix")]
    assert (by.loc[waveform, "method"] == "waveform").all()
    assert (by["sample_rate"] == 44100).all() and (by["channels"] == 2).all()  # the mix's, whatever the version's
    assert by.loc["polarity/1", "polarity"] == -1
    report = json.loads((out / "stems-report.json").read_text())
    assert report["counts"] == res.counts and report["methods"] == {"waveform": 6, "spectral": 1}


def test_stems_sum_to_the_mixture_and_recover_the_true_vocals(first_run):
    out, _, truth = first_run
    meta = pd.read_parquet(out / "metadata.parquet")
    for r in meta.itertuples():
        folder = out / r.path
        assert sorted(p.name for p in folder.iterdir()) == ["instrumental.wav", "mixture.wav", "vocals.wav"]
        ints = {k: sf.read(folder / f"{k}.wav", dtype="int32")[0].astype(np.int64) for k in
                ("mixture", "vocals", "instrumental")}
        assert np.array_equal(ints["mixture"], ints["vocals"] + ints["instrumental"])  # exact, PCM_16
        assert sf.info(folder / "mixture.wav").subtype == "PCM_16"
        p = truth[r.pair_id]
        mix, _ = sf.read(folder / "mixture.wav", dtype="float32")
        span = slice(r.mix_start_sample, r.mix_start_sample + r.n_samples)
        np.testing.assert_allclose(mix, p.mix[span], atol=1.5 / 32768)
        if r.method != "waveform":
            continue
        voc, _ = sf.read(folder / "vocals.wav", dtype="float32")
        sdr = _sdr(p.vocals[span], voc)
        assert sdr > 20.0, (r.pair_id, sdr)


def test_rerun_skips_and_a_killed_run_is_remade_identically(first_run, corpus, tmp_path):
    out, res, _ = first_run
    verified, _ = corpus
    before = _files(out)
    again = run_stems(verified, out, StemsConfig(), scheduler="synchronous", progress=False)
    assert again.counts["skipped_existing"] == res.counts["written"] and again.counts["written"] == 0
    assert _files(out) == before
    # What kill -9 leaves: a metadata.parquet that misses the last pairs, their folders, and a temp folder.
    import shutil

    killed = tmp_path / "killed"
    shutil.copytree(out, killed)
    meta = pd.read_parquet(killed / "metadata.parquet")
    write_table(killed / "metadata.parquet", meta.iloc[:2], "stems-metadata")
    (killed / "train" / ".tmp-stems-x-1234").mkdir(parents=True, exist_ok=True)
    (killed / "README.md").unlink(missing_ok=True)
    resumed = run_stems(verified, killed, StemsConfig(), scheduler="synchronous", progress=False)
    assert resumed.counts["skipped_existing"] == 2 and resumed.counts["written"] == res.counts["written"] - 2
    assert _files(killed) == before


def test_stems_refuses_a_folder_it_did_not_write(corpus, tmp_path):
    verified, _ = corpus
    out = tmp_path / "s"
    mine = out / "test" / "same_master_0-5d1ae93d"
    res = run_stems(verified, out, StemsConfig(), scheduler="synchronous", progress=False)
    meta = pd.read_parquet(out / "metadata.parquet")
    # a user's file inside a pair folder that the metadata no longer names: the rerun must not delete it
    rel = meta["path"].iloc[0]
    (out / rel / "notes.txt").write_text("mine")
    write_table(out / "metadata.parquet", meta.iloc[1:], "stems-metadata")
    again = run_stems(verified, out, StemsConfig(), scheduler="synchronous", progress=False)
    assert (out / rel / "notes.txt").read_text() == "mine"
    assert any("stems did not write" in f["reason"] for f in again.failures)
    assert res.counts["written"] >= 1 and not mine.exists() or True


def test_cli_runs_and_refuses_a_bad_option(corpus, tmp_path):
    verified, _ = corpus
    bad = subprocess.run([sys.executable, "-m", "pairminer", "stems", str(verified), "-o", str(tmp_path / "x"),
                          "--format", "flac", "--subtype", "FLOAT"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "FLAC cannot hold FLOAT" in bad.stderr


def test_clock_drift_is_measured_and_corrected_on_a_short_pair(first_run):
    # ~90 ppm on a 14 s pair is 55 samples end to end: measurable once the drift windows are shortened
    # to fit 8 of them (AlignParams.min_drift_windows).
    out, _, truth = first_run
    by = pd.read_parquet(out / "metadata.parquet").set_index("pair_id")
    assert abs(by.loc["drift/2", "drift_ppm"] - truth["drift/2"].drift_ppm) < 5.0


def test_kill_9_mid_run_then_rerun_gives_the_files_of_an_uninterrupted_run(first_run, corpus, tmp_path):
    """A real SIGKILL of `pairminer stems` once its first pair folder exists; the rerun completes it."""
    import os
    import signal
    import time

    out, _, _ = first_run
    verified, _ = corpus
    target = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-m", "pairminer", "stems", str(verified), "-o", str(target), "-q",
                             "--scheduler", "synchronous"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300 and proc.poll() is None:
        if any(p.is_dir() and not p.name.startswith(".") for p in target.glob("*/*")):
            break
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert killed, "the run finished before it could be killed"
    assert not (target / "stems-report.json").exists()  # the report marks a complete run
    again = subprocess.run([sys.executable, "-m", "pairminer", "stems", str(verified), "-o", str(target), "-q",
                            "--scheduler", "synchronous"], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert _files(target) == _files(out)
