"""Where a command may write: checked before anything is written, in one sentence.

``symlab run --out DIR``, ``symlab report --out DIR`` and ``symlab export -o FILE`` name a path
that may not exist yet; :func:`check_writable_dir` finds its nearest existing ancestor and refuses
a path below a file, or one on a read-only file system or in a folder without write permission
(``os.access``, which also reports a read-only mount to root), before a folder is created.
:func:`write_atomically` writes a file through a temporary sibling, so a full disk or a failed
write leaves no partial file behind.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from symlab.engine.errors import InputError


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")


def check_writable_dir(path: str | Path, field: str, shown: Path | None = None) -> Path:
    """``path`` (a folder, existing or not) if it can be created and written; else
    InputError naming ``field`` and ``shown`` (default ``path``; the file to be written in it):
    a file in the way, or a read-only or forbidden location."""
    path = Path(path)
    shown = path if shown is None else shown
    ancestor = _existing_ancestor(path.absolute())
    relative = _relative(ancestor)
    if ancestor.is_dir():
        if not os.access(ancestor, os.W_OK | os.X_OK):
            where = "" if ancestor == shown.absolute() else f" (in '{relative}')"
            raise InputError(
                f"{field}: '{shown}' cannot be written{where}: {_reason(ancestor)}; "
                "expected a writable folder."
            )
        return path
    if ancestor == shown.absolute():
        raise InputError(f"{field}: '{shown}' is a file; expected a folder.")
    raise InputError(
        f"{field}: '{shown}' lies below the file '{relative}'; expected a folder path."
    )


def _relative(path: Path) -> Path:
    """``path`` relative to the current folder when it lies inside it (shorter messages)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _reason(folder: Path) -> str:
    try:
        probe = os.statvfs(folder)
        if probe.f_flag & os.ST_RDONLY:
            return "read-only file system"
    except (OSError, AttributeError):  # pragma: no cover - no statvfs
        pass
    return "no write permission"


def write_atomically(path: Path, write: Callable[[Path], None], field: str) -> Path:
    """Call ``write(temporary)`` then rename the temporary file to ``path``; on an OSError
    (full disk, file too large, read-only or forbidden location) remove the temporary file and
    raise InputError naming ``field``: nothing is left behind."""
    check_writable_dir(path.parent, field, shown=path)
    if path.is_dir():
        raise InputError(f"{field}: '{path}' is a folder; expected a file name.")
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, path)
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            reason += " (the disk or the file size limit is full)"
        raise InputError(
            f"{field}: cannot write '{path}': {reason}; nothing was written."
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return path
