"""Trainer, separate and evaluate under bad input (issue 17) and the convergence machinery (issue 14).

Every case of docs/reliability.md's "train, separate, evaluate" section is a test here.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from pairminer.cli import main
from pairminer.errors import ConfigError, InputError, OutputError
from pairminer.testing.train import TINY, make_targets
from pairminer.train import TrainConfig, load_checkpoint, run_train
from pairminer.train.data import PatchBatches, PatchSampler, augment, read_manifest, stft_params
from pairminer.train.loop import DivergedError, _atomic_write, read_metrics
from pairminer.train.separate import (Separator, _segments, map_mask, read_run_config, separate_file,
                                      separate_signal)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("rel")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    res = run_train(make_targets(base / "t"), base / "run", TrainConfig(**TINY, max_steps=3, valid_every=3),
                    progress=False)
    torch.set_num_threads(n)
    return Path(res.run_dir)


def _copy_run(run_dir: Path, dest: Path) -> Path:
    dest.mkdir()
    for p in run_dir.iterdir():
        (dest / p.name).write_bytes(p.read_bytes())
    return dest


# ---------------------------------------------------------------------------------------------- sampling

def test_patches_come_only_from_covered_frames(tmp_path):
    covers = [(20, 90), (0, 0), (50, 200), (10, 60), (0, 100), (0, 100)]  # pair 1 has nothing covered
    targets = make_targets(tmp_path / "t", frames=(150, 151), covers=covers, splits=("train",) * 6)
    man = read_manifest(targets)
    s = PatchSampler(targets, man, channel=2, n_bins=64, patch_frames=64)
    rng = np.random.default_rng(0)
    seen = np.zeros(6, int)
    for _ in range(3000):
        i, off = s.draw(rng)
        lo, hi = s.cover_lo[i], s.cover_hi[i]
        assert lo <= off and (off + 64 <= hi or off == lo)
        seen[i] += 1
    assert seen[1] == 0  # never drawn
    positions = np.array([max(min(hi, 150) - lo - 63, 1) if hi > lo else 0 for lo, hi in covers])
    np.testing.assert_allclose(seen / seen.sum(), positions / positions.sum(), atol=0.03)  # uniform over starts
    block = s.block(3, 10)  # cover (10, 60) is shorter than a patch: frames past the cover are zeros
    assert np.all(block[:, :, 50:] == 0) and block[0, :, :50].sum() > 0


def test_old_manifest_without_cover_columns_covers_whole_pairs(tmp_path):
    targets = make_targets(tmp_path / "t", cover_columns=False)
    s = PatchSampler(targets, read_manifest(targets), channel=2, n_bins=64, patch_frames=64)
    np.testing.assert_array_equal(s.cover_hi, s.n_frames)
    assert s.total_frames == int(s.n_frames.sum())


def test_draw_uses_a_cumulative_sum_not_per_draw_weights():
    # 1e5 pairs: the sampler keeps one cumulative array; a draw is one integer and one binary search
    n = 100_000
    rows = pd.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "shard": "x", "start_frame": 0,
                         "n_frames": np.arange(n) % 300 + 1})
    s = PatchSampler("/nonexistent", rows, channel=2, n_bins=64, patch_frames=64)
    rng = np.random.default_rng(0)
    picks = [s.draw(rng) for _ in range(2000)]
    assert s.cum_positions.shape == (n,)
    assert all(0 <= off < rows["n_frames"][i] for i, off in picks)


def test_augmentation_rebuilds_the_mix_from_gained_targets():
    rng = np.random.default_rng(0)
    block = rng.random((3, 8, 16)).astype(np.float32)
    other = rng.random((3, 8, 16)).astype(np.float32)
    out = augment(block, other, rng, gain_db=6.0)
    np.testing.assert_allclose(out[0], out[1] + out[2], rtol=1e-6)
    g_v, g_i = out[2] / block[2], out[1] / other[1]
    assert np.allclose(g_v, g_v.flat[0]) and 10 ** (-6 / 20) <= g_v.flat[0] <= 10 ** (6 / 20)
    assert np.allclose(g_i, g_i.flat[0]) and 10 ** (-6 / 20) <= g_i.flat[0] <= 10 ** (6 / 20)


def test_batches_are_a_function_of_the_step(tmp_path):
    targets = make_targets(tmp_path / "t")
    s = PatchSampler(targets, read_manifest(targets), channel=2, n_bins=64, patch_frames=64)
    data = PatchBatches(s, 3, seed=5, augment_prob=0.5, augment_gain_db=6, remix_prob=0.5)
    a, b = data[7], data[7]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], data[8][0])


def test_mixed_stft_manifest_is_a_clear_error(tmp_path):
    targets = make_targets(tmp_path / "t")
    man = pd.read_parquet(targets / "manifest.parquet")
    man.loc[0, "n_fft"] = 256
    with pytest.raises(InputError, match="mixes n_fft values.*one targets folder"):
        stft_params(man)


# ---------------------------------------------------------------------------------------------- training

def test_resume_is_identical_to_an_uninterrupted_run(tmp_path):
    targets = make_targets(tmp_path / "t")
    cfg = TrainConfig(**TINY, max_steps=16, valid_every=4)
    straight = run_train(targets, tmp_path / "a", cfg, progress=False)
    run_train(targets, tmp_path / "b", cfg.replace(max_steps=8), progress=False)  # "killed" after step 8
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 9, "lo')  # a torn last line, as kill -9 leaves it
    resumed = run_train(targets, tmp_path / "b", cfg, resume=True, progress=False)
    assert straight.step == resumed.step == 16
    a, b = (load_checkpoint(tmp_path / d / "checkpoint-last.pt") for d in ("a", "b"))
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert a["best_valid_loss"] == b["best_valid_loss"]
    assert [m["step"] for m in read_metrics(tmp_path / "b" / "metrics.jsonl")] == \
        [m["step"] for m in read_metrics(tmp_path / "a" / "metrics.jsonl")]


def test_torn_metrics_tail_is_tolerated(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"kind": "train", "step": 5, "loss": 1.0}\n{"kind": "tra')
    assert [m["step"] for m in read_metrics(p)] == [5]
    p.write_text('{"kind": "tra\n{"kind": "train", "step": 5, "loss": 1.0}\n')
    with pytest.raises(InputError, match="line 1"):
        read_metrics(p)


def test_early_stopping_and_plateau_schedule(tmp_path):
    targets = make_targets(tmp_path / "t")
    cfg = TrainConfig(**TINY, lr=1e-9, max_steps=400, valid_every=2, early_stop_patience=2, lr_patience=1)
    res = run_train(targets, tmp_path / "run", cfg, progress=False)
    assert res.stopped_early and res.step < 400
    valid = [m for m in read_metrics(tmp_path / "run" / "metrics.jsonl") if m["kind"] == "valid"]
    assert valid[-1]["lr"] < 1e-9  # decayed on the plateau
    assert all("sdr_db" in m and "mix_sdr_db" in m for m in valid)
    report = json.loads((tmp_path / "run" / "train-report.json").read_text())
    assert report["stopped_early"] and report["steps"]["end"] == res.step
    again = run_train(targets, tmp_path / "run", cfg, resume=True, progress=False)
    assert again.steps_run == 0  # a run that stopped early stays stopped


def test_validation_sdr_rises_above_the_mixture(tmp_path):
    targets = make_targets(tmp_path / "t")
    res = run_train(targets, tmp_path / "run", TrainConfig(**TINY, lr=3e-3, max_steps=60, valid_every=30, seed=1),
                    progress=False)
    valid = [m for m in read_metrics(tmp_path / "run" / "metrics.jsonl") if m["kind"] == "valid"]
    assert valid[-1]["sdr_db"] > valid[-1]["mix_sdr_db"], valid
    assert np.isfinite(res.valid_sdr_db)


def test_nan_loss_stops_training_with_a_clear_error(tmp_path, monkeypatch):
    targets = make_targets(tmp_path / "t")
    import torch.nn.functional as F

    real = F.l1_loss
    monkeypatch.setattr(F, "l1_loss", lambda a, b, **kw: real(a, b, **kw) * float("nan"))
    with pytest.raises(DivergedError, match="NaN or infinite"):
        run_train(targets, tmp_path / "run", TrainConfig(**TINY, max_steps=10, valid_every=5), progress=False)
    assert not (tmp_path / "run" / "checkpoint-last.pt").exists()  # no NaN checkpoint written
    res = CliRunner().invoke(main, ["train", str(targets), "-o", str(tmp_path / "run2"), "--max-steps", "10",
                                    "--num-workers", "0", "-q"])
    assert res.exit_code != 0 and "NaN" in res.output and "Traceback" not in res.output


def test_inf_in_shards_names_the_pair(tmp_path):
    targets = make_targets(tmp_path / "t", splits=("train",) * 6)
    man = read_manifest(targets)
    path = targets / man["shard"][0]
    arr = np.load(path)
    arr[int(man["start_frame"][0]):int(man["start_frame"][0]) + int(man["n_frames"][0]), 0, 3] = np.inf
    np.save(path, arr)
    res = CliRunner().invoke(main, ["train", str(targets), "-o", str(tmp_path / "run"), "--max-steps", "30",
                                    "--num-workers", "1", "--config", str(_yaml(tmp_path)), "-q"])
    assert res.exit_code != 0 and "m0__v0" in res.output and "inf or NaN" in res.output
    assert "Traceback" not in res.output


def _yaml(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(TrainConfig(**{**TINY, "num_workers": 1, "valid_patches": 6}).to_yaml())
    return p


def test_outputs_honour_the_umask(tmp_path, run_dir):
    old = os.umask(0o022)
    try:
        out = tmp_path / "x.json"
        _atomic_write(out, lambda tmp: Path(tmp).write_text("{}"))
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
    finally:
        os.umask(old)
    for name in ("config.json", "checkpoint-last.pt", "checkpoint-best.pt", "train-report.json"):
        mode = stat.S_IMODE((run_dir / name).stat().st_mode)
        assert mode == 0o666 & ~old, (name, oct(mode))


def test_disk_full_names_the_file_and_the_fix(tmp_path):
    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"cannot write .*ckpt.pt: No space left on device; free disk space"):
        _atomic_write(tmp_path / "ckpt.pt", full)

    def torch_full(tmp):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

    with pytest.raises(OutputError, match=r"ckpt.pt: the write failed \(disk full\?\); free disk space"):
        _atomic_write(tmp_path / "ckpt.pt", torch_full)
    assert not list(tmp_path.iterdir())  # no temp file left


# ---------------------------------------------------------------------------------------------- run folders

def test_pickle_checkpoint_is_refused_without_unsafe_advice(tmp_path, run_dir):
    bad = _copy_run(run_dir, tmp_path / "run")
    torch.save({"model": {"w": torch.zeros(1)}, "evil": Path("x")}, bad / "checkpoint-best.pt")
    with pytest.raises(InputError) as info:
        Separator.from_run(bad, device="cpu")
    msg = str(info.value)
    assert "not a pairminer checkpoint" in msg and "weights_only" not in msg


def test_nan_checkpoint_is_refused(tmp_path, run_dir):
    bad = _copy_run(run_dir, tmp_path / "run")
    ckpt = torch.load(bad / "checkpoint-best.pt", weights_only=True)
    ckpt["model"]["encoder.0.0.weight"][0] = float("nan")
    torch.save(ckpt, bad / "checkpoint-best.pt")
    with pytest.raises(InputError, match="NaN or infinite weights"):
        Separator.from_run(bad, device="cpu")


@pytest.mark.parametrize("edit,match", [
    (lambda d: d["data"].update(n_fft=2**24), "n_fft=16777216 must be an even number"),
    (lambda d: d["data"].update(hop=0), "hop=0"),
    (lambda d: d["train"].update(batch_size=-1), "batch_size"),
    (lambda d: d["model"].update(n_bins=100), "n_bins=100"),
    (lambda d: d.pop("data"), "not a pairminer run config"),
])
def test_run_config_is_validated_like_training(tmp_path, run_dir, edit, match):
    bad = _copy_run(run_dir, tmp_path / "run")
    doc = json.loads((bad / "config.json").read_text())
    edit(doc)
    (bad / "config.json").write_text(json.dumps(doc))
    with pytest.raises((ConfigError, InputError), match=match):
        read_run_config(bad)
    wav = tmp_path / "a.wav"
    sf.write(wav, np.full(800, 0.1), 8000)
    res = CliRunner().invoke(main, ["separate", str(wav), "-m", str(bad), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2 and "config.json" in res.output and "Traceback" not in res.output


def test_run_config_not_matching_its_weights(tmp_path, run_dir):
    bad = _copy_run(run_dir, tmp_path / "run")
    doc = json.loads((bad / "config.json").read_text())
    doc["train"]["base_channels"] = 4
    (bad / "config.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="does not match"):
        Separator.from_run(bad, device="cpu")
    (bad / "config.json").write_text('{"train": ')  # torn
    with pytest.raises(InputError, match=r"config.json is not a pairminer run config"):
        Separator.from_run(bad, device="cpu")


# ---------------------------------------------------------------------------------------------- separate

def test_map_mask_grid_and_extension_rules():
    mask = torch.linspace(0, 1, 65)[:, None].expand(65, 40).contiguous()  # rises with frequency
    kw = dict(model_sr_hz=8000, n_fft=128, hop=96, sr_hz=16000, n_fft_in=256, hop_in=64, frames_in=120)
    out = {r: map_mask(mask, extend=r, **kw) for r in ("band_mean", "top_bin", "rolloff", "zero", "half")}
    # bin k of the input STFT is at k * 16000 / 256 Hz = 62.5 k Hz, model bin k below 4 kHz
    torch.testing.assert_close(out["zero"][:65], mask[:, :1].expand(65, 120))
    assert torch.all(out["zero"][65:] == 0) and torch.all(out["half"][65:] == 0.5)
    assert torch.allclose(out["top_bin"][65:], torch.ones(1))
    assert torch.allclose(out["band_mean"][65:], mask[32:].mean(), atol=1e-5)
    t_mask = (torch.arange(40.0) / 39)[None].expand(65, 40)  # rises with time: input frame u is model frame u / 3
    mapped = map_mask(t_mask, extend="zero", **kw)
    torch.testing.assert_close(mapped[0, :118:3], torch.arange(40.0) / 39)
    torch.testing.assert_close(mapped[0, 1], torch.tensor(1 / 3 / 39))  # linear between frames
    roll = out["rolloff"][65:, 0]
    assert roll[0] <= mask[32:].mean() + 1e-5 and roll[-1] < 0.05 and torch.all(roll[1:] <= roll[:-1] + 1e-6)


def _model_sep(value):
    class Const(torch.nn.Module):
        def mask(self, x):
            return torch.full_like(x, value)

    return Separator(Const(), "vocals", 64, 64, 8000, 128, 96, torch.device("cpu"))


def test_full_band_keeps_channels_and_uses_the_rule_above_the_band():
    rng = np.random.default_rng(0)
    sr = 32000
    y = (0.1 * rng.standard_normal((sr * 2, 2))).astype(np.float32)  # white noise up to 16 kHz
    out = separate_signal(y, sr, [_model_sep(1.0)], extend="zero")
    assert out["vocals"].shape == y.shape
    np.testing.assert_allclose(out["vocals"] + out["instrumental"], y, atol=1e-4)
    spec = np.abs(np.fft.rfft(out["vocals"][:, 0]))
    f = np.fft.rfftfreq(len(y), 1 / sr)
    low, high = spec[(f > 500) & (f < 3500)].mean(), spec[f > 6000].mean()
    assert high < 0.02 * low  # "zero": nothing above the model's 4 kHz goes to the vocals
    full = separate_signal(y, sr, [_model_sep(1.0)], extend="top_bin")
    np.testing.assert_allclose(full["vocals"], y, atol=1e-4)  # mask 1 everywhere: the input itself


def test_segments_cover_the_signal_and_crossfade(tmp_path):
    spans = list(_segments(1000, 300, 50))
    assert spans[0] == (0, 300) and spans[-1][0] + spans[-1][1] == 1000
    assert all(b[0] == a[0] + a[1] - 50 for a, b in zip(spans, spans[1:]))
    sr = 8000
    rng = np.random.default_rng(1)
    y = (0.1 * rng.standard_normal((sr * 25, 2))).astype(np.float32)
    sf.write(tmp_path / "long.wav", y, sr, subtype="FLOAT")
    outs = {s: tmp_path / f"{s}.wav" for s in ("vocals", "instrumental")}
    row = separate_file(str(tmp_path / "long.wav"), [_model_sep(0.3)], outs, segment_s=10, overlap_s=1)
    v, _ = sf.read(outs["vocals"], always_2d=True)
    assert v.shape == y.shape and row["samples"] == len(y)
    np.testing.assert_allclose(v, 0.3 * y, atol=2e-3)  # segmenting leaves a constant mask's output unchanged


def test_separate_batch_goes_on_and_exit_codes(tmp_path, run_dir):
    sr = 8000
    sf.write(tmp_path / "one.wav", np.array([0.5]), sr, subtype="FLOAT")  # a 1-sample file
    sf.write(tmp_path / "silent.wav", np.zeros(sr), sr)
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 1000), sr, subtype="FLOAT")
    sf.write(tmp_path / "long.wav", np.zeros(sr * 30), sr)
    out = tmp_path / "sep"
    args = ["separate", *(str(tmp_path / f) for f in ("one.wav", "silent.wav", "nan.wav", "long.wav")),
            "-m", str(run_dir), "-o", str(out), "--max-duration-s", "20", "-q"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "separate-report.json").read_text())
    assert rep["counts"] == {"inputs": 4, "written": 2, "skipped_existing": 0, "failed": 2}
    reasons = " ".join(f["reason"] for f in rep["failures"])
    assert "NaN or infinite" in reasons and "over the cap of 20 s" in reasons and "header" in reasons
    one, _ = sf.read(out / "one" / "vocals.wav", always_2d=True)
    silent, _ = sf.read(out / "silent" / "vocals.wav")
    assert one.shape == (1, 1) and np.all(np.isfinite(one)) and not np.any(silent)
    failed = CliRunner().invoke(main, ["separate", str(tmp_path / "nan.wav"), "-m", str(run_dir), "-o",
                                       str(tmp_path / "sep2"), "-q"])
    assert failed.exit_code == 1 and "NaN" in failed.output  # every input failed


def test_mono_flag_keeps_the_old_output(tmp_path, run_dir):
    sr = 16000
    rng = np.random.default_rng(2)
    y = (0.1 * rng.standard_normal((sr, 2))).astype(np.float32)
    sf.write(tmp_path / "s.wav", y, sr, subtype="FLOAT")
    res = CliRunner().invoke(main, ["separate", str(tmp_path / "s.wav"), "-m", str(run_dir), "-o",
                                    str(tmp_path / "o"), "--mono", "-q"])
    assert res.exit_code == 0, res.output
    v, sr_v = sf.read(tmp_path / "o" / "s" / "vocals.wav", always_2d=True)
    i, _ = sf.read(tmp_path / "o" / "s" / "instrumental.wav", always_2d=True)
    assert v.shape == (sr, 1) and sr_v == sr
    np.testing.assert_allclose(v[:, 0] + i[:, 0], y.mean(axis=1), atol=1e-4)


# ---------------------------------------------------------------------------------------------- evaluate

def _track(folder: Path, voc, acc, sr=8000):
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "vocals.wav", voc, sr, subtype="FLOAT")
    sf.write(folder / "instrumental.wav", acc, sr, subtype="FLOAT")


def test_evaluate_records_bad_tracks_and_goes_on(tmp_path):
    rng = np.random.default_rng(0)
    voc, acc = (0.1 * rng.standard_normal(16000)).astype(np.float32), (0.1 * rng.standard_normal(16000)).astype(np.float32)
    refs, ests = tmp_path / "refs", tmp_path / "est"
    _track(refs / "good", voc, acc)
    _track(ests / "good", voc + 0.1 * acc, acc)
    _track(refs / "zero_vocals", np.zeros(16000, np.float32), acc)
    _track(ests / "zero_vocals", voc, acc)
    _track(refs / "one_sample", voc[:1], acc[:1])
    _track(ests / "one_sample", voc[:1], acc[:1])
    _track(refs / "nan_estimate", voc, acc)
    _track(ests / "nan_estimate", np.full(16000, np.nan, np.float32), acc)
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(main, ["evaluate", str(ests), str(refs), "-o", str(out), "--oracle", "irm",
                                    "--sr-hz", "4000", "--n-fft", "128", "--hop", "96", "-q"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["counts"] == {"tracks": 4, "scored": 1, "skipped": 3}
    reasons = {s["track"]: s["reason"] for s in doc["skipped"]}
    assert "silent" in reasons["zero_vocals"] and "too short" in reasons["one_sample"]
    assert "NaN" in reasons["nan_estimate"]  # an all-NaN estimate does not count as scored
    assert {r["track"] for r in doc["scores"]} == {"good"}
    assert doc["medians"]["irm_fullband"]["vocals"]["SDR"] is not None
    none = CliRunner().invoke(main, ["evaluate", str(ests), str(refs / "zero_vocals" / ".."), "-o",
                                     str(tmp_path / "e2.json"), "-q"])
    assert none.exit_code == 0
    only_bad = tmp_path / "refs2"
    _track(only_bad / "one_sample", voc[:1], acc[:1])
    res = CliRunner().invoke(main, ["evaluate", str(ests), str(only_bad), "-o", str(tmp_path / "e3.json"), "-q"])
    assert res.exit_code == 1  # every track failed
    assert oct(stat.S_IMODE(out.stat().st_mode)) != oct(0o600)


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    targets = make_targets(tmp_path / "t")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TrainConfig(**{**TINY, "max_steps": 30, "valid_every": 5, "threads": 1}).to_yaml())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def train(out, resume=False):
        cmd = [sys.executable, "-m", "pairminer", "train", str(targets), "-o", str(out), "--config", str(cfg), "-q"]
        return subprocess.Popen(cmd + (["--resume"] if resume else []), env=env)

    assert train(tmp_path / "a").wait(timeout=300) == 0
    proc = train(tmp_path / "b")
    ckpt = tmp_path / "b" / "checkpoint-last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=True)["step"] >= 10:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ckpt, weights_only=True)["step"]
    assert killed_at < 30, "the run finished before the kill; the test needs a slower run"
    assert train(tmp_path / "b", resume=True).wait(timeout=300) == 0
    a, b = (torch.load(tmp_path / d / "checkpoint-last.pt", weights_only=True) for d in ("a", "b"))
    assert a["step"] == b["step"] == 30
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
