"""Tests of pairminer.config: the one YAML loader (bombs, duplicate keys) and values checked up front.

A value that would crash a stage half-way (inf, nan, 2.7 for a count, a list where a mapping goes)
is refused when the config is built, with the option's name.
"""

from __future__ import annotations

import tracemalloc

import pytest
from click.testing import CliRunner

from pairminer import stages
from pairminer.cli import main
from pairminer.config import MAX_YAML_BYTES, did_you_mean, load_yaml
from pairminer.errors import ConfigError
from pairminer.workflow.file import load_workflow, workflow_from_yaml

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
catalog: c.csv
out: o
"""


def test_yaml_bomb_is_refused_before_expanding(tmp_path):
    p = tmp_path / "w.yaml"
    p.write_text(BOMB)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match=r"line 2: YAML aliases \(\*a\) are not accepted"):
            load_workflow(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # refused at the first alias: the 9**9-item expansion would need gigabytes
    assert not (tmp_path / "o").exists()


def test_merge_keys_use_aliases_and_are_refused_too():
    with pytest.raises(ConfigError, match="aliases"):
        load_yaml("base: &b {min_score: 80}\ndiscover:\n  <<: *b\n", "w.yaml")


def test_an_anchor_without_alias_is_harmless():
    assert load_yaml("a: &x 1\nb: 2\n") == {"a": 1, "b": 2}


def test_oversized_yaml_is_refused_before_parsing(tmp_path):
    text = "catalog: c.csv\nout: o\n#" + "x" * MAX_YAML_BYTES + "\n"
    with pytest.raises(ConfigError, match="too large"):
        workflow_from_yaml(text, where="big.yaml")
    p = tmp_path / "big.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match="too large"):
        load_workflow(p)


@pytest.mark.parametrize("text, key, lines", [
    ("catalog: c.csv\nout: o\ncatalog: d.csv\n", "catalog", (3, 1)),
    ("catalog: c.csv\nout: o\nverify:\n  max_ber: 0.3\n  max_ber: 0.4\n", "max_ber", (5, 4)),
    ("catalog: c.csv\nout: o\ndiscover: {min_score: 80, min_score: 95}\n", "min_score", (3, 3)),
    ("catalog: c.csv\nout: o\nverify: {}\nverify: {max_ber: 0.2}\n", "verify", (4, 3)),
])
def test_duplicate_keys_are_refused_with_both_lines(tmp_path, text, key, lines):
    p = tmp_path / "w.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_workflow(p)
    msg = str(e.value)
    assert msg.startswith(str(p)) and f"line {lines[0]}: key {key!r} appears twice (first on line {lines[1]})" in msg


def test_stage_config_from_yaml_uses_the_same_loader():
    cls = stages.config_class("verify")
    with pytest.raises(ConfigError, match="appears twice"):
        cls.from_yaml("verify:\n  max_ber: 0.3\n  max_ber: 0.4\n")
    with pytest.raises(ConfigError, match="aliases"):
        cls.from_yaml("x: &x 0.3\nverify: {max_ber: *x}\n")
    assert cls.from_yaml("verify: {max_ber: 0.3}\n").max_ber == 0.3


@pytest.mark.parametrize("stage, values, needle", [
    ("train", {"batch_size": 2.7}, "train.batch_size: 2.7 is not a whole number"),
    ("train", {"max_steps": True}, "train.max_steps: True is not a whole number"),
    ("train", {"lr": float("inf")}, "train.lr: inf is not a finite number"),
    ("train", {"time_budget_s": float("nan")}, "train.time_budget_s: nan is not a finite number"),
    ("train", {"skip_silent_target_db": float("-inf")}, "skip_silent_target_db: -inf is not a finite number"),
    ("verify", {"max_seconds": float("inf")}, "verify.max_seconds: inf is not a finite number"),
    ("verify", {"max_ber": "abc"}, "verify.max_ber: 'abc' is not a number"),
    ("verify", {"max_ber": [0.3]}, "verify.max_ber: [0.3] is not a number"),
    ("verify", {"no_cache": "maybe"}, "not a boolean"),
    ("verify", {"no_cache": 2}, "not a boolean"),
    ("targets", {"splits": [0.8, float("nan"), 0.1]}, "targets.splits[1]: nan is not a finite number"),
    ("targets", {"splits": 0.8}, "targets.splits: expected a list"),
    ("targets", {"sr": 8192.5}, "targets.sr: 8192.5 is not a whole number"),
    ("targets", {"window": ["hann"]}, "targets.window: expected a text value"),
    ("discover", {"keywords": ["instru"]}, "discover.keywords: expected a mapping"),
    ("discover", {"keywords": {"instrumental": "instru"}}, "discover.keywords.instrumental: expected a list"),
    ("discover", {"keywords": {"instrumental": [["a"]]}}, "discover.keywords.instrumental[0]: expected a text"),
    ("discover", {"columns": {"title": {"a": 1}}}, "discover.columns.title: expected a text value"),
    ("discover", {"columns": "title=track"}, "discover.columns: expected a mapping"),
    ("report", {"top_n": 1e400}, "report.top_n: inf is not a whole number"),
])
def test_bad_values_are_refused_up_front_naming_the_option(stage, values, needle):
    with pytest.raises(ConfigError) as e:
        stages.config_class(stage).from_dict(values)
    assert needle in str(e.value)


def test_good_values_are_converted_exactly():
    train = stages.config_class("train").from_dict({"batch_size": 4.0, "lr": "0.001", "max_steps": "7"})
    assert (train.batch_size, train.lr, train.max_steps) == (4, 0.001, 7)
    assert type(train.batch_size) is int
    d = stages.config_class("discover").from_dict({"keywords": {"instrumental": ["instru"]},
                                                   "columns": {"title": "track_name"}, "min_score": 85})
    assert d.keywords == {"instrumental": ["instru"]} and d.columns == {"title": "track_name"}
    assert d.min_score == 85.0 and type(d.min_score) is float


def test_yaml_values_reach_the_same_checks(tmp_path):
    for text, needle in (("train: {batch_size: 2.7}", "train.batch_size: 2.7"),
                         ("verify: {max_ber: .inf}", "verify.max_ber: inf"),
                         ("targets: {sr: .nan}", "targets.sr: nan")):
        p = tmp_path / "w.yaml"
        p.write_text(f"catalog: c.csv\nout: o\n{text}\n")
        with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
            load_workflow(p)


def test_did_you_mean():
    assert did_you_mean("stage", "verfy", ("discover", "verify")) == "unknown stage 'verfy'; did you mean 'verify'?"
    assert did_you_mean("stage", "zzz", ("discover", "verify")) == "unknown stage 'zzz'; valid stages: discover, verify"


def test_plain_window_names_are_scipy_windows_and_others_are_still_checked():
    """targets.window skips importing scipy for a fixed set of names: each must be one scipy knows."""
    import scipy.signal

    from pairminer.errors import ConfigError
    from pairminer.targets.config import _PLAIN_WINDOWS, TargetsConfig

    for name in _PLAIN_WINDOWS:
        assert len(scipy.signal.get_window(name, 16)) == 16
        TargetsConfig(window=name)
    with pytest.raises(ConfigError, match="not a known window"):
        TargetsConfig(window="no-such-window")


def test_local_scheduler_does_not_import_distributed():
    """A local scheduler spares the start-up the import of dask.distributed."""
    import subprocess
    import sys

    code = ("import sys, dask; from pairminer.parallel import dask_runner\n"
            "with dask_runner('threads', progress=False) as r: assert r.compute(dask.delayed(sum)([1, 2])) == (3,)\n"
            "print('distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("source", ["/dev/zero", "/dev/urandom"])
def test_a_device_as_workflow_or_config_is_refused_after_the_cap(tmp_path, source):
    import resource

    r = CliRunner().invoke(main, ["run", source, "-q"])
    assert r.exit_code == 2 and "too large for a config file" in r.output + r.stderr
    assert "Traceback" not in r.output + r.stderr
    (tmp_path / "c.csv").write_text("track_id,artist,title,duration\na,X,S,100\n")
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "x.parquet"), "-o", str(tmp_path / "o"), "--config",
                                  source, "-q"])
    assert r.exit_code == 2 and "too large for a config file" in r.output + r.stderr
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 << 20  # KiB: well under 4 GiB


def test_deep_yaml_nesting_is_one_line(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text("[" * 300_000)
    r = CliRunner().invoke(main, ["run", str(p), "-q"])
    assert r.exit_code == 2 and "nested too deeply" in r.output + r.stderr
    assert "RecursionError" not in r.output + r.stderr
