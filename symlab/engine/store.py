"""The results store of a run directory: one SQLite file, ``results.sqlite``.

Tables
    ``results(key TEXT PRIMARY KEY, experiment, version, params JSON, result JSON, seconds REAL,
    finished_at TEXT, host TEXT, session TEXT, code TEXT)`` -- one row per finished job; ``code``
    is the fingerprint of the code that computed it (:mod:`symlab.engine.code_fingerprint`); ``session`` names
    the session that computed it (NULL: stored before sessions were recorded, "unknown");
    ``failures(key, params JSON, error TEXT, traceback TEXT, failed_at TEXT, host TEXT)`` -- one
    row per failed attempt (a later success of the same key supersedes it); ``host`` columns are
    kept for old stores and always NULL: nothing written names a machine, user or folder
    (tracebacks carry paths relative to their package, :func:`portable_traceback`);
    ``meta(name TEXT PRIMARY KEY, value TEXT)`` -- ``study``, ``spec`` (TOML), ``created``;
    ``sessions(session TEXT PRIMARY KEY, started_at, finished_at, symlab, python, torch, ...)`` --
    one row per ``run_study`` call that ran jobs: the software and settings that computed its
    rows (see :mod:`symlab.engine.provenance`; no hostnames or paths).

A store written before sessions existed is migrated when opened for writing (``ALTER TABLE``
adds ``results.session``, ``CREATE TABLE IF NOT EXISTS`` the sessions table); opened read-only
(``create=False``) it is left as it is and its rows read as session unknown. Read-only opening
writes nothing, also on read-only media, and a 0-byte, non-SQLite or foreign file gets one
sentence (:mod:`symlab.engine.store_files`); opened for writing, a non-SQLite or foreign file gets
the same sentence, while a 0-byte file is an empty store (what ``sqlite3.connect`` leaves when a
script polls the path before the run creates it).

The database runs in WAL mode and every result is inserted in its own transaction with
``INSERT OR IGNORE``, so a run killed at any moment keeps every row it reported, and inserting
the same key twice is harmless (resume is idempotent).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from symlab.engine.cells import flatten_cells, parquet_table, to_json
from symlab.engine.errors import InputError
from symlab.engine.output_paths import write_atomically
from symlab.engine.provenance import ENVIRONMENT_FIELDS
from symlab.engine.store_files import check_schema, check_store_file, connect_read_only

STORE_NAME = "results.sqlite"
TIMING_COLUMNS = ("seconds", "finished_at", "session", "code")
SESSION_COLUMNS = ("session", "started_at", "finished_at", *ENVIRONMENT_FIELDS)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    version TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT NOT NULL,
    seconds REAL,
    finished_at TEXT,
    host TEXT,
    session TEXT,
    code TEXT
);
CREATE TABLE IF NOT EXISTS failures (
    key TEXT NOT NULL,
    params TEXT NOT NULL,
    error TEXT NOT NULL,
    traceback TEXT,
    failed_at TEXT,
    host TEXT
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
"""
_SESSIONS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessions (session TEXT PRIMARY KEY, started_at TEXT NOT NULL, "
    + ", ".join(
        f"{name} {'INTEGER' if name in ('workers', 'threads') else 'TEXT'}"
        for name in SESSION_COLUMNS[2:]
    )
    + ")"
)


def _create_store(path: Path) -> None:
    """Create an empty WAL-mode SQLite file at ``path`` atomically (built beside it, then
    linked into place unless another process created ``path`` first), so that a run killed at
    any moment never leaves a 0-byte ``results.sqlite`` (which
    :func:`symlab.engine.store_files.check_store_file` refuses)."""
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        db = sqlite3.connect(partial)
        try:
            db.execute("PRAGMA journal_mode=WAL")  # writes the header: no longer 0 bytes
        finally:
            db.close()
        try:
            os.link(partial, path)  # fails if path exists: never replaces another's store
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(partial, path)
    finally:
        for leftover in (partial, *partial.parent.glob(partial.name + "-*")):
            leftover.unlink(missing_ok=True)


def now() -> str:
    """The current UTC time as ISO 8601 text (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


KEY_BATCH = 900  # keys per ``WHERE key IN (...)`` query (SQLite allows 999 variables at least)
FRAME_CHUNK = 10_000  # rows per partial DataFrame (and per list of row dicts) of a large table


def key_batches(keys: Iterable[str], size: int = KEY_BATCH) -> Iterator[list[str]]:
    """``keys`` as lists of at most ``size`` keys, read lazily."""
    keys = iter(keys)
    while batch := list(itertools.islice(keys, size)):
        yield batch


def _record(stored: tuple[Any, ...], timing: bool) -> dict[str, Any]:
    key, params, result, *rest = stored
    record: dict[str, Any] = {"key": key}
    record.update(json.loads(params))
    for name, value in json.loads(result).items():
        record[f"result_{name}" if name in record else name] = value
    if timing:
        for name, value in zip(TIMING_COLUMNS, rest, strict=True):
            record[f"store_{name}" if name in record else name] = value
    return record


def rows_frame(stored: Iterable[tuple[Any, ...]], *, timing: bool = False) -> pd.DataFrame:
    """The tidy table of stored results ``(key, params, result, seconds, finished_at, session,
    code)``: ``key``, the params' columns, then the result's (see :meth:`Store.rows`).

    Built ``FRAME_CHUNK`` rows at a time, so a million rows need the table's memory, not a
    million dicts'.
    """
    frames = []
    stored = iter(stored)
    while chunk := [_record(row, timing) for row in itertools.islice(stored, FRAME_CHUNK)]:
        frames.append(pd.DataFrame.from_records(chunk))
    if not frames:
        return pd.DataFrame({"key": pd.Series([], dtype=object)})
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


class Store:
    """The SQLite store of the run directory ``run_dir`` (see the module docstring).

    ``Store(run_dir)`` opens ``run_dir/results.sqlite``; with ``create=False`` a missing file
    raises InputError instead of being created.
    """

    def __init__(self, run_dir: str | Path, *, create: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_NAME
        self._copy: Path | None = None  # the private copy of a read-only store, if any
        if not self.path.is_file():
            if not create:
                raise InputError(
                    f"run directory '{self.run_dir}' holds no results ({STORE_NAME} not found)."
                )
            self.run_dir.mkdir(parents=True, exist_ok=True)
            _create_store(self.path)
        if not create:  # reading: never writes, also on read-only media (store_files)
            self._db, self._copy = connect_read_only(self.path)
            return
        if self.path.stat().st_size:  # 0 bytes is an empty database to SQLite: the one
            check_store_file(self.path)  # a monitoring sqlite3.connect creates before a run
        # sqlite3 opens a transaction before each INSERT; ``with self._db`` commits it
        self._db = sqlite3.connect(self.path, timeout=60.0)
        try:
            check_schema(self._db, self.path, allow_empty=True)
            self._db.execute("PRAGMA journal_mode=WAL")
        except (InputError, sqlite3.DatabaseError) as error:
            self._db.close()
            if isinstance(error, InputError):
                raise
            raise InputError(
                f"store '{self.path}' is not a readable SQLite database ({error})."
            ) from error
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash in WAL
        self._db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a store written by an older symlab up to date (idempotent, race-safe)."""
        with self._db:
            self._db.execute(_SESSIONS_SCHEMA)
        for column in ("session", "code"):
            if not self._has_column(column):
                try:
                    with self._db:
                        self._db.execute(f"ALTER TABLE results ADD COLUMN {column} TEXT")
                except sqlite3.OperationalError:  # another process added it first
                    if not self._has_column(column):
                        raise

    def _has_column(self, name: str) -> bool:
        return any(r[1] == name for r in self._db.execute("PRAGMA table_info(results)"))

    def _has_session_column(self) -> bool:
        return self._has_column("session")

    def _has_sessions_table(self) -> bool:
        query = "SELECT 1 FROM sqlite_master WHERE type='table' AND name='sessions'"
        return self._db.execute(query).fetchone() is not None

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self._db.close()
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- writing
    def add(
        self,
        key: str,
        experiment: str,
        version: str,
        params: Mapping[str, Any],
        result: Mapping[str, Any],
        seconds: float | None = None,
        session: str | None = None,
        code: str | None = None,
    ) -> bool:
        """Insert one finished job in its own transaction; False if ``key`` was already stored.

        ``session``: the id (from :meth:`begin_session`) of the session that computed it.
        """
        with self._db:  # BEGIN ... COMMIT
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO results (key, experiment, version, params, result, "
                "seconds, finished_at, host, session, code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    experiment,
                    str(version),
                    to_json(params, sort_keys=False),  # the study's order gives the columns'
                    to_json(result, sort_keys=False),
                    seconds,
                    now(),
                    None,  # host: never written (no hostnames in a store)
                    session,
                    code,
                ),
            )
        return cursor.rowcount == 1

    def begin_session(
        self, environment: Mapping[str, Any], *, started_at: str | None = None
    ) -> str:
        """Record a new session with ``environment`` (fields of ``ENVIRONMENT_FIELDS``; missing
        ones are NULL) and return its id: "s" and 12 random hex digits (the letter keeps an
        all-digit id from reading back as a number from a CSV export).

        :func:`symlab.engine.provenance.environment` gives the fields of this process.
        """
        unknown = sorted(set(environment) - set(ENVIRONMENT_FIELDS))
        if unknown:
            raise InputError(
                f"environment: expected fields among {', '.join(ENVIRONMENT_FIELDS)}, "
                f"got {', '.join(unknown)}."
            )
        session = "s" + uuid.uuid4().hex[:12]
        values = [session, started_at or now(), None]
        values += [environment.get(name) for name in ENVIRONMENT_FIELDS]
        with self._db:
            self._db.execute(
                f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(SESSION_COLUMNS))})",
                values,
            )
        return session

    def end_session(self, session: str) -> None:
        """Set the finished time of ``session`` to now."""
        with self._db:
            self._db.execute(
                "UPDATE sessions SET finished_at = ? WHERE session = ?", (now(), session)
            )

    def add_failure(
        self,
        key: str,
        params: Mapping[str, Any],
        error: str,
        traceback: str = "",
    ) -> None:
        """Record a failed attempt of job ``key`` (its error text and traceback)."""
        with self._db:
            self._db.execute(
                "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                (key, to_json(params, sort_keys=False), error, traceback, now(), None),
            )

    def set_meta(self, **values: str) -> None:
        """Set meta entries (``study``, ``spec``, ``created``, ...)."""
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, str(v)) for k, v in values.items()],
            )

    # -------------------------------------------------------------- reading
    def meta(self) -> dict[str, str]:
        """All meta entries as a dict."""
        return dict(self._db.execute("SELECT name, value FROM meta"))

    def sessions(self, counts: dict[str | None, int] | None = None) -> pd.DataFrame:
        """The recorded sessions (``SESSION_COLUMNS`` and ``rows``, how many stored results each
        computed, from ``counts`` when given, else :meth:`session_counts` over all rows), oldest
        first; empty for a store written before sessions existed."""
        if not self._has_sessions_table():
            return pd.DataFrame({name: pd.Series([], dtype=object) for name in SESSION_COLUMNS})
        counts = self.session_counts() if counts is None else counts
        frame = pd.read_sql_query(
            f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions ORDER BY started_at, rowid",
            self._db,
        )
        frame["rows"] = [counts.get(s, 0) for s in frame["session"]]
        return frame

    def session_counts(self, keys: Iterable[str] | None = None) -> dict[str | None, int]:
        """How many stored results of ``keys`` (all when None) each session computed; None
        counts the rows without a recorded session."""
        counts: dict[str | None, int] = {}
        if keys is not None:
            for row in self.results_of(dict.fromkeys(keys)):
                counts[row[5]] = counts.get(row[5], 0) + 1
            return counts
        session = "session" if self._has_session_column() else "NULL"
        query = f"SELECT {session}, COUNT(*) FROM results GROUP BY {session}"
        return {session: int(n) for session, n in self._db.execute(query)}

    def keys(self) -> set[str]:
        """The keys of all stored results (all in memory: for a large store use
        :meth:`stored_among`)."""
        return {row[0] for row in self._db.execute("SELECT key FROM results")}

    def stored_among(self, keys: Iterable[str]) -> set[str]:
        """The keys among ``keys`` that have a stored result, queried ``KEY_BATCH`` at a time
        (``WHERE key IN (...)``), so memory grows with the answer, not with the store."""
        found: set[str] = set()
        for batch in key_batches(keys):
            marks = ", ".join("?" * len(batch))
            query = f"SELECT key FROM results WHERE key IN ({marks})"
            found.update(row[0] for row in self._db.execute(query, batch))
        return found

    def results_of(self, keys: Iterable[str]) -> Iterator[tuple[Any, ...]]:
        """``(key, params, result, seconds, finished_at, session, code)`` (params and result as
        JSON text) of the stored results among ``keys``, queried ``KEY_BATCH`` at a time, in the
        order of ``keys`` (a key given twice is given twice)."""
        session = "session" if self._has_session_column() else "NULL"
        code = "code" if self._has_column("code") else "NULL"
        for batch in key_batches(keys):
            marks = ", ".join("?" * len(batch))
            query = (
                f"SELECT key, params, result, seconds, finished_at, {session}, {code} "
                f"FROM results WHERE key IN ({marks})"
            )
            found = {row[0]: row for row in self._db.execute(query, batch)}
            yield from (found[key] for key in batch if key in found)

    def failed_among(self, keys: Iterable[str]) -> set[str]:
        """The keys among ``keys`` that have a recorded failure and no stored result."""
        failed: set[str] = set()
        for batch in key_batches(keys):
            marks = ", ".join("?" * len(batch))
            query = (
                f"SELECT DISTINCT key FROM failures WHERE key IN ({marks}) "
                "AND key NOT IN (SELECT key FROM results)"
            )
            failed.update(row[0] for row in self._db.execute(query, batch))
        return failed

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def failures(self, *, outstanding: bool = True) -> pd.DataFrame:
        """Failed attempts (key, params, error, traceback, failed_at), oldest first.

        With ``outstanding=True`` only the latest failure of each key that has no result yet.
        """
        query = "SELECT rowid, key, params, error, traceback, failed_at FROM failures"
        if outstanding:
            query += (
                " WHERE key NOT IN (SELECT key FROM results)"
                " AND rowid IN (SELECT MAX(rowid) FROM failures GROUP BY key)"
            )
        frame = pd.read_sql_query(query + " ORDER BY rowid", self._db)
        return frame.drop(columns="rowid")

    def job_seconds(self, keys: Iterable[str]) -> float:
        """Sum of the stored run times (seconds) of ``keys``; keys without a result count 0."""
        return float(sum(row[3] or 0.0 for row in self.results_of(dict.fromkeys(keys))))

    def n_failed(self, keys: Iterable[str]) -> int:
        """How many of ``keys`` have an outstanding failure (failed, no result since)."""
        return len(self.failed_among(keys))

    def rows(self, keys: Iterable[str] | None = None, *, timing: bool = False) -> pd.DataFrame:
        """The results as a tidy table: ``key``, the params' columns, then the result's columns.

        ``keys`` selects (and orders) the rows; missing keys are skipped. Without ``keys`` the
        rows are sorted by key. A result field whose name is already a column is prefixed with
        ``result_``. ``timing=True`` appends the columns seconds, finished_at, session and code
        (prefixed with ``store_`` where a param or result field already has that name, e.g. a
        study that returns its own ``seconds``); session is None where unknown.
        """
        if keys is None:
            session = "session" if self._has_session_column() else "NULL"
            code = "code" if self._has_column("code") else "NULL"
            found: Iterable[tuple[Any, ...]] = self._db.execute(
                f"SELECT key, params, result, seconds, finished_at, {session}, {code} "
                "FROM results ORDER BY key"
            )
        else:
            found = self.results_of(dict.fromkeys(keys))
        return rows_frame(found, timing=timing)

    def export(
        self, path: str | Path, format: str | None = None, keys: Iterable[str] | None = None
    ) -> Path:
        """Write :meth:`rows` (with timing columns; only ``keys``, in their order, if given) to
        ``path`` as ``csv`` or ``parquet``.

        The format defaults to the file's suffix (.csv, .parquet or .pq); another suffix needs
        an explicit ``format``. Scalar columns keep their types in both formats. List cells (time
        series) are parquet list columns (``pandas.read_parquet`` gives arrays) and JSON text in
        CSV; dict cells, and lists parquet cannot type, are JSON text in both
        (:mod:`symlab.engine.cells`). The file is written atomically: a full disk or an
        unwritable path raises InputError and leaves nothing behind.
        """
        path = Path(path)
        if format is None:
            suffix = path.suffix.lower()
            if suffix not in (".csv", ".parquet", ".pq"):
                raise InputError(
                    f"output: cannot tell the format from the suffix {suffix or '(none)'!r}; "
                    "expected .csv, .parquet or .pq, or give the format (csv or parquet)."
                )
            format = "csv" if suffix == ".csv" else "parquet"
        if format not in ("csv", "parquet"):
            raise InputError(f"format: expected csv or parquet, got {format!r}.")
        table = self.rows(keys, timing=True)

        def write(target: Path) -> None:
            if format == "csv":
                flatten_cells(table).to_csv(target, index=False)
            else:
                parquet_table(table).to_parquet(target, index=False)

        return write_atomically(path, write, "output")
