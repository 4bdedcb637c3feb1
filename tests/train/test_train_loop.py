"""Training loop: loss goes down, checkpoints save/resume/load, run folder contents, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pairminer.cli import main
from pairminer.errors import ConfigError, OutputError
from pairminer.schemas import json_schema
from pairminer.testing.train import TINY, make_targets
from pairminer.train import TrainConfig, load_checkpoint, run_train
from pairminer.train.data import PatchSampler, fixed_patches, read_manifest, split_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_loss_decreases(tmp_path):
    targets = make_targets(tmp_path / "t")
    cfg = TrainConfig(**TINY, lr=1e-3, max_steps=60, valid_every=30, seed=1)
    res = run_train(targets, tmp_path / "run", cfg, progress=False)
    assert res.step == 60 and res.steps_run == 60
    train = [m["loss"] for m in _metrics(tmp_path / "run") if m["kind"] == "train"]
    valid = [m["loss"] for m in _metrics(tmp_path / "run") if m["kind"] == "valid"]
    assert len(train) == 12 and len(valid) == 2
    assert np.mean(train[-3:]) < 0.75 * np.mean(train[:3]), train
    assert valid[1] < valid[0], valid
    assert res.best_valid_loss == min(valid)


def test_run_folder_resume_and_checkpoints(tmp_path):
    targets = make_targets(tmp_path / "t")
    run = tmp_path / "run"
    cfg = TrainConfig(**TINY, max_steps=10, valid_every=5)
    first = run_train(targets, run, cfg, progress=False)
    assert first.step == 10
    for name in ("config.json", "metrics.jsonl", "checkpoint-last.pt", "checkpoint-best.pt", "train-report.json"):
        assert (run / name).exists(), name
    json_schema("train-config").validate(json.loads((run / "config.json").read_text()))
    report = json.loads((run / "train-report.json").read_text())
    json_schema("train-report").validate(report)
    doc = json.loads((run / "config.json").read_text())
    assert doc["data"] == {"sr_hz": 8000, "n_fft": 128, "hop": 96, "bins_in_data": 65, "targets_dir": str(targets)}
    assert report["data"]["pairs"] == {"total": 6, "train": 4, "valid": 1, "test": 1}

    last = load_checkpoint(run / "checkpoint-last.pt")  # weights_only=True inside
    assert last["step"] == 10 and "optimizer" in last and last["config"]["source"] == "vocals"
    torch.load(run / "checkpoint-best.pt", weights_only=True)

    with pytest.raises(OutputError, match="--resume"):
        run_train(targets, run, cfg, progress=False)
    with pytest.raises(ConfigError, match="resume"):
        run_train(targets, run, cfg.replace(base_channels=4, max_steps=20), resume=True, progress=False)

    second = run_train(targets, run, cfg.replace(max_steps=20), resume=True, progress=False)
    assert (second.step, second.steps_run) == (20, 10)
    resumed = load_checkpoint(run / "checkpoint-last.pt")
    assert resumed["step"] == 20
    state = resumed["optimizer"]["state"]
    assert int(state[0]["step"]) == 20  # Adam's own step counter carried over
    steps = [m["step"] for m in _metrics(run) if m["kind"] == "train"]
    assert steps == [5, 10, 15, 20]
    assert not torch.equal(last["model"]["encoder.0.0.weight"], resumed["model"]["encoder.0.0.weight"])

    again = run_train(targets, run, cfg.replace(max_steps=20), resume=True, progress=False)
    assert again.steps_run == 0 and again.step == 20


def test_resume_truncates_metrics_after_checkpoint(tmp_path):
    targets = make_targets(tmp_path / "t")
    run = tmp_path / "run"
    run_train(targets, run, TrainConfig(**TINY, max_steps=10, valid_every=10), progress=False)
    with open(run / "metrics.jsonl", "a") as f:  # lines of steps lost by a crash after the checkpoint
        f.write(json.dumps({"kind": "train", "step": 15, "loss": 1.0}) + "\n")
    run_train(targets, run, TrainConfig(**TINY, max_steps=10, valid_every=10), resume=True, progress=False)
    assert max(m["step"] for m in _metrics(run)) == 10


def test_time_budget_stops_with_a_checkpoint(tmp_path):
    targets = make_targets(tmp_path / "t")
    res = run_train(targets, tmp_path / "run", TrainConfig(**TINY, max_steps=1000, time_budget_s=1e-6),
                    progress=False)
    assert res.step == 1 and np.isfinite(res.last_valid_loss)
    assert load_checkpoint(tmp_path / "run" / "checkpoint-last.pt")["step"] == 1


def test_split_fallbacks(tmp_path):
    targets = make_targets(tmp_path / "t", n_pairs=3, splits=("train", "train", "test"))
    train, valid, notes = split_rows(read_manifest(targets))
    assert len(train) == 2 and list(valid["pair_id"]) == list(train["pair_id"]) and "valid" in notes[0]
    targets = make_targets(tmp_path / "t2", n_pairs=12, splits=tuple(["train"] * 12))
    train, valid, notes = split_rows(read_manifest(targets))
    assert len(train) + len(valid) == 12 and len(valid) == 2
    assert not set(train["pair_id"]) & set(valid["pair_id"])
    targets = make_targets(tmp_path / "t3", n_pairs=3, splits=("valid", "test", "test"))
    train, valid, notes = split_rows(read_manifest(targets))
    assert list(train["pair_id"]) == ["m0__v0"] and "train" in notes[0]


def test_patch_sampler_reads_the_right_frames(tmp_path):
    targets = make_targets(tmp_path / "t", n_pairs=2, frames=(70, 71))
    manifest = read_manifest(targets)
    shard = np.load(targets / manifest["shard"][1])
    sampler = PatchSampler(targets, manifest, channel=1, n_bins=64, patch_frames=64)
    patch = sampler.read(1, 3)
    s = int(manifest["start_frame"][1]) + 3
    np.testing.assert_array_equal(patch[0], shard[s:s + 64, 0, :64].T.astype(np.float32))
    np.testing.assert_array_equal(patch[1], shard[s:s + 64, 1, :64].T.astype(np.float32))
    short = PatchSampler(targets, manifest, channel=2, n_bins=64, patch_frames=128).read(0, 0)
    assert short.shape == (2, 64, 128) and np.all(short[:, :, 70:] == 0)  # zero-padded short pair
    mix, tgt = fixed_patches(sampler, 5, seed=0)
    assert mix.shape == tgt.shape == (5, 1, 64, 64)
    assert torch.equal(fixed_patches(sampler, 5, seed=0)[0], mix)  # validation patches are reproducible


def test_skip_silent_targets(tmp_path):
    targets = make_targets(tmp_path / "t", n_pairs=4, splits=("train",) * 4)
    manifest = read_manifest(targets)
    sampler = PatchSampler(targets, manifest, channel=2, n_bins=64, patch_frames=64, skip_silent_target_db=10)
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = sampler.sample(rng)
        assert 10 * np.log10(np.square(p[1]).sum() / np.square(p[0]).sum()) >= -10


def test_workers_and_cli(tmp_path):
    targets = make_targets(tmp_path / "t")
    cfg_path = tmp_path / "train.yaml"
    cfg_path.write_text(TrainConfig(**{**TINY, "num_workers": 1}).to_yaml())
    res = CliRunner().invoke(main, ["train", str(targets), "-o", str(tmp_path / "run"), "--config", str(cfg_path),
                                    "--max-steps", "6", "--valid-every", "3", "--source", "instrumental", "-q"])
    assert res.exit_code == 0, res.output
    assert "6 step(s) run" in res.output
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["train"]["source"] == "instrumental" and doc["train"]["num_workers"] == 1
    bad = CliRunner().invoke(main, ["train", str(tmp_path / "nope"), "-o", str(tmp_path / "r2"), "-q"])
    assert bad.exit_code == 2 and "manifest.parquet does not exist" in bad.output and "Traceback" not in bad.output


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_on_gpu_bf16(tmp_path):
    targets = make_targets(tmp_path / "t")
    res = run_train(targets, tmp_path / "run", TrainConfig(**TINY, max_steps=10, device="cuda", lr=1e-3),
                    progress=False)
    report = json.loads(Path(res.report_path).read_text())
    assert report["device"].startswith("cuda") and np.isfinite(res.best_valid_loss)
