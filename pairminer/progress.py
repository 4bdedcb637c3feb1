"""The one progress helper: counts a stage's tasks (pairs, files) and shows them where the process runs.

* In a terminal (the stream is a TTY): a live tqdm bar per stage.
* Anywhere else (a file, CI, a scheduler's log): an INFO line on the ``pairminer.progress`` logger
  every `interval_s` seconds or every `step_pct` percent of the stage, whichever comes first, with the
  count, the rate and the ETA, and one closing line. A stage therefore writes at most about
  ``100 / step_pct + elapsed / interval_s + 1`` lines, never carriage-return updates.
* Disabled (``--quiet``): nothing.

Usage::

    with Progress("targets", total=len(pairs), unit="pair", enabled=progress) as bar:
        for ...:
            bar.update(1)

`pairminer.parallel.Runner.compute(..., progress=bar)` advances a bar as Dask tasks finish.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any, Callable, Iterable, Iterator, TextIO

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """Progress of one stage, counted in tasks.

    Args:
        label: The stage (the start of every line, the bar's description).
        total: Tasks in the stage (pairs, files...); 0 or less shows nothing.
        unit: Singular name of a task ("pair", "file").
        enabled: False (``--quiet``) shows nothing at all.
        stream: Where a bar goes and whose TTY-ness picks the mode (default: sys.stderr).
        interval_s: Outside a terminal, at most this long between two lines.
        step_pct: Outside a terminal, a line each time the stage crosses another step_pct percent.
        clock: Seconds, monotonic (a test can pass a fake one).
        initial: Tasks already done before this run (a resumed training), counted but not in the rate.
    """

    def __init__(self, label: str, total: int, *, unit: str = "task", enabled: bool = True,
                 stream: TextIO | None = None, interval_s: float = 10.0, step_pct: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, initial: int = 0):
        self.label = label
        self.total = max(0, int(total))
        self.unit = unit
        self.done = self._initial = min(max(0, int(initial)), max(0, int(total)))
        self._postfix = ""
        self.interval_s = float(interval_s)
        self.step_pct = float(step_pct)
        self._clock = clock
        self._start = self._last = clock()
        self._next_pct = self.step_pct * (math.floor(100.0 * self.done / self.total / self.step_pct) + 1) \
            if self.total else self.step_pct
        self._closed = False
        self._bar = None
        stream = sys.stderr if stream is None else stream
        self.mode = "off" if not enabled or self.total == 0 else ("bar" if _is_tty(stream) else "log")
        if self.mode == "bar":
            try:
                from tqdm.auto import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency
                self.mode = "log"
            else:
                self._bar = tqdm(total=self.total, initial=self.done, desc=label, unit=unit, file=stream,
                                 dynamic_ncols=True, mininterval=0.5, leave=True)

    def _units(self, n: int) -> str:
        return self.unit if n == 1 else f"{self.unit}s"

    def line(self) -> str:
        """The log line for the current count: ``label: done/total units (pct%), rate units/s, ETA t``."""
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = (self.done - self._initial) / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (f"{self.label}: {self.done:,}/{self.total:,} {self._units(self.total)} ({pct:.0f}%), "
                f"{rate:,.1f} {self._units(2)}/s, ETA {_duration(eta)}{self._postfix}")

    def set_postfix(self, **values: Any) -> None:
        """Figures shown after the count (e.g. a training loss), as tqdm's set_postfix."""
        if self._bar is not None:
            self._bar.set_postfix(**values)
        self._postfix = "".join(f", {k} {v}" for k, v in values.items())

    def set_total(self, total: int) -> None:
        """Change the total (a stage whose total is only an upper bound until it ends, e.g. the targets
        of a chained verify+targets pass: verified pairs are known only as they are classified)."""
        if self.mode == "off" or self._closed:
            return
        self.total = max(self.done, int(total))
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def update(self, n: int = 1) -> None:
        """Count `n` more finished tasks."""
        if self.mode == "off" or n <= 0 or self._closed:
            return
        self.done = min(self.total, self.done + int(n))
        if self._bar is not None:
            self._bar.update(int(n))
            return
        now = self._clock()
        pct = 100.0 * self.done / self.total
        if self.done < self.total and (now - self._last >= self.interval_s or pct >= self._next_pct):
            log.info("%s", self.line())
            self._last = now
        while self._next_pct <= pct:
            self._next_pct += self.step_pct

    def close(self) -> None:
        """End the bar, or log the closing line (count, time, rate)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.mode == "log":
            elapsed = self._clock() - self._start
            rate = (self.done - self._initial) / elapsed if elapsed > 0 else float("inf")
            what = "done" if self.done == self.total else "stopped at"
            speed = f"{rate:,.1f}" if math.isfinite(rate) else "-"
            log.info("%s: %s %s/%s %s in %s (%s %s/s)", self.label, what, f"{self.done:,}", f"{self.total:,}",
                     self._units(self.total), _duration(elapsed), speed, self._units(2))

    def track(self, items: Iterable[Any]) -> Iterator[Any]:
        """Yield `items`, counting one task per item, and close at the end."""
        try:
            for item in items:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
