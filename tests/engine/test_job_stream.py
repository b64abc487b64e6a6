"""Lazy job streams: the grid is read a batch at a time, done keys are asked of the store in
batches, a duplicate job runs once, and the rows read back equal a full read's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ConfigDict, conint

from symlab.engine import Experiment, Job, Store, Summary, run_study
from symlab.engine.job_stream import PendingJobs, count_jobs, first_occurrences, spec_results
from symlab.engine.store import KEY_BATCH

YIELDED: list[int] = []  # indices the grid generator has produced (read by the inline jobs)
SEEN_AT_FIRST_JOB: list[int] = []


class LazySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: conint(ge=1)


def lazy_grid(spec: LazySpec):
    for i in range(spec.n):
        YIELDED.append(i)
        yield {"i": i}


def lazy_job(params: dict[str, Any]) -> dict[str, Any]:
    if not SEEN_AT_FIRST_JOB:
        SEEN_AT_FIRST_JOB.append(len(YIELDED))
    return {"y": params["i"] * 3}


LAZY = Experiment(
    name="lazy-grid",
    description="a generator grid (engine test)",
    spec_model=LazySpec,
    expand=lazy_grid,
    run_job=lazy_job,
    summarize=lambda rows, spec: Summary(table=rows.head(0), verdict=f"{len(rows)} rows"),
    plot=lambda rows, spec, out: [],
    count_jobs=lambda spec: spec.n,
)


def test_the_grid_is_read_lazily_and_every_job_runs_once(tmp_path):
    YIELDED.clear()
    SEEN_AT_FIRST_JOB.clear()
    n = 3000
    run = run_study(LAZY, {"n": n}, tmp_path)
    # when the first job ran, the engine had read the params it validates and one batch
    assert SEEN_AT_FIRST_JOB[0] <= 1000 + KEY_BATCH < n
    assert run.n_total == run.n_new == len(run.rows) == n
    assert run.rows["y"].tolist() == [3 * i for i in range(n)]
    assert count_jobs(LAZY, LAZY.spec_model(n=n)) == n


def _job(name: str) -> Job:
    return Job(name * 16, {"name": name})


def _store_row(store: Store, job: Job) -> None:
    store.add(job.key, "t", "1", job.params, {"ok": 1})


def test_pending_jobs_skip_stored_keys_and_hand_out_duplicates_once(tmp_path):
    a, b, c = _job("a"), _job("b"), _job("c")
    with Store(tmp_path) as store:
        _store_row(store, c)
        pending = PendingJobs([a, b, a, c, b, a], store, batch=2)
        handed = []
        for job in pending:
            handed.append(job.params["name"])
            if job is a:  # a finishes and is stored before the next batch is read
                _store_row(store, a)
                pending.finished(a.key)
        # a: stored by then; c: stored before; b: still running each time it comes again
        assert handed == ["a", "b"] and pending.n_duplicates == 1


def test_a_duplicate_of_a_job_that_failed_runs_again(tmp_path):
    a, b = _job("a"), _job("b")
    with Store(tmp_path) as store:
        pending = PendingJobs([a, b, a], store, batch=2)
        handed = []
        for job in pending:
            handed.append(job.params["name"])
            pending.finished(job.key)  # no row stored: it failed
        assert handed == ["a", "b", "a"]


def test_spec_results_equal_a_full_read_and_count_missing_and_failed_keys(tmp_path):
    jobs = [_job(name) for name in "abcdefg"]
    with Store(tmp_path) as store:
        for job in jobs[:5]:
            _store_row(store, job)
        store.add_failure(jobs[5].key, jobs[5].params, "boom")
        keys = [job.key for job in jobs] + [jobs[0].key]  # a key given twice
        results = spec_results(store, keys)
        full = store.rows([job.key for job in jobs])
    pd.testing.assert_frame_equal(results.rows, full)
    assert results.n_total == 7 and results.n_failed == 1 and len(results.rows) == 5
    assert results.session_counts == {None: 5}


@pytest.mark.parametrize("hex_keys", [True, False], ids=["job-keys", "other-keys"])
def test_a_key_repeated_across_batches_is_read_once_in_its_first_place(tmp_path, hex_keys):
    """Job keys are deduplicated as 64-bit numbers, other keys as strings: the same rows."""
    jobs = [Job(f"{i:016x}" if hex_keys else f"k{i}", {"i": i}) for i in range(KEY_BATCH + 5)]
    with Store(tmp_path) as store:
        for job in jobs:
            store.add(job.key, "t", "1", job.params, {"y": job.params["i"] * 2})
        repeats = [jobs[3], jobs[KEY_BATCH + 1], jobs[0]]  # in the next batch: repeats
        keys = [job.key for job in jobs] + [k.key for k in repeats] + ["f" * 16, "missing"]
        results = spec_results(store, keys)
        expected = store.rows([job.key for job in jobs])
    pd.testing.assert_frame_equal(results.rows, expected)
    assert results.n_total == len(jobs) + 2 and results.n_failed == 0


def test_first_occurrences_of_numeric_keys_equal_pandas_duplicated():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 50, size=400).astype(np.uint64)
    keys = pd.Series([f"{c:016x}" for c in codes])
    np.testing.assert_array_equal(first_occurrences(keys, codes), ~keys.duplicated().to_numpy())
    np.testing.assert_array_equal(first_occurrences(keys), ~keys.duplicated().to_numpy())


def test_rows_read_in_chunks_equal_one_read(tmp_path, monkeypatch):
    import symlab.engine.store as store_module

    with Store(tmp_path) as store:
        for i in range(25):
            store.add(f"k{i:03d}", "t", "1", {"i": i}, {"y": i / 7, "z": [i, i]})
        whole = store.rows()
        monkeypatch.setattr(store_module, "FRAME_CHUNK", 4)
        chunked = store.rows()
    pd.testing.assert_frame_equal(chunked, whole)
    assert Path(tmp_path / "results.sqlite").is_file()
