"""One writer per run directory: an OS file lock held for the whole of a ``run_study`` call.

The lock is ``fcntl.flock`` on ``DIR/.symlab-run.lock``: the kernel releases it when its holder
exits, however it exits (SIGKILL included), so a lock is never stale. The holder writes its pid
and start time into the file so that a second run can say who holds the directory. On systems
without ``fcntl`` (Windows) no lock is taken.
"""

from __future__ import annotations

import os
from pathlib import Path

from symlab.engine.errors import InputError
from symlab.engine.store import now

LOCK_NAME = ".symlab-run.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None


class RunLock:
    """Context manager: hold ``out_dir``'s lock or raise :class:`InputError` naming its holder."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        if fcntl is None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            os.close(fd)
            who = f"pid {holder[0]}, started {holder[1]}" if len(holder) >= 2 else "another run"
            raise InputError(
                f"out: '{self.path.parent}' is held by a live run ({who}); wait for it to end "
                "or choose another directory."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {now()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None
