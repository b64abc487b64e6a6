"""Peak resident memory of one call, shared by bench_ntk.py and nt_worker.py (stdlib only, so the
neural-tangents worker can import it from its own virtual environment)."""

from __future__ import annotations

import os
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Resident set size of this process in bytes (Linux /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def peak_rss_during(fn):
    """(result, peak RSS above the pre-call RSS in bytes), sampled every 0.5 ms by a thread."""
    base, peak, done = rss(), [0], [False]

    def sample():
        while not done[0]:
            peak[0] = max(peak[0], rss())
            time.sleep(0.0005)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        out = fn()
    finally:
        done[0] = True
        thread.join()
    return out, max(0, max(peak[0], rss()) - base)
