"""When a training loop records and calls back: every n steps, at log-spaced steps, or at given steps.

A schedule is a predicate on the step index t = 0, 1, ..., T. The loops of :mod:`symlab.train`
accept one wherever they take ``record_every`` / ``callback_every``: an int n means every n steps,
and a :class:`Schedule` (from :func:`log_spaced` or :func:`at_steps`) anything else. Log-spaced
records keep memory bounded by the number of records, not the number of steps: a run of 10⁶ steps
recorded at 50 log-spaced steps stores 50 records. Fort et al. (NeurIPS 2020) sample the kernel's
evolution this way, since it moves fastest early.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class Schedule:
    """The set of steps at which something is due; ``schedule.due(t)`` tests membership."""

    def __init__(self, every: int | None = None, steps: Iterable[int] | None = None):
        self.every = every
        self.steps = None if steps is None else frozenset(int(s) for s in steps)

    def due(self, step: int) -> bool:
        if self.steps is not None:
            return step in self.steps
        return step % self.every == 0

    def __repr__(self) -> str:
        if self.steps is not None:
            return f"at_steps({sorted(self.steps)})"
        return f"every({self.every})"


def every(n: int) -> Schedule:
    """Steps 0, n, 2n, ..."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"every: expected a positive integer, got {n!r}")
    return Schedule(every=n)


def at_steps(steps: Iterable[int]) -> Schedule:
    """Exactly the given steps (non-negative integers)."""
    steps = list(steps)
    if any(not isinstance(s, int | np.integer) or s < 0 for s in steps):
        raise ValueError(f"steps: expected non-negative integers, got {steps!r}")
    return Schedule(steps=steps)


def log_spaced_steps(total: int, n_records: int) -> list[int]:
    """0 followed by about ``n_records`` − 1 log-spaced integers in [1, total], duplicates merged
    (so fewer than ``n_records`` steps when ``total`` is small)."""
    if not isinstance(total, int) or total < 0:
        raise ValueError(f"total: expected a non-negative integer, got {total!r}")
    if not isinstance(n_records, int) or n_records < 2:
        raise ValueError(f"n_records: expected an integer >= 2, got {n_records!r}")
    if total == 0:
        return [0]
    grid = np.unique(np.round(np.geomspace(1, total, n_records - 1)).astype(int))
    return [0] + [int(s) for s in grid]


def log_spaced(total: int, n_records: int) -> Schedule:
    """The schedule of :func:`log_spaced_steps`: step 0 and about ``n_records`` − 1 log-spaced steps
    up to ``total``."""
    return at_steps(log_spaced_steps(total, n_records))


def as_schedule(name: str, value: int | Schedule | Iterable[int]) -> Schedule:
    """An int n → :func:`every` (n); a :class:`Schedule` as is; a sequence of ints → :func:`at_steps`.
    ``name`` is the argument's name, for the error message."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        return every(value)
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        try:
            return at_steps(value)
        except ValueError:
            pass
    raise ValueError(
        f"{name}: expected a positive integer, a schedule (symlab.train.log_spaced, every, "
        f"at_steps) or a list of steps, got {value!r}"
    )
