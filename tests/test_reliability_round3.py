"""Reliability, round three: streamed audio, per-item errors, confined outputs, bounded reads, terminal text.

Each test fails on the code before its fix (the issue's repro, generalised to the class).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pairminer.cli import main
from pairminer.errors import AudioError

REPO = Path(__file__).resolve().parents[1]
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def _streamed_flac(path: Path, seconds: float, channels: int = 2) -> Path:
    """A FLAC written to a pipe: its STREAMINFO says the length is unknown."""
    with open(path, "wb") as f:
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                        "-ac", str(channels), "-f", "flac", "pipe:1"], stdout=f, check=True)
    return path


# --------------------------------------------------------------------------------------------------
# #7 streamed FLAC: the header cannot say the length


@needs_ffmpeg
def test_streamed_flac_is_decoded_under_a_streamed_cap(tmp_path):
    from pairminer.audio import DecodeRequest, load_audio, load_audio_rates, probe_duration_s

    p = _streamed_flac(tmp_path / "streamed.flac", 5.0)
    assert probe_duration_s(str(p)) is None  # unknown, not "116192643447 h"
    y, info = load_audio(str(p), 8000, max_duration_s=3600)
    assert abs(info.duration_s - 5.0) < 0.05 and np.abs(y).max() > 0.1
    y2, _ = load_audio(str(p), 8000)
    assert len(y2) == len(y)
    with pytest.raises(AudioError, match="longer than the length cap of 3 s"):
        load_audio(str(p), 8000, max_duration_s=3)
    out = load_audio_rates(str(p), [DecodeRequest(8000, max_duration_s=3600), DecodeRequest(11025),
                                    DecodeRequest(8000, max_duration_s=2)])
    assert abs(out[0][1].duration_s - 5.0) < 0.05 and abs(out[1][1].duration_s - 5.0) < 0.05
    assert isinstance(out[2], AudioError) and "length cap of 2 s" in str(out[2])


@needs_ffmpeg
def test_separate_reads_a_streamed_flac(tmp_path):
    from pairminer.train.separate import _Reader

    p = _streamed_flac(tmp_path / "streamed.flac", 3.0)
    r = _Reader(str(p), max_duration_s=6 * 3600.0)
    try:
        assert abs(r.frames / r.sr_hz - 3.0) < 0.05
    finally:
        r.close()
    with pytest.raises(AudioError, match="longer than 2 s"):
        _Reader(str(p), max_duration_s=2.0)


# --------------------------------------------------------------------------------------------------
# #6 per-item isolation: a symlink loop, Parquet schema evolution, a damaged manifest


def test_a_symlink_loop_under_audio_root_is_that_items_audio_error(tmp_path):
    from pairminer.audio import resolve_audio_path

    root = tmp_path / "audio"
    root.mkdir()
    os.symlink(root / "b", root / "a")
    os.symlink(root / "a", root / "b")
    with pytest.raises(AudioError, match="symlink loop"):
        resolve_audio_path("a/song.flac", audio_root=str(root))
    assert resolve_audio_path("ok.flac", audio_root=str(root)) == str(root.resolve() / "ok.flac")


def test_discover_goes_on_past_a_symlink_loop(tmp_path):
    from pairminer.discover.stage import DiscoverConfig, run_discover

    root = tmp_path / "audio"
    root.mkdir()
    os.symlink(root / "loop", root / "loop")
    (root / "s.flac").write_bytes(b"x")
    (tmp_path / "c.csv").write_text("track_id,artist,title,duration,audio_path\n"
                                    "a,X,Song,200,loop/x.flac\nb,X,Song (Instrumental),200.2,s.flac\n"
                                    "c,Y,Other,100,s.flac\nd,Y,Other (Instrumental),100.1,s.flac\n")
    res = run_discover(tmp_path / "c.csv", tmp_path / "o", DiscoverConfig(audio_root=str(root)),
                       scheduler="synchronous", progress=False)
    assert res.counts["kept"] >= 1


def _parquet_parts(folder: Path, parts: list[dict]):
    import pandas as pd

    folder.mkdir()
    for k, rows in enumerate(parts):
        pd.DataFrame(rows).to_parquet(folder / f"part-{k}.parquet", index=False)


@pytest.mark.parametrize("genre_in", ["first", "second"])
def test_parquet_folder_with_evolving_optional_columns(tmp_path, genre_in):
    """Schema evolution: a `genre` column in only some files gave an unexpected KeyError (when the
    first file had it) or was silently dropped (when a later one had it)."""
    import pandas as pd

    from pairminer.discover.stage import DiscoverConfig, run_discover

    a = {"track_id": ["a", "b"], "artist": ["X", "X"], "title": ["Song", "Song (Instrumental)"],
         "duration": [200.0, 200.2]}
    b = {"track_id": ["c", "d"], "artist": ["Y", "Y"], "title": ["Tune", "Tune (Instrumental)"],
         "duration": [100.0, 100.1]}
    (a if genre_in == "first" else b)["genre"] = ["Rock", "Rock"]
    _parquet_parts(tmp_path / "ds", [a, b])
    run_discover(tmp_path / "ds", tmp_path / "o", DiscoverConfig(), scheduler="synchronous", progress=False)
    c = pd.read_parquet(tmp_path / "o" / "candidates.parquet").set_index("mix_track_id")
    assert set(c.index) == {"a", "c"}
    with_genre = "a" if genre_in == "first" else "c"
    without = "c" if genre_in == "first" else "a"
    assert c.loc[with_genre, "genre"] == "Rock" and pd.isna(c.loc[without, "genre"])


def test_parquet_folder_file_without_a_required_column_is_named(tmp_path):
    from pairminer.discover.stage import DiscoverConfig, run_discover
    from pairminer.errors import CatalogError

    _parquet_parts(tmp_path / "ds", [
        {"track_id": ["a"], "artist": ["X"], "title": ["S"], "duration": [1.0]},
        {"track_id": ["b"], "artist": ["X"], "duration": [1.0]}])
    with pytest.raises(CatalogError, match=r"part-1.parquet lacks required column\(s\) title"):
        run_discover(tmp_path / "ds", tmp_path / "o", DiscoverConfig(), scheduler="synchronous", progress=False)


def test_a_damaged_manifest_costs_its_sections_not_the_report(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPO / "tests"))
    from test_report import make_out

    from pairminer.report.config import ReportConfig
    from pairminer.report.stage import run_report

    out = make_out(tmp_path / "out")
    man = pd.read_parquet(out / "targets" / "manifest.parquet")
    man["split"] = None  # a damaged manifest: null splits
    pq.write_table(pa.Table.from_pandas(man, preserve_index=False), out / "targets" / "manifest.parquet")
    res = run_report(str(out), str(tmp_path / "rep"), ReportConfig(top_n=3), progress=False)
    doc = json.loads(Path(res.json_path).read_text())
    assert "splits" in doc["section_errors"] and doc["funnel"] and doc["stages"]["targets"]["present"]
    assert "section splits could not be made" in Path(res.html_path).read_text()
    # a section whose code fails outright is recorded the same way
    man["duration_s"] = "not a number"
    man["vocal_energy_ratio"] = [[1.0]] * len(man)
    pq.write_table(pa.Table.from_pandas(man, preserve_index=False), out / "targets" / "manifest.parquet")
    res = run_report(str(out), str(tmp_path / "rep2"), ReportConfig(top_n=3), progress=False)
    doc = json.loads(Path(res.json_path).read_text())
    assert doc["section_errors"] and doc["funnel"]


# --------------------------------------------------------------------------------------------------
# #10 unbounded reads


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


def test_url_audio_download_is_capped(tmp_path, monkeypatch):
    from pairminer import audio

    monkeypatch.setattr(audio, "MAX_URL_BYTES", 4 << 20)
    with pytest.raises(AudioError, match="download cap"):
        audio.load_audio("local:///dev/zero", 8000)
