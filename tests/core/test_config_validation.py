"""Every stage config is validated when it is built, from Python as from the CLI or a workflow file.

`VerifyConfig(min_ber=0.9, max_ber=0.1)` used to be accepted in Python although the CLI refused it;
now `StageConfig.__post_init__` checks the field types (NaN, infinity, fractions for counts, None)
and runs the class's `check()` (ranges, inconsistent combinations), with the CLI's one-line messages.
"""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest
from click.testing import CliRunner

from pairminer import stages
from pairminer.cli import main
from pairminer.errors import ConfigError

NAN, INF = float("nan"), float("inf")


def _tally():
    from example_stage.config import TallyConfig  # the worked example of docs/architecture.md

    return TallyConfig


def _cls(stage: str) -> type:
    return _tally() if stage == "tally" else stages.config_class(stage)


# stage -> what: (overrides, text the one-line message must hold: the field's name)
CASES: dict[str, dict[str, tuple[dict, str]]] = {
    "discover": {
        "non-finite": ({"max_delta": NAN}, "discover.max_delta"),
        "infinite": ({"near_miss_range_s": INF}, "discover.near_miss_range_s"),
        "negative window": ({"max_delta": -1.0}, "discover.max_delta"),
        "negative size": ({"partition_rows": -5}, "discover.partition_rows"),
        "negative margin": ({"ambiguity_margin": -1.0}, "discover.ambiguity_margin"),
        "pair: replace_keywords without keywords": ({"replace_keywords": True}, "discover.replace_keywords"),
        "pair: keywords of a kind not looked for": ({"kinds": ("instrumental",), "keywords": {"instrumentl": ["x"]}},
                                                    "did you mean 'instrumental'"),
    },
    "verify": {
        "non-finite": ({"min_ber": NAN}, "verify.min_ber"),
        "infinite": ({"max_offset_s": INF}, "verify.max_offset_s"),
        "negative window": ({"min_overlap_s": -1.0}, "min_overlap_s"),
        "negative size": ({"batch_pairs": -1}, "batch_pairs"),
        "pair: min_ber above max_ber": ({"min_ber": 0.9, "max_ber": 0.1}, "min_ber < max_ber"),
        "pair: max_seconds below min_seconds": ({"max_seconds": 3.0, "min_seconds": 5.0}, "max_seconds"),
        "pair: min_seconds above max_duration_s": ({"min_seconds": 50.0, "max_duration_s": 10.0}, "max_duration_s"),
    },
    "stems": {
        "non-finite": ({"min_cancellation_db": NAN}, "stems.min_cancellation_db"),
        "infinite": ({"max_duration_s": INF}, "stems.max_duration_s"),
        "negative window": ({"search_window_s": -0.5}, "stems.search_window_s"),
        "negative size": ({"max_drift_ppm": -1.0}, "stems.max_drift_ppm"),
        "pair: FLOAT in FLAC": ({"format": "flac", "subtype": "FLOAT"}, "stems.subtype"),
        "pair: min_seconds above max_duration_s": ({"min_seconds": 50.0, "max_duration_s": 10.0}, "stems.min_seconds"),
    },
    "targets": {
        "non-finite": ({"search_window_s": NAN}, "targets.search_window_s"),
        "infinite": ({"shard_mb": INF}, "targets.shard_mb"),
        "negative window": ({"search_window_s": -0.5}, "targets.search_window_s"),
        "negative size": ({"hop": -1}, "targets.hop"),
        "pair: hop above n_fft": ({"n_fft": 512, "hop": 1024}, "targets.hop"),
        "pair: splits not summing to 1": ({"splits": (0.5, 0.5, 0.5)}, "targets.splits"),
    },
    "train": {
        "non-finite": ({"lr": NAN}, "train.lr"),
        "infinite": ({"time_budget_s": INF}, "train.time_budget_s"),
        "negative size": ({"patch_frames": -64}, "train.patch_frames"),
        "negative seed": ({"seed": -1}, "train.seed"),
        "pair: no step budget and no epochs": ({"epochs": 0, "max_steps": 0}, "max_steps"),
    },
    "report": {
        "non-finite": ({"clip_s": NAN}, "report.clip_s"),
        "infinite": ({"max_audio_mb": INF}, "report.max_audio_mb"),
        "negative window": ({"clip_s": -1.0}, "report.clip_s"),
        "negative size": ({"hist_bins": -3}, "report.hist_bins"),
        "negative seed": ({"example_seed": -1}, "report.example_seed"),
        "pair: audio budget below one clip": ({"max_audio_mb": 0.01, "clip_s": 10.0}, "report.max_audio_mb"),
    },
    "tally": {  # two independent fields: no combination can be inconsistent
        "non-finite": ({"min_score": NAN}, "tally.min_score"),
        "negative": ({"min_score": -1.0}, "tally.min_score"),
    },
}


def test_every_built_in_stage_has_cases():
    assert set(stages.STAGE_NAMES) <= set(CASES), "add refusal cases for the new stage's config to CASES"


@pytest.mark.parametrize("stage", list(CASES))
def test_defaults_construct_and_round_trip(stage):
    cls = _cls(stage)
    cfg = cls()
    assert cls.from_dict(cfg.to_dict()) == cfg
    assert dataclasses.replace(cfg) == cfg


@pytest.mark.parametrize("stage,what", [(s, w) for s, cases in CASES.items() for w in cases])
def test_a_bad_value_is_refused_when_built_naming_the_field(stage, what):
    cls = _cls(stage)
    values, needle = CASES[stage][what]
    for build in (lambda: cls(**values),                              # Python
                  lambda: dataclasses.replace(cls(), **values),       # a copy with changes
                  lambda: cls().replace(**values),                    # the CLI's overrides
                  lambda: cls.from_dict(values)):                     # a workflow file's section
        with pytest.raises(ConfigError) as e:
            build()
        msg = str(e.value)
        assert needle in msg and "\n" not in msg, msg


@pytest.mark.parametrize("stage", list(CASES))
def test_every_float_field_refuses_nan_and_infinity(stage):
    cls = _cls(stage)
    hints = typing.get_type_hints(cls)
    floats = [f.name for f in dataclasses.fields(cls)
              if hints[f.name] is float or typing.get_args(hints[f.name]) == (float, type(None))]
    assert floats or stage not in ("discover", "verify", "targets", "train", "report")
    for name in floats:
        for bad in (NAN, INF, -INF):
            with pytest.raises(ConfigError, match=rf"{stage}\.{name}: .* is not a finite number"):
                cls(**{name: bad})


@pytest.mark.parametrize("stage", stages.STAGE_NAMES)
def test_a_field_that_takes_no_none_refuses_none(stage):
    cls = _cls(stage)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.default is not None and type(None) not in typing.get_args(hints[f.name]):
            with pytest.raises(ConfigError, match=rf"{stage}\.{f.name}: a value is required"):
                cls(**{f.name: None})


def test_python_and_cli_give_the_same_message(tmp_path):
    from pairminer.verify.config import VerifyConfig

    with pytest.raises(ConfigError) as e:
        VerifyConfig(min_ber=0.9, max_ber=0.1)
    res = CliRunner().invoke(main, ["verify", str(tmp_path / "c.parquet"), "-o", str(tmp_path / "o"),
                                    "--min-ber", "0.9", "--max-ber", "0.1"])
    assert res.exit_code != 0 and str(e.value) in res.output


def test_values_are_converted_like_the_cli_converts_them():
    from pairminer.discover.config import DiscoverConfig
    from pairminer.targets.config import TargetsConfig
    from pairminer.verify.config import VerifyConfig

    v = VerifyConfig(min_ber=0, max_ber=1)
    assert (type(v.min_ber), type(v.max_ber)) == (float, float)
    d = DiscoverConfig(kinds=["instrumental", "acapella"])
    assert d.kinds == ("instrumental", "acapella") and hash(d.kinds)
    assert DiscoverConfig(kinds="instrumental,karaoke").kinds == ("instrumental", "karaoke")
    t = TargetsConfig(splits=[0.7, 0.2, 0.1])
    assert t.splits == (0.7, 0.2, 0.1) and t == TargetsConfig.from_dict({"splits": [0.7, 0.2, 0.1]})
    with pytest.raises(ConfigError, match=r"targets\.sr: 8192\.5 is not a whole number"):
        TargetsConfig(sr=8192.5)
    with pytest.raises(ConfigError, match=r"verify\.no_cache: 'maybe' is not a boolean"):
        VerifyConfig(no_cache="maybe")


def test_a_config_is_still_frozen_and_a_valid_copy_is_fine():
    from pairminer.verify.config import VerifyConfig

    cfg = VerifyConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.min_ber = 0.2  # type: ignore[misc]
    # Changing both ends of a range at once is fine even when one alone would not be.
    moved = dataclasses.replace(cfg, min_ber=0.5, max_ber=0.6, max_ber_acapella=0.7)
    assert (moved.min_ber, moved.max_ber) == (0.5, 0.6) and math.isclose(moved.max_ber_acapella, 0.7)
