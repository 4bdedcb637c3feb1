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
