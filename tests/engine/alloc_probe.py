"""A job for tests/engine/test_allocations.py, importable by name in spawned worker processes."""

import os

import numpy as np

BLOCK_BYTES = 48 * 2**20  # above glibc's default (adaptive, at most 32 MiB) mmap threshold


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def released_by_freeing_a_large_block(params: dict) -> int:
    """Resident bytes given back when a written 48 MiB array is freed: ~48 MiB when glibc
    unmaps the block (its default for blocks this large), ~0 when it keeps it for reuse."""
    block = np.empty(BLOCK_BYTES // 8)
    block.fill(1.0)
    peak = _rss()
    del block
    return peak - _rss()


if __name__ == "__main__":
    print(released_by_freeing_a_large_block({}))
