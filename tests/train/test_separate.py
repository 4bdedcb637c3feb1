"""Separation: seamless patch blending, length and sample rate kept, complementary masks, CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from pairminer.cli import main
from pairminer.schemas import json_schema
from pairminer.testing.train import TINY, make_targets
from pairminer.train import Separator, TrainConfig, run_train, separate_array
from pairminer.train.separate import istft, stft

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny trained runs (vocals, instrumental) on 8000 Hz / n_fft 128 / hop 96 shards."""
    base = tmp_path_factory.mktemp("runs")
    targets = make_targets(base / "targets")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    for source in ("vocals", "instrumental"):
        cfg = TrainConfig(**TINY, source=source, max_steps=3, valid_every=3)
        out[source] = run_train(targets, base / source, cfg, progress=False).run_dir
    torch.set_num_threads(n)
    return out


class _ConstantMask(torch.nn.Module):
    """Stands in for the U-Net: mask = value everywhere, or the per-patch-normalised input itself."""

    def __init__(self, value=None):
        super().__init__()
        self.value = value

    def mask(self, x):
        return torch.full_like(x, self.value) if self.value is not None else x


def _separator(model, source="vocals", n_bins=64, patch_frames=64):
    return Separator(model, source, n_bins, patch_frames, 8000, 128, 96, torch.device("cpu"))


@pytest.mark.parametrize("n_fft,hop,n", [(128, 96, 5001), (128, 96, 52 * 96 + 90), (1024, 768, 8192 + 700)])
def test_stft_round_trip(n_fft, hop, n):
    y = torch.randn(n)  # remainders above n_fft/2 once lost their tail samples
    torch.testing.assert_close(istft(stft(y, n_fft, hop), n_fft, hop, n), y, atol=1e-5, rtol=1e-4)


def test_patch_blending_has_no_seams():
    mag = torch.rand(65, 301)
    mask = _separator(_ConstantMask(0.3)).mask(mag, batch_size=3)
    assert mask.shape == (65, 301)
    torch.testing.assert_close(mask, torch.full_like(mask, 0.3))  # dropped Nyquist bin included
    # A mask equal to the normalised input: a smooth blend of per-patch scalings stays within their range.
    mag = torch.ones(65, 301)
    mask = _separator(_ConstantMask()).mask(mag)
    torch.testing.assert_close(mask, torch.ones_like(mask))


def test_separate_array_complements_and_keeps_length(runs):
    sep = Separator.from_run(runs["vocals"], device="cpu")
    assert (sep.source, sep.sr_hz, sep.n_fft, sep.hop, sep.n_bins) == ("vocals", 8000, 128, 96, 64)
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(8000 * 2 + 37)).astype(np.float32)
    out = separate_array(y, [sep])
    assert set(out) == {"vocals", "instrumental"}
    assert all(v.shape == y.shape and v.dtype == np.float32 for v in out.values())
    np.testing.assert_allclose(out["vocals"] + out["instrumental"], y, atol=1e-4)
    both = separate_array(y, [sep, Separator.from_run(runs["instrumental"], device="cpu")])
    assert not np.allclose(both["vocals"] + both["instrumental"], y, atol=1e-4)  # two independent masks
    np.testing.assert_allclose(both["vocals"], out["vocals"], atol=1e-5)


def test_separate_cli_keeps_length_and_rate(runs, tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(22050 * 3 + 11) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * rng.standard_normal(len(t))], axis=1) * 0.3
    sf.write(tmp_path / "song one.wav", stereo, 22050)
    sf.write(tmp_path / "low.flac", stereo[:9000, 0], 8000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav")
    out = tmp_path / "sep"
    args = ["separate", str(tmp_path / "song one.wav"), str(tmp_path / "low.flac"), str(tmp_path / "broken.wav"),
            "-m", runs["vocals"], "-o", str(out), "--device", "cpu", "-q"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "2 written" in res.output and "1 failed" in res.output and "realtime" in res.output
    for name, n, sr, ch in (("song one", len(t), 22050, 2), ("low", 9000, 8000, 1)):
        v, sr_v = sf.read(out / name / "vocals.wav", always_2d=True)
        i, sr_i = sf.read(out / name / "instrumental.wav", always_2d=True)
        assert (v.shape, i.shape, sr_v, sr_i) == ((n, ch), (n, ch), sr, sr)  # channels, length and rate kept
        x = stereo[:n] if name == "song one" else stereo[:n, :1]
        np.testing.assert_allclose(v + i, x, atol=1e-4)  # instrumental is the rest of the input, per channel
        assert np.abs(v).max() > 1e-3
    report = json.loads((out / "separate-report.json").read_text())
    json_schema("separate-report").validate(report)
    assert report["counts"] == {"inputs": 3, "written": 2, "skipped_existing": 0, "failed": 1}
    assert report["realtime_factor"] > 0 and "broken.wav" in report["failures"][0]["input"]

    again = CliRunner().invoke(main, args[:2] + args[4:])
    assert again.exit_code == 0 and "1 already done" in again.output


def test_separate_refuses_bad_runs(runs, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(800) + 0.1, 8000)
    res = CliRunner().invoke(main, ["separate", str(wav), "-m", str(tmp_path), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2 and "not a training run" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["separate", str(wav), "-m", runs["vocals"], "-m", runs["vocals"],
                                    "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2 and "same source" in res.output


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_separate_on_gpu(runs):
    sep = Separator.from_run(runs["vocals"], device="cuda")
    y = np.random.default_rng(0).standard_normal(8000 * 5).astype(np.float32) * 0.1
    out = separate_array(y, [sep], batch_size=4)
    assert out["vocals"].shape == y.shape and np.isfinite(out["vocals"]).all()


def test_hires_recipe_takes_its_bins_from_the_data(tmp_path):
    """The 22050 Hz / 2048 / 512 recipe: 1024 model bins from the data's 1025, trained and separated full band."""
    from pairminer.train.separate import separate_signal

    targets = make_targets(tmp_path / "t", n_fft=2048, hop=512, sr_hz=22050, frames=(70, 90))
    cfg = TrainConfig(**{**TINY, "n_bins": 0, "base_channels": 4}, max_steps=2, valid_every=2)
    res = run_train(targets, tmp_path / "run", cfg, progress=False)
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["model"]["n_bins"] == 1024 and doc["data"]["n_fft"] == 2048 and doc["train"]["n_bins"] == 0
    sep = Separator.from_run(res.run_dir, device="cpu")
    assert (sep.n_bins, sep.sr_hz, sep.n_fft, sep.hop) == (1024, 22050, 2048, 512)
    y = (0.1 * np.random.default_rng(0).standard_normal((44100, 2))).astype(np.float32)
    out = separate_signal(y, 44100, [sep])
    assert out["vocals"].shape == (44100, 2)
    np.testing.assert_allclose(out["vocals"] + out["instrumental"], y, atol=1e-4)
    with pytest.raises(Exception, match="n_bins=2048"):
        run_train(targets, tmp_path / "run2", cfg.replace(n_bins=2048), progress=False)


# --------------------------------------------------------------------------------------------------
# Round three #8 (outputs confined to -o) and #13 (a broken checkpoint's NaN output is not written)


def test_separate_output_folders_stay_inside_out(runs, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("...flac", "..flac", ".hidden.wav"):
        sf.write(src / name, np.sin(np.arange(8000) / 5.0) * 0.3, 8000, format="FLAC" if "flac" in name else "WAV")
    out = tmp_path / "sep"
    victim = tmp_path / "vocals.wav"  # OUT/../vocals.wav
    victim.write_bytes(b"precious")
    res = CliRunner().invoke(main, ["separate", *(str(src / n) for n in ("...flac", "..flac", ".hidden.wav")),
                                    "-m", runs["vocals"], "-o", str(out), "--device", "cpu", "-q"])
    assert res.exit_code == 0, res.output
    assert victim.read_bytes() == b"precious" and not (out / "vocals.wav").exists()
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == ["_.", "_..", "_.hidden"]
    for f in folders:
        assert (out / f / "vocals.wav").exists() and (out / f / "instrumental.wav").exists()
    # a symlink planted in OUT cannot redirect a track's folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, out / "song")
    sf.write(src / "song.wav", np.sin(np.arange(8000) / 5.0) * 0.3, 8000)
    res = CliRunner().invoke(main, ["separate", str(src / "song.wav"), "-m", runs["vocals"], "-o", str(out),
                                    "--device", "cpu", "-q"])
    assert res.exit_code == 1 and "outside -o" in res.output + res.stderr
    assert list(elsewhere.iterdir()) == []


def test_separate_refuses_nan_output_of_a_broken_checkpoint(runs, tmp_path):
    import shutil

    run = tmp_path / "broken-run"
    shutil.copytree(runs["vocals"], run)
    for name in ("checkpoint-best.pt", "checkpoint-last.pt"):
        p = run / name
        if not p.exists():
            continue
        ck = torch.load(p, weights_only=True)
        for k in list(ck["model"]):
            if k.endswith("running_var"):
                ck["model"][k] = -torch.ones_like(ck["model"][k])
        torch.save(ck, p)
    wav = tmp_path / "a.wav"
    sf.write(wav, np.sin(np.arange(16000) / 7.0) * 0.3, 8000)
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["separate", str(wav), "-m", str(run), "-o", str(out), "--device", "cpu", "-q"])
    assert res.exit_code == 1, res.output
    assert "NaN or infinite" in res.output + res.stderr and "Traceback" not in res.output + res.stderr
    assert not (out / "a" / "vocals.wav").exists() and not (out / "a" / "instrumental.wav").exists()


def test_separate_reads_a_streamed_flac(tmp_path, streamed_flac):
    from pairminer.errors import AudioError
    from pairminer.train.separate import _Reader

    p = streamed_flac(tmp_path / "streamed.flac", 3.0)
    r = _Reader(str(p), max_duration_s=6 * 3600.0)
    try:
        assert abs(r.frames / r.sr_hz - 3.0) < 0.05
    finally:
        r.close()
    with pytest.raises(AudioError, match="longer than 2 s"):
        _Reader(str(p), max_duration_s=2.0)
