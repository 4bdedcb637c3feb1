"""What every stage report records: versions of pairminer and its dependencies, step timings."""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from importlib import metadata
from typing import Iterator

_DEPS = ("numpy", "pandas", "pyarrow", "dask", "distributed", "rapidfuzz", "pyacoustid", "librosa", "soxr",
         "soundfile", "torch")


def versions() -> dict[str, str]:
    """Versions of Python, pairminer and the core dependencies that are installed."""
    from . import __version__

    out = {"python": platform.python_version(), "pairminer": __version__}
    for name in _DEPS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


class Timings:
    """Wall time per named step, in seconds, in the order the steps ran."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self._t0 = time.perf_counter()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = self.steps.get(name, 0.0) + time.perf_counter() - t

    @property
    def total_s(self) -> float:
        return time.perf_counter() - self._t0

    def to_dict(self) -> dict[str, float]:
        return {**{k: round(v, 4) for k, v in self.steps.items()}, "total": round(self.total_s, 4)}
