"""Progress of long `crs` operations (demo data, export, replay): counts and rate on stderr.

Shown only when stderr is a terminal or the operator asks (``--progress``), so pipes and logs stay
clean. The lines read like `crs bench`'s (``  label: done/total``), with the rate added.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """Counts work done and reports it at most every ``interval`` seconds, and once at the end."""

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        unit: str = "records",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty() if enabled is None else enabled
        self._interval, self._clock = interval, clock
        self._started = clock()
        self._shown_at = self._started
        self._finished = False

    def advance(self, count: int = 1) -> None:
        """Add ``count`` to the work done; report if the interval has passed."""
        self.done += count
        now = self._clock()
        if now - self._shown_at >= self._interval:
            self._shown_at = now
            self._show(now)

    def finish(self) -> None:
        """Report the final count once."""
        if not self._finished:
            self._finished = True
            self._show(self._clock())

    def line(self, now: float) -> str:
        """The progress line at ``now``: done (of total), and the rate so far."""
        elapsed = now - self._started
        rate = f", {self.done / elapsed:.0f}/s" if elapsed > 0 else ""
        of = f"/{self.total}" if self.total is not None else ""
        return f"  {self.label}: {self.done}{of} {self.unit}{rate}"

    def _show(self, now: float) -> None:
        if self._enabled:
            print(self.line(now), file=self._stream, flush=True)
