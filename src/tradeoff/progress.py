"""Progress of long loops as log lines with rate and ETA, at a steady rate (``tail -f`` on a job's log).

Every Snakemake job sends its stderr, where the ``tradeoff`` logger writes, to the rule's log file; a
terminal progress bar there would be one line rewritten with carriage returns. :class:`Progress` writes
plain log lines instead: one when the loop starts, then at most one every ``interval`` seconds while it
runs, and one when it ends, each formatted by tqdm's meter (done/total, elapsed<remaining, rate).

The interval defaults to :data:`DEFAULT_INTERVAL` seconds; ``tradeoff --progress-interval S`` or the
environment variable ``TRADEOFF_PROGRESS_INTERVAL`` changes it for a whole run (0 logs every update).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

__all__ = ["DEFAULT_INTERVAL", "Progress", "default_interval", "interval_arg", "progress", "set_default_interval"]

DEFAULT_INTERVAL = 15.0
"""Seconds between two progress lines of one loop unless configured otherwise."""
ENV_VAR = "TRADEOFF_PROGRESS_INTERVAL"
_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt}{unit} [elapsed {elapsed}, ETA {remaining}, {rate_fmt}]"
_FORMAT_NO_TOTAL = "{desc}: {n_fmt}{unit} [elapsed {elapsed}, {rate_fmt}]"
_override: float | None = None

T = TypeVar("T")


def set_default_interval(seconds: float | None) -> None:
    """Set the interval every later :class:`Progress` uses by default (None: back to the environment /
    :data:`DEFAULT_INTERVAL`). Negative values raise ValueError."""
    global _override
    if seconds is not None and seconds < 0:
        raise ValueError(f"progress interval must be >= 0 seconds, got {seconds}")
    _override = None if seconds is None else float(seconds)


def interval_arg(text: str) -> float:
    """argparse type of ``--progress-interval``: a number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def default_interval() -> float:
    """The interval in force: :func:`set_default_interval`'s, else ``$TRADEOFF_PROGRESS_INTERVAL``, else
    :data:`DEFAULT_INTERVAL` (an unparsable or negative environment value falls back to the default)."""
    if _override is not None:
        return _override
    try:
        value = float(os.environ.get(ENV_VAR, DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value >= 0 else DEFAULT_INTERVAL


class Progress:
    """Counts work done out of ``total`` and logs it with rate and ETA at a steady rate.

    Guarantees: a line is logged at the first :meth:`update` (so the log shows the loop started), then
    whenever at least ``interval`` seconds of ``clock`` have passed since the previous line, and once by
    :meth:`close` (or leaving the ``with`` block) with the final count, unless that count was just
    logged. Never more than one line per ``interval`` between the first and the last. The ETA is
    tqdm's: remaining work divided by the average rate since the start.
    """

    def __init__(self, total: float | None, desc: str, *, unit: str = "it", interval: float | None = None,
                 logger: logging.Logger | None = None, clock: Callable[[], float] = time.monotonic,
                 level: int = logging.INFO) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.interval = default_interval() if interval is None else float(interval)
        self.logger = logger or logging.getLogger("tradeoff")
        self.clock = clock
        self.level = level
        self.n: float = 0
        self.postfix = ""
        self.start = clock()
        self._last_emit: float | None = None
        self._last_n: float | None = None
        self._closed = False

    def line(self) -> str:
        """The current progress line (what :meth:`update` logs)."""
        elapsed = max(self.clock() - self.start, 0.0)
        fmt = _FORMAT if self.total else _FORMAT_NO_TOTAL
        # The unit gets a leading space: tqdm prints it right after the numbers ("3/10 points", "2.5 points/s").
        n = int(self.n) if float(self.n).is_integer() else round(self.n, 2)  # fractions of a unit: 2 decimals
        text = tqdm.format_meter(n, self.total or None, elapsed, prefix=self.desc, unit=f" {self.unit}",
                                 bar_format=fmt)
        text = text.replace(f"s/ {self.unit}", f"s/{self.unit}")  # slow loops: tqdm prints "s/<unit>"
        return f"{text} {self.postfix}".rstrip()

    def _emit(self, now: float) -> None:
        self.logger.log(self.level, "%s", self.line())
        self._last_emit, self._last_n = now, self.n

    def update(self, n: float = 1) -> None:
        """Add ``n`` units of finished work; log if the interval has passed (or this is the first update)."""
        self.n += n
        now = self.clock()
        if self._last_emit is None or now - self._last_emit >= self.interval:
            self._emit(now)

    def tick(self) -> None:
        """Log if the interval has passed, without new finished work (for long units with inner loops)."""
        self.update(0)

    def set_postfix(self, text: str) -> None:
        """Extra text appended to every later line (e.g. the current epoch's loss)."""
        self.postfix = text

    def close(self) -> None:
        """Log the final count (once), unless the last line already showed it or no work was done at all."""
        if self._closed:
            return
        self._closed = True
        if self._last_emit is None and self.n == 0:
            return  # no work was done: nothing to report
        if self._last_n != self.n or self._last_emit is None:
            self._emit(self.clock())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable[T], desc: str, *, total: float | None = None, unit: str = "it",
             interval: float | None = None, logger: logging.Logger | None = None,
             clock: Callable[[], float] = time.monotonic) -> Iterator[T]:
    """Iterate ``iterable``, counting one unit per item with a :class:`Progress` (``total`` defaults to
    ``len(iterable)`` when it has one). The final line is logged when the iteration ends."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, unit=unit, interval=interval, logger=logger, clock=clock) as bar:
        for item in iterable:
            yield item
            bar.update(1)
