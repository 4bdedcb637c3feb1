"""The U-Net: shapes, parameter count from the architecture, config checks, torch-only imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from pairminer.errors import ConfigError
from pairminer.train import TrainConfig, UNet, normalise_patch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def expected_parameters(base: int = 16, kernel: int = 5) -> int:
    """Count from the paper's layer list: convs without bias (BatchNorm follows), BN scale+shift per channel."""
    enc = [base * 2**i for i in range(6)]  # 16 .. 512
    total, c_in = 0, 1
    for c in enc:
        total += c_in * c * kernel * kernel + 2 * c
        c_in = c
    dec_out = [256, 128, 64, 32, 16] if base == 16 else [c for c in reversed(enc[:-1])]
    c_in = enc[-1]
    for c in dec_out:
        total += c_in * c * kernel * kernel + 2 * c
        c_in = 2 * c  # the next layer sees this output concatenated with the encoder map of the same size
    return total + c_in * 1 * kernel * kernel + 1  # last deconv -> 1 channel, with bias, then sigmoid


def test_parameter_count_matches_the_paper_architecture():
    model = UNet()
    assert sum(p.numel() for p in model.parameters()) == expected_parameters() == 9_821_809
    assert sum(p.numel() for p in UNet(base_channels=8).parameters()) == expected_parameters(base=8)


def test_layer_structure():
    model = UNet()
    assert [m[0].out_channels for m in model.encoder] == [16, 32, 64, 128, 256, 512]
    assert all(m[0].kernel_size == (5, 5) and m[0].stride == (2, 2) for m in model.encoder)
    assert all(m[2].negative_slope == 0.2 for m in model.encoder)
    assert [m[0].out_channels for m in model.decoder] == [256, 128, 64, 32, 16, 1]
    dropouts = [sum(isinstance(x, torch.nn.Dropout) and x.p == 0.5 for x in m) for m in model.decoder]
    assert dropouts == [1, 1, 1, 0, 0, 0]
    assert isinstance(model.decoder[-1][-1], torch.nn.Sigmoid)


def test_output_shape_and_mask_range_at_paper_size():
    torch.manual_seed(0)
    model = UNet().eval()
    x = torch.rand(1, 1, 512, 128)
    with torch.no_grad():
        mask = model.mask(x)
        y = model(x)
    assert mask.shape == y.shape == (1, 1, 512, 128)
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    torch.testing.assert_close(y, mask * x)


def test_small_input_and_gradients():
    model = UNet(base_channels=4)
    x = torch.rand(2, 1, 64, 128, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 1, 64, 128)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_normalise_patch():
    mix = torch.rand(3, 1, 8, 8) * torch.tensor([1.0, 5.0, 0.0]).view(3, 1, 1, 1)
    tgt = mix / 2
    m, t, scale = normalise_patch(mix, tgt)
    assert torch.allclose(m.amax(dim=(1, 2, 3))[:2], torch.ones(2))
    assert torch.all(m[2] == 0) and torch.allclose(t[:2], m[:2] / 2)
    assert scale.shape == (3, 1, 1, 1)


def test_config_checks_and_round_trip():
    cfg = TrainConfig()
    assert (cfg.n_bins, cfg.patch_frames, cfg.base_channels, cfg.lr) == (0, 128, 16, 1e-3)
    assert cfg.resolved_bins(1024) == 512 and cfg.resolved_bins(2048) == 1024  # bins from the data
    assert cfg.max_steps == 20000 and cfg.early_stop_patience > 0 and cfg.lr_schedule == "plateau"
    assert cfg.channel == 2 and cfg.replace(source="instrumental").channel == 1
    assert TrainConfig.from_yaml(cfg.to_yaml()) == cfg
    with pytest.raises(ConfigError, match="multiple of 64"):
        TrainConfig(n_bins=500)  # refused when built
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig.from_dict({"batch_sise": 4})
    with pytest.raises(ConfigError, match="source"):
        TrainConfig.from_dict({"source": "drums"})


def test_train_package_imports_without_audio_or_dask_stack():
    blocked = ["librosa", "dask", "distributed", "soundfile", "soxr", "audioread", "scipy", "museval", "mir_eval",
               "click", "yaml", "jsonschema", "fsspec", "tqdm", "acoustid", "rapidfuzz", "matplotlib"]
    code = textwrap.dedent(f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None  # any import of these now raises ImportError
        import pairminer.train, pairminer.train.model, pairminer.train.data, pairminer.train.loop
        import pairminer.train.separate, pairminer.train.evaluate, pairminer.train.config
        import pairminer.train.checkpoint, pairminer.train.separator
        from pairminer.train import UNet, run_train, Separator, separate_array
        loaded = sorted(m for m in {blocked!r} if sys.modules.get(m) is not None)
        assert not loaded, loaded
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
