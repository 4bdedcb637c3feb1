import pandas as pd
import pytest
from click.testing import CliRunner

from pairminer.cli import main

HEADER = "track_id,artist,title,duration,genre\n"


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))


def test_group_help_lists_commands():
    res = CliRunner().invoke(main, ["--help"])
    assert res.exit_code == 0
    assert "discover" in res.output and "Usage" in res.output


@pytest.mark.parametrize("path,cmd", list(_commands(main)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help(path, cmd):
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"
    res = CliRunner().invoke(main, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output
    for param in cmd.params:
        if getattr(param, "param_type_name", "") == "option" and not param.hidden:
            assert param.help, f"{' '.join(path)} {param.opts} has no help"


def _assert_clean_error(res, code=2):
    assert res.exit_code == code, res.output
    assert "Traceback" not in (res.output + (res.stderr or ""))
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("content,match", [
    (b"", "empty"), (HEADER.encode(), "no data rows"), (b"a,b\n1,2\n", "lacks required column"),
    (bytes(range(256)) * 10, "binary|lacks required"),
])
def test_cli_bad_catalog_is_one_line(tmp_path, content, match):
    p = tmp_path / "c.csv"
    p.write_bytes(content)
    res = CliRunner().invoke(main, ["discover", str(p), "-o", str(tmp_path / "o"), "--until", "discover", "-q"])
    line = _assert_clean_error(res)
    import re

    assert re.search(match, line)


def test_cli_missing_path_and_folder(tmp_path):
    r = CliRunner()
    line = _assert_clean_error(r.invoke(main, ["discover", str(tmp_path / "x.csv"), "-q", "--until", "discover"]))
    assert "does not exist" in line
    line = _assert_clean_error(r.invoke(main, ["discover", str(tmp_path), "-q", "--until", "discover"]))
    assert "folder" in line


def test_cli_unwritable_output(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text(HEADER + "a,X,S,1,P\n")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = CliRunner().invoke(main, ["discover", str(p), "-o", str(blocker / "out"), "-q", "--until", "discover"])
    _assert_clean_error(res, code=1)


def test_cli_discover_writes_outputs_and_summary(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text(HEADER + "a,X,Song,200,Pop\nb,X,Song (Instrumental),200.4,Pop\nc,X,Bad,zero,Pop\n")
    out = tmp_path / "o"
    res = CliRunner().invoke(main, ["discover", str(p), "-o", str(out), "--until", "discover", "-q",
                                    "--min-score", "95", "--column", "genre=genre"])
    assert res.exit_code == 0, res.output
    assert "1 candidates" in res.output and "1 rejected" in res.output
    c = pd.read_parquet(out / "candidates.parquet")
    assert list(zip(c.mix_track_id, c.version_track_id)) == [("a", "b")]


def test_cli_bad_option_values(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text(HEADER + "a,X,S,1,P\n")
    res = CliRunner().invoke(main, ["discover", str(p), "--column", "nonsense", "-q"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["discover", str(p), "--min-score", "300", "-q", "--until", "discover",
                                    "-o", str(tmp_path / "o")])
    _assert_clean_error(res)
    res = CliRunner().invoke(main, ["discover", str(p), "--scheduler", "bogus", "-q", "--until", "discover",
                                    "-o", str(tmp_path / "o")])
    _assert_clean_error(res)


def test_url_output_with_targets_fails_before_any_work(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text(HEADER + "a,X,Song,200,Pop\n")
    res = CliRunner().invoke(main, ["discover", str(p), "-o", "memory://pm-out/x", "-q"])
    line = _assert_clean_error(res)
    assert "--until verify" in line
    import fsspec

    assert not fsspec.filesystem("memory").exists("/pm-out/x")  # refused before discover ran
    res = CliRunner().invoke(main, ["discover", str(p), "-o", "memory://pm-out/y", "-q", "--until", "discover"])
    assert res.exit_code == 0, res.output


# --------------------------------------------------------------------------------------------------
# Options generated from the config dataclasses
# --------------------------------------------------------------------------------------------------


def _option(cmd, field):
    for p in cmd.params:
        if p.name == field:
            return p
    return None


@pytest.mark.parametrize("stage_name", ["discover", "verify", "targets", "train", "report"])
def test_every_config_field_is_an_option_with_its_default(stage_name):
    import dataclasses
    import typing

    from pairminer import stages
    from pairminer.cli._options import field_help

    spec = stages.stage(stage_name)
    cmd = main.commands[spec.command]
    cls = spec.config_class()
    helps = field_help(cls)
    assert set(helps) == set(cls.field_names()), "every field is described in the Attributes: docstring"
    for f in dataclasses.fields(cls):
        opt = _option(cmd, f.name)
        assert opt is not None, f"{spec.command} has no option for {stage_name}.{f.name}"
        assert opt.default in (None, ()), f"{f.name}: a generated option must not override --config by default"
        hint = typing.get_type_hints(cls)[f.name]
        if typing.get_origin(hint) is typing.Literal:
            assert list(opt.type.choices) == list(typing.get_args(hint))
        if not opt.multiple:
            default = f.default
            shown = {None: "none", True: "on", False: "off"}.get(default, None) if isinstance(default, (bool, type(None))) \
                else (",".join(map(str, default)) if isinstance(default, tuple) else str(default))
            assert "[default: " in opt.help
            if "default_text" not in __import__("pairminer.cli._options", fromlist=["x"]).OVERRIDES.get(
                    (stage_name, f.name), {}):
                assert opt.help.endswith(f"[default: {shown}]"), (f.name, opt.help)
    assert _option(cmd, "config_path") is not None or _option(cmd, "config_file") is not None


def test_scorer_lists_every_scorer():
    from pairminer.discover.config import SCORERS

    assert list(_option(main.commands["discover"], "scorer").type.choices) == list(SCORERS)


def test_old_spellings_still_work():
    spell = {("report", "examples_per_status"): "--examples", ("verify", "no_cache"): "--no-cache",
             ("train", "compile"): "--compile", ("discover", "keywords"): "--keyword",
             ("discover", "columns"): "--column"}
    for (cmd, field), flag in spell.items():
        assert flag in _option(main.commands[cmd], field).opts
    assert "--no-compile" in _option(main.commands["train"], "compile").secondary_opts


def test_config_file_then_command_line(tmp_path, monkeypatch):
    import pairminer.targets.stage as ts

    seen = {}

    def fake(verified, out, config, **kw):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(ts, "run_targets", fake)
    cfg = tmp_path / "t.yaml"
    cfg.write_text("targets: {hop: 512, shard_mb: 8, splits: [0.7, 0.2, 0.1]}\n")
    res = CliRunner().invoke(main, ["targets", "v.parquet", "-o", str(tmp_path / "o"), "--config", str(cfg),
                                    "--hop", "256", "--split-seed", "3", "-q"])
    assert res.exit_code == 0, res.output
    c = seen["config"]
    assert (c.hop, c.shard_mb, c.splits, c.split_seed, c.n_fft) == (256, 8.0, (0.7, 0.2, 0.1), 3, 1024)
    res = CliRunner().invoke(main, ["targets", "v.parquet", "-o", str(tmp_path / "o"), "--splits", "0.5,0.25,0.25",
                                    "-q"])
    assert seen["config"].splits == (0.5, 0.25, 0.25)
    cfg.write_text("targest: {hop: 512}\n")
    res = CliRunner().invoke(main, ["targets", "v.parquet", "-o", str(tmp_path / "o"), "--config", str(cfg)])
    assert res.exit_code == 2 and "did you mean 'targets'?" in res.output
    res = CliRunner().invoke(main, ["targets", "v.parquet", "-o", str(tmp_path / "o"), "--sr", "2.5"])
    assert res.exit_code == 2 and "Traceback" not in res.output


def test_a_new_config_field_becomes_an_option(monkeypatch):
    import dataclasses

    import click

    from pairminer import stages
    from pairminer.cli._options import config_options
    from pairminer.report.config import ReportConfig

    @dataclasses.dataclass(frozen=True)
    class Wider(ReportConfig):
        """Report options plus one.

        Attributes:
            max_rows_shown: rows shown per table,
                at most.
        """

        max_rows_shown: int = 50

    spec = dataclasses.replace(stages.stage("report"), config=f"{__name__}:_WIDER")
    globals()["_WIDER"] = Wider
    monkeypatch.setattr(stages, "STAGES", tuple(spec if s.name == "report" else s for s in stages.STAGES))

    @click.command()
    @config_options("report")
    def cmd(**kw):
        click.echo(repr(kw["max_rows_shown"]))

    opt = _option(cmd, "max_rows_shown")
    assert opt.opts == ["--max-rows-shown"] and opt.help == "Rows shown per table, at most.  [default: 50]"
    assert CliRunner().invoke(cmd, ["--max-rows-shown", "7"]).output.strip() == "7"


def test_cli_reference_is_current():
    from pathlib import Path

    from pairminer.cli._reference import cli_reference

    doc = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
    assert doc.read_text(encoding="utf-8") == cli_reference(), \
        "docs/cli.md is out of date; regenerate it: python -m pairminer.cli._reference > docs/cli.md"
    for name in main.commands:
        assert f"## pairminer {name}\n" in doc.read_text(encoding="utf-8")


@pytest.mark.parametrize("args", [
    ["verify", "s3://bucket/candidates.parquet", "-o", "OUTDIR"],
    ["verify", "c.parquet", "-o", "s3://bucket/out"],
    ["report", "s3://bucket/out", "-o", "OUTDIR"],
    ["discover", "CATALOG", "-o", "s3://bucket/out", "--until", "discover"],
    ["discover", "s3://bucket/catalog.csv", "-o", "OUTDIR", "--until", "discover"],
])
def test_url_without_its_backend_is_refused_before_any_work(tmp_path, monkeypatch, args):
    import fsspec

    real = fsspec.get_filesystem_class
    monkeypatch.setattr(fsspec, "get_filesystem_class",
                        lambda p: (_ for _ in ()).throw(ImportError("Install s3fs to access S3")) if p == "s3"
                        else real(p))
    (tmp_path / "c.csv").write_text(HEADER + "a,X,Song,200,Pop\n")
    args = [str(tmp_path / "c.csv") if a == "CATALOG" else str(tmp_path / "o") if a == "OUTDIR" else a for a in args]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "s3fs" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_non_finite_and_fractional_options_are_refused():
    res = CliRunner().invoke(main, ["train", "t", "-o", "r", "--lr", "inf"])
    assert res.exit_code == 2 and "train.lr: inf is not a finite number" in res.output
    res = CliRunner().invoke(main, ["train", "t", "-o", "r", "--batch-size", "2.7"])
    assert res.exit_code == 2 and "2.7" in res.output and "Traceback" not in res.output
