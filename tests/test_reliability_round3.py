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
