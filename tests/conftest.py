import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def write_csv(tmp_path):
    """Write CSV text (str or bytes) to tmp_path and return its path."""

    def _write(text, name="catalog.csv"):
        p = tmp_path / name
        p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        return str(p)

    return _write


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread: on a small shared CPU, OpenMP spinning makes tiny convolutions ~50x slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def streamed_flac():
    """Write a FLAC through a pipe (its STREAMINFO says the length is unknown); skips without ffmpeg.

    Returns `write(path, seconds, channels=2) -> path`.
    """
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")

    def write(path, seconds: float, channels: int = 2):
        with open(path, "wb") as f:
            subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                            "-ac", str(channels), "-f", "flac", "pipe:1"], stdout=f, check=True)
        return path

    return write
