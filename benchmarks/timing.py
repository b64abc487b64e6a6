"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``, so this
folder is on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """(the least wall time of ``repeats`` calls of ``fn``, the last call's result): the minimum
    is the estimate least sensitive to other jobs on a shared machine."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result
