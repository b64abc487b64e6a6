"""Sweep progress on stderr: a rich bar on a terminal, plain lines everywhere else.

When stderr is not a terminal (CI logs, ``nohup``, a notebook's subprocess, ``2> log``) a bar
cannot redraw, so :class:`ProgressLines` prints lines such as::

    hidden-symmetries: 480/960 jobs (50%), 12.3 s elapsed, ~12 s left, 0 failed

one when the sweep starts, then after a job whenever at least ~10% of the jobs AND at least
``seconds`` (default 10, environment variable ``SYMLAB_PROGRESS_SECONDS``) have passed since the
last line (whichever is rarer, so a log stays short), and one when the last job ends (100%).
While jobs run, a heartbeat line goes out after ``heartbeat`` seconds (default 60) without one,
so a slow sweep is never silent for long. No escape codes; "left" is a linear extrapolation from
the jobs finished in this run.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from symlab.cli.typer_app import fail

SECONDS_VARIABLE = "SYMLAB_PROGRESS_SECONDS"


def duration(seconds: float) -> str:
    """A short human duration: ``12.3 s``, ``4.5 min``, ``2.1 h``."""
    if seconds < 100:
        return f"{seconds:.1f} s"
    if seconds < 100 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def progress_seconds(environ: dict[str, str] | None = None) -> float:
    """Seconds between plain progress lines: ``SYMLAB_PROGRESS_SECONDS`` or 10."""
    text = (os.environ if environ is None else environ).get(SECONDS_VARIABLE, "").strip()
    if not text:
        return 10.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        fail(f"{SECONDS_VARIABLE}: expected a number of seconds >= 0, got {text!r}.")
    return value


class ProgressLines:
    """Plain progress lines for a sweep of ``n_total`` jobs (see the module docstring).

    ``stream`` is resolved when a line is written (default: the current ``sys.stderr``);
    ``clock`` is injectable for tests. Counts only grow, so the lines are monotone.
    """

    def __init__(
        self,
        name: str,
        *,
        stream: TextIO | None = None,
        fraction: float = 0.1,
        seconds: float = 10.0,
        heartbeat: float | None = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.stream = stream
        self.fraction = fraction
        self.seconds = seconds
        self.heartbeat = heartbeat
        self.clock = clock
        self.n_total = self.n_done = self.n_failed = self.n_at_start = 0
        self.started = self.last_time = 0.0
        self.last_done = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self) -> str:
        """The current line: done/total, percent (floored), elapsed, time left, failures."""
        total = max(self.n_total, 1)
        percent = 100 * self.n_done // total if self.n_total else 100
        elapsed = self.clock() - self.started
        parts = [f"{self.name}: {self.n_done}/{self.n_total} jobs ({percent}%)"]
        parts.append(f"{duration(elapsed)} elapsed")
        ran = self.n_done - self.n_at_start
        if 0 < ran and self.n_done < self.n_total:
            parts.append(f"~{duration(elapsed / ran * (self.n_total - self.n_done))} left")
        parts.append(f"{self.n_failed} failed")
        return ", ".join(parts)

    def _emit(self) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(self.line() + "\n")
        stream.flush()
        self.last_time, self.last_done = self.clock(), self.n_done

    def start(self, n_stored: int, n_total: int) -> None:
        """The sweep begins with ``n_stored`` of ``n_total`` jobs already stored."""
        with self._lock:
            self.n_total, self.n_done, self.n_at_start = n_total, n_stored, n_stored
            self.started = self.clock()
            self._emit()
        if self.heartbeat is not None and n_stored < n_total:
            self._thread = threading.Thread(target=self._beat, name="symlab-progress", daemon=True)
            self._thread.start()

    def failed(self, *_: Any) -> None:
        """One more job failed (called before its :meth:`update`)."""
        with self._lock:
            self.n_failed += 1

    def update(self, n_done: int, n_total: int) -> None:
        """``n_done`` of ``n_total`` jobs are finished (stored or failed)."""
        with self._lock:
            self.n_done, self.n_total = n_done, n_total
            if n_done >= n_total:
                self._emit()
                return
            # ceil, less a hair: 10% of 100 jobs is 10 jobs, not the 11 that 0.1 * 100 > 10 needs
            enough_jobs = n_done - self.last_done >= math.ceil(self.fraction * n_total - 1e-9)
            enough_time = self.clock() - self.last_time >= self.seconds
            if enough_jobs and enough_time:
                self._emit()

    def _beat(self) -> None:
        assert self.heartbeat is not None
        while not self._stop.wait(min(self.heartbeat, 1.0)):
            with self._lock:
                if self.n_done >= self.n_total:
                    return
                if self.clock() - self.last_time >= self.heartbeat:
                    self._emit()

    def stop(self) -> None:
        """Stop the heartbeat (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
            self._thread = None


class ProgressBar:
    """The rich bar on a terminal (same start/failed/update/stop interface)."""

    def __init__(self, name: str, console: Console) -> None:
        self.name = name
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("jobs"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: Any = None

    def start(self, n_stored: int, n_total: int) -> None:
        self.task = self.progress.add_task(self.name, total=n_total, completed=n_stored)
        self.progress.start()

    def failed(self, *_: Any) -> None:
        """Failures are counted in the summary line after the bar."""

    def update(self, n_done: int, n_total: int) -> None:
        self.progress.update(self.task, completed=n_done)

    def stop(self) -> None:
        self.progress.stop()


class NoProgress:
    """``--quiet``: no progress at all."""

    def start(self, n_stored: int, n_total: int) -> None:
        pass

    def failed(self, *_: Any) -> None:
        pass

    def update(self, n_done: int, n_total: int) -> None:
        pass

    def stop(self) -> None:
        pass


def progress_for(
    name: str, console: Console, *, quiet: bool = False
) -> ProgressLines | ProgressBar | NoProgress:
    """The reporter for ``console``: nothing if quiet, a bar on a terminal, else plain lines."""
    if quiet:
        return NoProgress()
    seconds = progress_seconds()  # a bad SYMLAB_PROGRESS_SECONDS is bad input on a terminal too
    if console.is_terminal or console.is_jupyter:
        return ProgressBar(name, console)
    return ProgressLines(name, seconds=seconds)
