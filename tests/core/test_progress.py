"""The progress helper: bars in a terminal, a bounded number of log lines elsewhere, nothing with --quiet."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import dask
import pytest

from pairminer.parallel import dask_runner
from pairminer.progress import Progress

LINE = re.compile(r"^(?P<label>[\w: ]+): (?P<done>[\d,]+)/(?P<total>[\d,]+) (?P<unit>\w+) \((?P<pct>\d+)%\), "
                  r"(?P<rate>[\d,.]+) \w+/s, ETA (?P<eta>[\w ?]+)$")
REPO = Path(__file__).resolve().parents[2]


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pairminer.progress"]


def test_log_mode_is_bounded_and_reads_like_a_log(caplog):
    caplog.set_level(logging.INFO, logger="pairminer.progress")
    clock = _Clock()
    with Progress("targets", 1000, unit="pair", stream=io.StringIO(), clock=clock) as bar:
        assert bar.mode == "log"
        for _ in range(1000):
            clock.t += 0.05  # 50 s in all
            bar.update(1)
    lines = _lines(caplog)
    assert len(lines) <= 100 / 10 + 50 / 10 + 1
    body, last = lines[:-1], lines[-1]
    assert len(body) >= 9  # every 10%
    for ln in body:
        m = LINE.match(ln)
        assert m, ln
        assert m["label"] == "targets" and m["total"] == "1,000" and m["unit"] == "pairs"
        assert float(m["rate"]) == pytest.approx(20.0, rel=0.05)
    done = [int(LINE.match(ln)["done"].replace(",", "")) for ln in body]
    assert done == sorted(done) and done[0] == 100
    assert last.startswith("targets: done 1,000/1,000 pairs in 50 s (20.0 pairs/s)")


def test_log_mode_time_interval(caplog):
    caplog.set_level(logging.INFO, logger="pairminer.progress")
    clock = _Clock()
    bar = Progress("verify", 10_000, unit="file", stream=io.StringIO(), clock=clock, interval_s=10)
    for _ in range(95):  # 95 files over 95 s: under 1% of the stage, so only the time rule fires
        clock.t += 1.0
        bar.update(1)
    lines = _lines(caplog)
    assert len(lines) == 9
    m = LINE.match(lines[0])
    assert m["done"] == "10" and m["eta"] == "2 h 46 min"  # 9,990 files at 1 file/s
    bar.close()
    assert _lines(caplog)[-1].startswith("verify: stopped at 95/10,000 files")


def test_disabled_or_empty_shows_nothing(caplog):
    caplog.set_level(logging.INFO, logger="pairminer.progress")
    for bar in (Progress("x", 10, enabled=False, stream=io.StringIO()), Progress("y", 0, stream=io.StringIO())):
        bar.update(5)
        bar.close()
        assert bar.mode == "off"
    assert _lines(caplog) == []


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_terminal_gets_a_live_bar(caplog):
    caplog.set_level(logging.INFO, logger="pairminer.progress")
    tty = _Tty()
    with Progress("targets", 50, unit="pair", stream=tty) as bar:
        assert bar.mode == "bar"
        bar.update(50)
    assert "targets" in tty.getvalue() and "50/50" in tty.getvalue()
    assert _lines(caplog) == []


@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
def test_runner_counts_tasks_with_weights(scheduler):
    bar = Progress("t", 10, unit="pair", stream=io.StringIO())
    tasks = [dask.delayed(lambda x: x * 2, pure=True)(i, dask_key_name=f"t-{i}") for i in range(4)]
    with dask_runner(scheduler, progress=True) as runner:
        (out,) = runner.compute(tasks, progress=bar, weights=[1, 2, 3, 4])
    assert out == [0, 2, 4, 6] and bar.done == 10
    with pytest.raises(ValueError, match="weights"):
        with dask_runner(scheduler) as runner:
            runner.compute(tasks, weights=[1])


@pytest.mark.slow
def test_a_redirected_stage_writes_a_bounded_log(tmp_path):
    """The chained mining stages on the sample, stderr and stdout to a file: no carriage returns, few lines."""
    log_path = tmp_path / "run.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(log_path, "wb") as f:
        proc = subprocess.run([sys.executable, "-m", "pairminer", "discover", str(REPO / "data/sample/catalog.csv"),
                               "-o", str(tmp_path / "out")], stdout=f, stderr=subprocess.STDOUT, env=env,
                              timeout=600)
    text = log_path.read_text(encoding="utf-8")
    assert proc.returncode == 0, text[-3000:]
    assert "\r" not in text
    lines = text.splitlines()
    progress = [ln.split(": ", 1)[1] for ln in lines if ln.startswith("INFO pairminer.progress: ")]
    assert len(lines) <= 60, text
    stages = {p.split(":")[0] for p in progress}
    assert {"discover", "verify", "targets"} <= stages
    for stage in ("discover", "targets"):
        mine = [p for p in progress if p.split(":")[0] == stage]
        assert len(mine) <= 11 and "done" in mine[-1]
    tgt = [LINE.match(p) for p in progress if p.startswith("targets: ") and "done" not in p]
    assert tgt and all(m and m["unit"] == "pairs" for m in tgt)
    for stage in ("targets", "stems"):  # each pair counted once, across batches
        assert any(p.startswith(f"{stage}: done 6/6 pairs") for p in progress), progress
    quiet = subprocess.run([sys.executable, "-m", "pairminer", "discover", str(REPO / "data/sample/catalog.csv"),
                            "-o", str(tmp_path / "q"), "--until", "candidates", "-q"], capture_output=True,
                           text=True, env=env, timeout=600)
    assert quiet.returncode == 0 and "pairminer.progress" not in quiet.stdout + quiet.stderr


def test_resumed_run_postfix_and_track(caplog):
    caplog.set_level(logging.INFO, logger="pairminer.progress")
    clock = _Clock()
    bar = Progress("train", 100, unit="step", stream=io.StringIO(), clock=clock, initial=50)
    assert bar.done == 50
    for _ in range(10):
        clock.t += 1.0
        bar.update(1)
    bar.set_postfix(loss="0.0046")
    clock.t += 1.0
    bar.update(1)
    lines = _lines(caplog)
    # a resumed run starts at 50%: its first line is at 60%, its rate counts only this run's steps
    assert lines[0].startswith("train: 60/100 steps (60%), 1.0 steps/s, ETA 40 s")
    assert len(lines) == 1  # 61%: neither another 10% nor 10 s since the last line
    assert bar.line() == "train: 61/100 steps (61%), 1.0 steps/s, ETA 39 s, loss 0.0046"
    got = list(Progress("evaluate", 3, unit="track", stream=io.StringIO()).track(["a", "b", "c"]))
    assert got == ["a", "b", "c"] and _lines(caplog)[-1].startswith("evaluate: done 3/3 tracks")
