"""A spec's jobs as a stream: expanded, keyed and checked against the store one batch at a time.

A sweep of 10^6 jobs must not hold 10^6 jobs in memory: :func:`iter_jobs` reads the study's
``expand`` lazily (a generator over the grid's product stays lazy end to end), :class:`PendingJobs`
asks the store which keys of each batch of ``KEY_BATCH`` jobs are done (``WHERE key IN (...)``)
and hands out the others, and :func:`spec_results` reads this spec's stored rows back the same
way. What stays in memory is bounded by the batch size and the executor's jobs in flight, plus
the final table of rows the summary needs.

Duplicate params (a spec listing a width twice) are computed once: a job whose key is stored,
in flight, or handed out earlier in its batch is skipped. Only a duplicate of a job that failed
runs again (its failure is then recorded twice).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from symlab.engine.cells import to_json
from symlab.engine.executors import Job
from symlab.engine.experiment import Experiment
from symlab.engine.store import KEY_BATCH, Store, key_batches, rows_frame

CHECKED_AHEAD = 1000  # jobs whose params are validated before anything is written


def job_key(
    experiment: str, version: str, params: Mapping[str, Any], code: str | None = None
) -> str:
    """16 hex digits of sha256(canonical JSON of [experiment, version, params] (+ [code])).

    Canonical JSON: keys sorted, no spaces; so the key does not depend on dict order. ``code`` is
    the study's code fingerprint (:mod:`symlab.engine.code_fingerprint`); None gives the keys of
    stores written before fingerprints were recorded.
    """
    fields = [experiment, str(version), dict(params)] + ([code] if code is not None else [])
    return hashlib.sha256(to_json(fields).encode("utf-8")).hexdigest()[:16]


def _keyed(experiment: Experiment, i: int, params: Any, code: str | None) -> Job:
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{experiment.name}.expand: job {i} must be a dict of params, "
            f"got {type(params).__name__}."
        )
    params = dict(params)
    try:
        key = job_key(experiment.name, experiment.version, params, code)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{experiment.name}.expand: job {i} params must be JSON-serialisable ({error})."
        ) from error
    return Job(key, params)


def iter_jobs(experiment: Experiment, spec: BaseModel, code: str | None = None) -> Iterator[Job]:
    """The jobs of ``spec`` in the study's order, keyed under the code fingerprint ``code``, one
    at a time (duplicates included; :class:`PendingJobs` runs them once)."""
    for i, params in enumerate(experiment.expand(spec)):
        yield _keyed(experiment, i, params, code)


def count_jobs(experiment: Experiment, spec: BaseModel) -> int:
    """How many jobs ``expand(spec)`` yields: the study's ``count_jobs(spec)`` (computed from the
    grid's sizes) when it has one, else counted by reading the expansion without keeping it.
    Also validates the first ``CHECKED_AHEAD`` jobs' params (dicts of JSON values)."""
    for _ in itertools.islice(iter_jobs(experiment, spec), CHECKED_AHEAD):
        pass
    if experiment.count_jobs is not None:
        return int(experiment.count_jobs(spec))
    return sum(1 for _ in experiment.expand(spec))


def count_stored(store: Store, jobs: Iterable[Job]) -> int:
    """How many of ``jobs`` (keys counted once within each batch) have a stored result; 0 at once
    for an empty store."""
    if len(store) == 0:
        return 0
    n = 0
    for batch in key_batches(job.key for job in jobs):
        n += len(store.stored_among(batch))
    return n


class PendingJobs:
    """The jobs of ``jobs`` not stored in ``store`` yet, each key handed out once (see the module
    docstring). The consumer calls :meth:`finished` with each key whose outcome it has handled."""

    def __init__(self, jobs: Iterable[Job], store: Store, batch: int = KEY_BATCH) -> None:
        self._jobs = iter(jobs)
        self._store = store
        self._batch = batch
        self.outstanding: set[str] = set()  # handed out, outcome not handled yet
        self.n_duplicates = 0  # jobs skipped because an equal job was stored or running

    def finished(self, key: str) -> None:
        self.outstanding.discard(key)

    def __iter__(self) -> Iterator[Job]:
        while batch := list(itertools.islice(self._jobs, self._batch)):
            stored = self._store.stored_among(job.key for job in batch)
            running = {job.key for job in batch if job.key in self.outstanding}
            handed: set[str] = set()
            for job in batch:
                key = job.key
                if key in stored:
                    continue
                if key in handed or key in self.outstanding:
                    self.n_duplicates += 1
                    continue
                if key in running and self._store.stored_among([key]):  # finished meanwhile
                    self.n_duplicates += 1
                    continue
                handed.add(key)
                self.outstanding.add(key)
                yield job


@dataclass(frozen=True)
class SpecResults:
    """This spec's stored rows (one per key, in the spec's order) and what the report needs."""

    rows: pd.DataFrame
    n_total: int  # distinct keys of the spec
    n_failed: int  # keys with an outstanding failure
    job_seconds: float  # sum of the stored rows' run times
    session_counts: dict[str | None, int]  # stored rows per session (None: unknown)


def first_occurrences(keys: pd.Series, codes: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the first occurrence of each key in ``keys``.

    ``codes``: the keys as 64-bit integers (a job key is 16 hex digits), or None. With them the
    check sorts 8 bytes a key instead of hashing a million strings (pandas' ``duplicated`` turns
    them into Python objects: ~100 MB for a 10^6-row sweep).
    """
    if codes is None:
        return ~keys.duplicated().to_numpy()
    ordered = np.sort(codes)
    if not (ordered[1:] == ordered[:-1]).any():  # the usual case: no key repeated
        return np.ones(len(codes), dtype=bool)
    order = np.argsort(codes, kind="stable")  # equal keys keep their order: the first leads
    ordered = codes[order]
    repeated = ordered[1:] == ordered[:-1]
    keep = np.ones(len(codes), dtype=bool)
    keep[order[1:][repeated]] = False
    return keep


_JOB_KEY = re.compile(r"[0-9a-f]{16}")


def spec_results(store: Store, keys: Iterable[str]) -> SpecResults:
    """Read the stored rows of ``keys`` back ``KEY_BATCH`` keys at a time (one pass).

    Beside the table, memory holds 20 bytes per row: the key as a number, the run time and the
    session's index; the table is built by :func:`symlab.engine.store.rows_frame` in chunks."""
    seconds = array("d")
    session_codes = array("i")  # an index into ``sessions`` (a store holds few sessions)
    key_codes: array | None = array("Q")
    sessions: dict[str | None, int] = {}
    missing: set[str] = set()

    def found() -> Iterator[tuple[Any, ...]]:
        nonlocal key_codes
        for batch in key_batches(keys):
            batch = list(dict.fromkeys(batch))
            rows = list(store.results_of(batch))
            if len(rows) < len(batch):
                missing.update(set(batch) - {row[0] for row in rows})
            for row in rows:
                seconds.append(row[3] or 0.0)
                session_codes.append(sessions.setdefault(row[5], len(sessions)))
                if key_codes is not None:
                    if _JOB_KEY.fullmatch(row[0]):
                        key_codes.append(int(row[0], 16))
                    else:  # not a job key: compare the strings
                        key_codes = None
                yield row

    rows = rows_frame(found())
    keep = np.ones(len(rows), dtype=bool)
    if len(rows):
        codes = None if key_codes is None else np.frombuffer(key_codes, dtype=np.uint64)
        keep = first_occurrences(rows["key"], codes)
        if not keep.all():  # a key repeated in two batches
            rows = rows[keep].reset_index(drop=True)
    if missing:
        missing -= set(rows["key"])
    codes = np.frombuffer(session_codes, dtype=np.int32)[keep] if len(rows) else []
    tally = np.bincount(codes, minlength=len(sessions)) if len(rows) else []
    counts = {session: int(tally[code]) for session, code in sessions.items() if len(rows)}
    return SpecResults(
        rows=rows,
        n_total=len(rows) + len(missing),
        n_failed=len(store.failed_among(missing)) if missing else 0,
        job_seconds=float(np.frombuffer(seconds, dtype=np.float64)[keep].sum())
        if len(rows)
        else 0.0,
        session_counts={s: n for s, n in counts.items() if n},
    )
