"""Pool workers keep large freed blocks for reuse (glibc mallopt) instead of unmapping them."""

import subprocess
import sys
from pathlib import Path

import pytest

from symlab.engine.executors import Job, LocalExecutor

HERE = Path(__file__).resolve().parent
BLOCK = 48 * 2**20  # alloc_probe.BLOCK_BYTES

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only"
)


def test_pool_workers_keep_large_freed_blocks():
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))  # spawned workers inherit sys.path
    from alloc_probe import released_by_freeing_a_large_block as probe

    jobs = [Job(key=str(i), params={}) for i in range(2)]
    freed = {job.key: result for job, result in LocalExecutor(workers=2).submit_all(probe, jobs)}
    assert all(value < BLOCK // 8 for value in freed.values()), freed


def test_without_the_setting_the_block_goes_back_to_the_kernel():
    """The reference: the same probe in a plain interpreter gives the whole block back."""
    plain = subprocess.run(
        [sys.executable, str(HERE / "alloc_probe.py")], capture_output=True, text=True, check=True
    )
    assert int(plain.stdout) > BLOCK // 2
