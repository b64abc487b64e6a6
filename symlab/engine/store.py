"""The results store of a run directory: one SQLite file, ``results.sqlite``.

Tables
    ``results(key TEXT PRIMARY KEY, experiment, version, params JSON, result JSON, seconds REAL,
    finished_at TEXT, host TEXT)`` -- one row per finished job;
    ``failures(key, params JSON, error TEXT, traceback TEXT, failed_at TEXT, host TEXT)`` -- one
    row per failed attempt (a later success of the same key supersedes it);
    ``meta(name TEXT PRIMARY KEY, value TEXT)`` -- ``study``, ``spec`` (TOML), ``created``.

The database runs in WAL mode and every result is inserted in its own transaction with
``INSERT OR IGNORE``, so a run killed at any moment keeps every row it reported, and inserting
the same key twice is harmless (resume is idempotent).
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from symlab.engine.errors import InputError

STORE_NAME = "results.sqlite"
TIMING_COLUMNS = ("seconds", "finished_at", "host")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    version TEXT NOT NULL,
    params TEXT NOT NULL,
    result TEXT NOT NULL,
    seconds REAL,
    finished_at TEXT,
    host TEXT
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


def now() -> str:
    """The current UTC time as ISO 8601 text (seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def to_json(value: Any, *, sort_keys: bool = True) -> str:
    """Compact JSON text, canonical (sorted keys) by default; NaN and infinities are kept."""
    return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"))


class Store:
    """The SQLite store of the run directory ``run_dir`` (see the module docstring).

    ``Store(run_dir)`` opens ``run_dir/results.sqlite``; with ``create=False`` a missing file
    raises InputError instead of being created.
    """

    def __init__(self, run_dir: str | Path, *, create: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STORE_NAME
        if not self.path.is_file():
            if not create:
                raise InputError(
                    f"run directory '{self.run_dir}' holds no results ({STORE_NAME} not found)."
                )
            self.run_dir.mkdir(parents=True, exist_ok=True)
        # sqlite3 opens a transaction before each INSERT; ``with self._db`` commits it
        self._db = sqlite3.connect(self.path, timeout=60.0)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as error:  # e.g. "file is not a database"
            self._db.close()
            raise InputError(
                f"run directory '{self.run_dir}': {STORE_NAME} is not a readable SQLite store "
                f"({error})."
            ) from error
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash in WAL
        if create:
            self._db.executescript(_SCHEMA)
        self.host = socket.gethostname()

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self._db.close()

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
        host: str | None = None,
    ) -> bool:
        """Insert one finished job in its own transaction; False if ``key`` was already stored."""
        with self._db:  # BEGIN ... COMMIT
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    experiment,
                    str(version),
                    to_json(params, sort_keys=False),  # the study's order gives the columns'
                    to_json(result, sort_keys=False),
                    seconds,
                    now(),
                    host or self.host,
                ),
            )
        return cursor.rowcount == 1

    def add_failure(
        self,
        key: str,
        params: Mapping[str, Any],
        error: str,
        traceback: str = "",
        host: str | None = None,
    ) -> None:
        """Record a failed attempt of job ``key`` (its error text and traceback)."""
        with self._db:
            self._db.execute(
                "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                (key, to_json(params, sort_keys=False), error, traceback, now(), host or self.host),
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

    def keys(self) -> set[str]:
        """The keys of all stored results."""
        return {row[0] for row in self._db.execute("SELECT key FROM results")}

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def failures(self, *, outstanding: bool = True) -> pd.DataFrame:
        """Failed attempts (key, params, error, traceback, failed_at, host), oldest first.

        With ``outstanding=True`` only the latest failure of each key that has no result yet.
        """
        query = "SELECT rowid, * FROM failures"
        if outstanding:
            query += (
                " WHERE key NOT IN (SELECT key FROM results)"
                " AND rowid IN (SELECT MAX(rowid) FROM failures GROUP BY key)"
            )
        frame = pd.read_sql_query(query + " ORDER BY rowid", self._db)
        return frame.drop(columns="rowid")

    def job_seconds(self, keys: Iterable[str]) -> float:
        """Sum of the stored run times (seconds) of ``keys``; keys without a result count 0."""
        wanted = set(keys)
        cursor = self._db.execute("SELECT key, seconds FROM results")
        return float(sum(seconds or 0.0 for key, seconds in cursor if key in wanted))

    def n_failed(self, keys: Iterable[str]) -> int:
        """How many of ``keys`` have an outstanding failure (failed, no result since)."""
        failures = self.failures()
        return int(failures["key"].isin(set(keys)).sum()) if len(failures) else 0

    def rows(self, keys: Iterable[str] | None = None, *, timing: bool = False) -> pd.DataFrame:
        """The results as a tidy table: ``key``, the params' columns, then the result's columns.

        ``keys`` selects (and orders) the rows; missing keys are skipped. Without ``keys`` the
        rows are sorted by key. A result field whose name is already a column is prefixed with
        ``result_``. ``timing=True`` appends the columns seconds, finished_at and host (prefixed
        with ``store_`` where a param or result field already has that name, e.g. a study that
        returns its own ``seconds``).
        """
        cursor = self._db.execute(
            "SELECT key, params, result, seconds, finished_at, host FROM results"
        )
        found = {r[0]: r for r in cursor}
        order = sorted(found) if keys is None else [k for k in dict.fromkeys(keys) if k in found]
        records = []
        for key in order:
            _, params, result, seconds, finished_at, host = found[key]
            record: dict[str, Any] = {"key": key}
            record.update(json.loads(params))
            for name, value in json.loads(result).items():
                record[f"result_{name}" if name in record else name] = value
            if timing:
                for name, value in (
                    ("seconds", seconds),
                    ("finished_at", finished_at),
                    ("host", host),
                ):
                    record[f"store_{name}" if name in record else name] = value
            records.append(record)
        if not records:
            return pd.DataFrame({"key": pd.Series([], dtype=object)})
        return pd.DataFrame.from_records(records)

    def export(
        self, path: str | Path, format: str | None = None, keys: Iterable[str] | None = None
    ) -> Path:
        """Write :meth:`rows` (with timing columns; only ``keys``, in their order, if given) to
        ``path`` as ``csv`` or ``parquet``.

        The format defaults to the file's suffix (.csv, .parquet or .pq); another suffix needs
        an explicit ``format``. List and dict cells are written as JSON text so both formats hold
        a flat table of scalars.
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
        table = flatten_cells(self.rows(keys, timing=True))
        path.parent.mkdir(parents=True, exist_ok=True)
        if format == "csv":
            table.to_csv(path, index=False)
        else:
            table.to_parquet(path, index=False)
        return path


def flatten_cells(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with list/dict cells replaced by their JSON text (for CSV and parquet)."""
    table = table.copy()
    for column in table.columns:
        if table[column].map(lambda v: isinstance(v, list | dict | tuple)).any():
            table[column] = table[column].map(
                lambda v: to_json(v) if isinstance(v, list | dict | tuple) else v
            )
    return table
