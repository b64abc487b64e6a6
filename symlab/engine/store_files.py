"""Opening a run directory's ``results.sqlite``: checked first, read without writing.

:func:`check_store_file` tells a symlab store from a file that is not one, before SQLite touches
it: a 0-byte file, a file that is not SQLite (the first 16 bytes of every SQLite 3 database are
``SQLite format 3\\0``), or a SQLite database of another application (no ``results`` and ``meta``
tables with symlab's columns) each get one sentence naming the file and what was expected.

:func:`connect_read_only` opens a store for ``show``, ``export`` and ``report`` without writing
a byte, also on read-only media (a ``chmod -R a-w`` folder, a read-only mount). The store runs in
WAL mode, whose readers normally write the ``-shm`` index beside the database, so it tries, in
order:

1. ``mode=ro``: works where the folder is writable, or where the ``-wal`` and ``-shm`` files of
   a killed run are present (SQLite >= 3.22 then reads the read-only ``-shm``);
2. ``immutable=1`` when there is no ``-wal`` file (or an empty one): every committed row is in
   the database file itself (a finished run checkpoints and deletes its WAL on close);
3. otherwise (a ``-wal`` with rows but no ``-shm``, on read-only media: a run killed there, then
   its ``-shm`` lost) a private copy of the database and its WAL in a temporary folder, which
   SQLite recovers on open, so the rows still in the WAL are read too; the copy is deleted when
   the store is closed.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

from symlab.engine.errors import InputError

SQLITE_HEADER = b"SQLite format 3\x00"
# tables and columns every symlab store has (older stores lack session and code)
REQUIRED_COLUMNS = {"results": {"key", "params", "result"}, "meta": {"name", "value"}}
EXPECTED = "a symlab results store (the SQLite file `symlab run` writes)"


def check_store_file(path: Path) -> None:
    """InputError (one sentence naming ``path``) if the existing file ``path`` cannot be a
    symlab store: empty, or not a SQLite 3 database. Reads 16 bytes; writes nothing."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(SQLITE_HEADER))
    except OSError as error:
        raise InputError(f"store '{path}': cannot be read ({error.strerror}).") from error
    if not head:
        raise InputError(f"store '{path}' is empty (0 bytes); expected {EXPECTED}.")
    if head != SQLITE_HEADER:
        raise InputError(f"store '{path}' is not a SQLite database; expected {EXPECTED}.")


def check_schema(db: sqlite3.Connection, path: Path, *, allow_empty: bool = False) -> None:
    """InputError if the open database ``db`` (the file ``path``) lacks symlab's tables.

    With ``allow_empty`` a database without tables passes (a store being created has none yet).
    """
    try:
        tables = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    except sqlite3.OperationalError:  # cannot open (e.g. no -shm on read-only media): retry
        raise
    except sqlite3.DatabaseError as error:  # "file is not a database", "malformed"
        raise InputError(f"store '{path}' is not a readable SQLite database ({error}).") from error
    if not tables and allow_empty:
        return
    for table, required in REQUIRED_COLUMNS.items():
        columns = (
            {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if table in tables
            else set()
        )
        if not required <= columns:
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            what = f"of another application (tables: {shown})" if tables else "without tables"
            raise InputError(f"store '{path}' is a SQLite database {what}; expected {EXPECTED}.")


def _uri(path: Path, query: str) -> str:
    return f"{path.resolve().as_uri()}?{query}"


def connect_read_only(path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """A connection that reads the store ``path`` and never writes it (see the module
    docstring), and the temporary folder of its private copy (None when there is none; the
    caller deletes it after closing the connection)."""
    check_store_file(path)
    wal = path.with_name(path.name + "-wal")
    attempts = ["mode=ro"]
    if not wal.exists() or wal.stat().st_size == 0:
        attempts.append("immutable=1")
    for query in attempts:
        db = sqlite3.connect(_uri(path, query), uri=True, timeout=60.0)
        try:
            check_schema(db, path)  # the first read: SQLite opens the file (and WAL) here
            return db, None
        except InputError:
            db.close()
            raise
        except sqlite3.OperationalError:  # "unable to open database file": no -shm possible
            db.close()
    folder = Path(tempfile.mkdtemp(prefix="symlab-store-"))
    try:
        copy = folder / path.name
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, folder / wal.name)
        db = sqlite3.connect(copy, timeout=60.0)
        check_schema(db, path)
        db.execute("PRAGMA query_only = ON")
        return db, folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
