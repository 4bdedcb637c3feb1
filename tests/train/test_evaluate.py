"""Evaluation: known answers on a constructed case (perfect estimate, mixture, IRM oracle), JSON, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from pairminer.cli import main
from pairminer.schemas import json_schema
from pairminer.train.evaluate import bss_eval, irm_estimates, run_evaluate

SR = 8000


def _stems(seed: int, seconds: float = 4.0):
    """A 'voice' (vibrato harmonics, phrases) and an 'accompaniment' (noise bursts + bass) at equal power."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    f0 = 220 * 2 ** (rng.integers(0, 5) / 12) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voc = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    acc = 0.5 * np.sin(2 * np.pi * 55 * t) + rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 2 * t) > 0.3)
    acc *= np.sqrt(np.mean(voc**2) / np.mean(acc**2))
    return voc.astype(np.float32) * 0.3, acc.astype(np.float32) * 0.3


def test_known_answers_for_perfect_mixture_and_oracle():
    voc, acc = _stems(0)
    refs = {"vocals": voc, "instrumental": acc}
    perfect = bss_eval(refs, refs, SR)
    assert perfect["vocals"]["SDR"] > 60 and perfect["instrumental"]["SDR"] > 60
    mix = voc + acc
    mixture = bss_eval(refs, {"vocals": mix, "instrumental": mix}, SR)
    # With equal-power sources, the mixture's vocal SDR is about 0 dB (the accompaniment is the error).
    assert abs(mixture["vocals"]["SDR"]) < 2.0 and mixture["vocals"]["SIR"] < 2.0
    irm = irm_estimates(refs, SR, model_sr_hz=SR, n_fft=512, hop=384)
    assert irm["vocals"].shape == voc.shape
    oracle = bss_eval(refs, irm, SR)
    assert mixture["vocals"]["SDR"] + 6 < oracle["vocals"]["SDR"] < perfect["vocals"]["SDR"]


def _write_track(folder, voc, acc, sr=SR, inst_name="instrumental.wav"):
    folder.mkdir(parents=True)
    sf.write(folder / "vocals.wav", voc, sr, subtype="FLOAT")
    sf.write(folder / inst_name, acc, sr, subtype="FLOAT")


def test_evaluate_cli_and_json(tmp_path):
    refs, ests = tmp_path / "refs", tmp_path / "est"
    for i in range(3):
        voc, acc = _stems(i)
        _write_track(refs / f"track{i}", voc, acc, inst_name="accompaniment.wav" if i == 1 else "instrumental.wav")
        noisy = voc + 0.1 * acc  # estimate with a known leak: SIR about 20 dB
        (ests / f"track{i}").mkdir(parents=True)
        sf.write(ests / f"track{i}" / "vocals.wav", noisy, SR, subtype="FLOAT")  # instrumental derived
    (refs / "no_inst").mkdir()
    sf.write(refs / "no_inst" / "vocals.wav", voc, SR)
    _write_track(refs / "no_estimate", voc, acc)
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(main, ["evaluate", str(ests), str(refs), "-o", str(out), "--oracle", "irm", "-q"])
    assert res.exit_code == 0, res.output
    assert "method" in res.output and "irm" in res.output and "3 of 5 track(s) scored" in res.output
    doc = json.loads(out.read_text())
    json_schema("evaluate-report").validate(doc)
    assert doc["counts"] == {"tracks": 5, "scored": 3, "skipped": 2}
    reasons = {s["track"]: s["reason"] for s in doc["skipped"]}
    assert "instrumental" in reasons["no_inst"] and "no estimates" in reasons["no_estimate"]
    med = doc["medians"]
    assert set(med) == {"model", "mixture", "irm", "irm_fullband"} and med["model"]["vocals"]["n_tracks"] == 3
    assert 15 < med["model"]["vocals"]["SDR"] < 25  # voc + 0.1 acc -> about 20 dB
    assert med["model"]["vocals"]["SDR"] > med["mixture"]["vocals"]["SDR"] + 10
    assert len(doc["scores"]) == 3 * 4 * 2  # tracks x methods x sources
    per_track = [r["SDR"] for r in doc["scores"] if r["method"] == "model" and r["source"] == "vocals"]
    assert med["model"]["vocals"]["SDR"] == pytest.approx(float(np.median(per_track)), abs=1e-3)


def test_evaluate_mismatched_rate_is_skipped(tmp_path):
    voc, acc = _stems(3, seconds=2.0)
    _write_track(tmp_path / "refs" / "a", voc, acc)
    _write_track(tmp_path / "est" / "a", voc, acc, sr=16000)
    res = run_evaluate(tmp_path / "est", tmp_path / "refs", tmp_path / "e.json", progress=False)
    assert res.n_scored == 0 and "16000 Hz" in res.skipped[0]["reason"]
    bad = CliRunner().invoke(main, ["evaluate", str(tmp_path / "nope"), str(tmp_path / "refs"), "-o",
                                    str(tmp_path / "x.json"), "-q"])
    assert bad.exit_code == 2 and "not a folder" in bad.output


def test_empty_reference_folder_is_a_clear_error(tmp_path):
    from pairminer.errors import InputError
    from pairminer.train.evaluate import run_evaluate

    (tmp_path / "est").mkdir()
    (tmp_path / "ref").mkdir()
    with pytest.raises(InputError, match="no track folders"):
        run_evaluate(tmp_path / "est", tmp_path / "ref", tmp_path / "eval.json")


# --------------------------------------------------------------------------------------------------
# Round three #9: truncated estimates, window options, a length cap


def test_a_truncated_estimate_is_refused_not_scored_as_complete(tmp_path):
    refs, ests = tmp_path / "refs", tmp_path / "est"
    voc, acc = _stems(0, seconds=10.0)
    _write_track(refs / "t", voc, acc)
    _write_track(ests / "t", voc[: 2 * SR], acc[: 2 * SR])  # 2 s of a 10 s track
    res = run_evaluate(ests, refs, tmp_path / "e.json", progress=False)
    assert res.n_scored == 0 and "truncated" in res.skipped[0]["reason"]
    r = CliRunner().invoke(main, ["evaluate", str(ests), str(refs), "-o", str(tmp_path / "e2.json"), "-q"])
    assert r.exit_code == 1 and "2.00 s long but the reference is 10.00 s" in r.output + r.stderr


@pytest.mark.parametrize("window", ["-1", "0", "nan", "1e9"])
def test_bad_windows_are_refused_up_front(tmp_path, window):
    refs = tmp_path / "refs"
    voc, acc = _stems(0)
    _write_track(refs / "t", voc, acc)
    r = CliRunner().invoke(main, ["evaluate", str(refs), str(refs), "-o", str(tmp_path / "e.json"), "-q",
                                  "--window-s", window])
    assert r.exit_code == 2 and "--window-s" in r.output + r.stderr and "Traceback" not in r.output + r.stderr
    assert not (tmp_path / "e.json").exists()


def test_long_tracks_are_refused_from_the_header(tmp_path):
    refs = tmp_path / "refs"
    voc, acc = _stems(0, seconds=6.0)
    _write_track(refs / "t", voc, acc)
    res = run_evaluate(None, refs, tmp_path / "e.json", progress=False, max_track_s=5.0)
    assert res.n_scored == 0 and "over evaluate's cap of 5 s" in res.skipped[0]["reason"]
    assert run_evaluate(None, refs, tmp_path / "e2.json", progress=False).n_scored == 1
