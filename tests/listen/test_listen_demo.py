"""`pairminer listen --demo OUT -o test`: make demo's run (a trained model in OUT/runs/vocals, the mined
stems in OUT/stems/<split>/<pair>/) as a listening test in one command, on a tiny generated setup."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from pairminer.cli import main

from .conftest import make_setup

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def demo_out(tmp_path):
    from pairminer.testing.train import TINY, make_targets

    from pairminer.train import TrainConfig, run_train

    out = tmp_path / "demo"
    run_train(make_targets(tmp_path / "targets"), out / "runs" / "vocals",
              TrainConfig(**TINY, source="vocals", max_steps=2, valid_every=2), progress=False)
    src = make_setup(tmp_path / "gen", n_tracks=3, seconds=3.0)
    for i, split in enumerate(("train", "test", "test")):
        pair = f"P{i}__Q{i}"
        dst = out / "stems" / split / pair
        dst.mkdir(parents=True)
        shutil.copy(src["mixes"] / f"song{i + 1}.wav", dst / "mixture.wav")
        for s in ("vocals", "instrumental"):
            shutil.copy(src["refs"] / f"song{i + 1}" / f"{s}.wav", dst / f"{s}.wav")
    return out


def test_demo_is_one_command_model_vs_mixture_vs_oracle(demo_out, tmp_path):
    res = CliRunner().invoke(main, ["listen", "--demo", str(demo_out), "-o", str(tmp_path / "test"), "--tracks", "2",
                                    "--excerpt-s", "2", "-q"])
    assert res.exit_code == 0, res.output
    key = json.loads((tmp_path / "test" / "key.json").read_text())
    assert key["systems"] == ["model (vocals)", "mixture"]
    # the held-out (test split) pairs come first; the oracle is each trial's hidden reference
    assert sorted(t["track"] for t in key["tracks"]) == ["P1__Q1", "P2__Q2"]
    for t in key["trials"]:
        assert sorted((s["kind"], s["system"] or "") for s in t["stimuli"]) == [
            ("anchor", ""), ("hidden_reference", ""), ("system", "mixture"), ("system", "model (vocals)")]
    assert len(key["trials"]) == 4 and (tmp_path / "test" / "listen.html").stat().st_size > 10_000
    for pair in ("P1__Q1", "P2__Q2"):
        assert (tmp_path / "test" / "systems" / "model" / pair / "vocals.wav").exists()


def test_demo_without_a_run_is_one_line(tmp_path):
    (tmp_path / "demo").mkdir()
    res = CliRunner().invoke(main, ["listen", "--demo", str(tmp_path / "demo"), "-o", str(tmp_path / "t")])
    assert res.exit_code == 2 and "no trained run under" in res.stderr and "Traceback" not in res.output
