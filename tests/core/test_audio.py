"""pairminer.audio (reliability, round three): streamed audio, a symlink loop, capped URL downloads.

Each test fails on the code before its fix (the issue's repro, generalised to the class). The other
round-three tests live with their packages: discover/test_reliability_catalog.py (symlink loop in
discover, Parquet folders), report/test_report.py (a damaged manifest), core/test_config.py (devices and
deep YAML as config), train/test_separate.py (separate reads a streamed FLAC).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from pairminer.errors import AudioError


# --------------------------------------------------------------------------------------------------
# #7 streamed FLAC: the header cannot say the length


def test_streamed_flac_is_decoded_under_a_streamed_cap(tmp_path, streamed_flac):
    from pairminer.audio import DecodeRequest, load_audio, load_audio_rates, probe_duration_s

    p = streamed_flac(tmp_path / "streamed.flac", 5.0)
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


# --------------------------------------------------------------------------------------------------
# #6 per-item isolation: a symlink loop


def test_a_symlink_loop_under_audio_root_is_that_items_audio_error(tmp_path):
    from pairminer.audio import resolve_audio_path

    root = tmp_path / "audio"
    root.mkdir()
    os.symlink(root / "b", root / "a")
    os.symlink(root / "a", root / "b")
    with pytest.raises(AudioError, match="symlink loop"):
        resolve_audio_path("a/song.flac", audio_root=str(root))
    assert resolve_audio_path("ok.flac", audio_root=str(root)) == str(root.resolve() / "ok.flac")


# --------------------------------------------------------------------------------------------------
# #10 unbounded reads


def test_url_audio_download_is_capped(tmp_path, monkeypatch):
    from pairminer import audio

    monkeypatch.setattr(audio, "MAX_URL_BYTES", 4 << 20)
    with pytest.raises(AudioError, match="download cap"):
        audio.load_audio("local:///dev/zero", 8000)
