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
