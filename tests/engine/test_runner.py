"""Jobs, executors and run_study on the toy study: real processes, real SQLite, no mocks."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from symlab.engine import (
    InputError,
    Job,
    JobError,
    LocalExecutor,
    SpecError,
    Store,
    expand_jobs,
    job_key,
    load_spec,
    report_study,
    run_study,
    spec_from_mapping,
)

# ------------------------------------------------------------------------------ job keys


def test_job_key_is_sha256_of_canonical_json():
    params = {"x": 3, "seed": 1, "widths": [2, 3], "lr": 0.1}
    text = json.dumps(["toy", "1", params], sort_keys=True, separators=(",", ":"))
    assert job_key("toy", "1", params) == hashlib.sha256(text.encode()).hexdigest()[:16]
    reordered = {"lr": 0.1, "widths": [2, 3], "seed": 1, "x": 3}
    assert job_key("toy", "1", reordered) == job_key("toy", "1", params)


def test_job_keys_are_distinct():
    base = {"x": 3, "seed": 1}
    keys = {
        job_key("toy", "1", base),
        job_key("toy", "2", base),  # a new code version invalidates old rows
        job_key("other", "1", base),
        job_key("toy", "1", {"x": 3, "seed": 2}),
        job_key("toy", "1", {"x": 3, "seed": 1, "extra": None}),
        job_key("toy", "1", {"x": [3], "seed": 1}),
    }
    assert len(keys) == 6


def test_job_keys_are_stable_across_processes(toy):
    jobs = expand_jobs(toy, load_spec("toy"))
    code = (
        "import json, sys; from symlab.engine.runner import job_key;"
        "print(' '.join(job_key('toy', '1', p) for p in json.loads(sys.argv[1])))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    params = json.dumps([job.params for job in jobs])
    out = subprocess.run(
        [sys.executable, "-c", code, params], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [job.key for job in jobs]
    assert len({job.key for job in jobs}) == len(jobs) == 8


def test_duplicate_params_run_once(toy):
    spec = spec_from_mapping("toy", {"xs": [1, 1, 2]})
    assert [job.params["x"] for job in expand_jobs(toy, spec)] == [1, 2]


# ------------------------------------------------------------------------------ executors


def test_local_executor_rejects_bad_workers():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(InputError, match="workers: expected an integer >= 1"):
            LocalExecutor(bad)


def test_inline_executor_catches_errors_and_goes_on(toy):
    jobs = [Job(str(x), {"x": x, "seed": 0, "sleep": 0.0, "fail": x == 1}) for x in range(3)]
    outcomes = list(LocalExecutor(1).submit_all(toy.run_job, jobs))
    assert [job.key for job, _ in outcomes] == ["0", "1", "2"]
    assert outcomes[0][1]["y"] == 0 and outcomes[2][1]["y"] == 4
    error = outcomes[1][1]
    assert isinstance(error, JobError) and error.error_type == "RuntimeError"
    assert "toy failure at x=1" in error.message and "raise RuntimeError" in error.traceback
    assert outcomes[0][1]["pid"] == os.getpid()  # inline: this process


def test_process_pool_yields_in_completion_order_and_survives_a_dying_worker(toy):
    jobs = [
        Job("slow", {"x": 1, "seed": 0, "sleep": 1.0, "fail": False}),
        Job("fast", {"x": 2, "seed": 0, "sleep": 0.0, "fail": False}),
    ]
    outcomes = list(LocalExecutor(2).submit_all(toy.run_job, jobs))
    assert [job.key for job, _ in outcomes] == ["fast", "slow"]
    assert {o["pid"] for _, o in outcomes}.isdisjoint({os.getpid()})
    crash = [
        Job("crash", {"x": 1, "seed": 0, "sleep": 0.0, "fail": True, "mode": "crash"}),
        Job("ok", {"x": 2, "seed": 0, "sleep": 0.3, "fail": False}),
    ]
    outcomes = {job.key: o for job, o in LocalExecutor(2).submit_all(toy.run_job, crash)}
    assert set(outcomes) == {"crash", "ok"}  # every job reported, the iterator ends
    assert isinstance(outcomes["crash"], JobError)
    assert outcomes["crash"].error_type == "BrokenProcessPool"


# ------------------------------------------------------------------------------ run_study


def comparable(rows):
    return rows.drop(columns="pid").to_dict("records")


def test_workers_1_and_2_store_identical_rows(toy, tmp_path):
    spec = load_spec("toy")
    one = run_study("toy", spec, tmp_path / "one", workers=1)
    two = run_study("toy", spec, tmp_path / "two", workers=2)
    assert one.n_total == two.n_total == 8 and one.n_new == two.n_new == 8
    assert comparable(one.rows) == comparable(two.rows)
    assert one.rows["y"].tolist() == [x**2 + s for s in (0, 10) for x in range(4)]
    assert set(one.rows["pid"]) == {os.getpid()}
    assert os.getpid() not in set(two.rows["pid"])
    assert one.summary.table.equals(two.summary.table)


def test_resume_runs_only_missing_jobs_and_summarizes_this_spec(toy, tmp_path):
    first = run_study("toy", {"xs": [0, 1]}, tmp_path)
    with Store(tmp_path) as store:
        stamps = store.rows(timing=True).set_index("key")["finished_at"].to_dict()
    calls = []
    second = run_study(
        "toy",
        {"xs": [0, 1, 2]},
        tmp_path,
        on_start=lambda done, total: calls.append(("start", done, total)),
        on_progress=lambda done, total: calls.append(("progress", done, total)),
    )
    assert (first.n_new, second.n_done_before, second.n_new, second.n_total) == (2, 2, 1, 3)
    assert calls == [("start", 2, 3), ("progress", 3, 3)]
    with Store(tmp_path) as store:
        after = store.rows(timing=True).set_index("key")["finished_at"].to_dict()
    assert {k: after[k] for k in stamps} == stamps  # stored rows untouched
    again = run_study("toy", {"xs": [2]}, tmp_path)  # a sub-spec: nothing to run
    assert (again.n_new, again.n_done_before, len(again.rows)) == (0, 1, 1)
    assert again.summary.extras["n"] == 1  # summarize sees only this spec's rows
    assert (tmp_path / "spec.toml").read_text().startswith('study = "toy"')


def test_failures_are_recorded_and_the_sweep_continues(toy, tmp_path):
    spec = {"xs": [0, 1, 2, 3], "fail_on": [1, 2]}
    run = run_study("toy", spec, tmp_path)
    assert (run.n_new, run.n_failed, len(run.rows)) == (2, 2, 2)
    with Store(tmp_path) as store:
        failed = store.failures()
    assert sorted(json.loads(p)["x"] for p in failed["params"]) == [1, 2]
    assert failed["error"].str.startswith("RuntimeError: toy failure").all()
    assert failed["traceback"].str.contains("Traceback").all()
    retry = run_study("toy", spec, tmp_path)  # failed keys are retried on resume
    assert (retry.n_done_before, retry.n_new, retry.n_failed) == (2, 0, 2)
    assert "2 failed" in (tmp_path / "verdict.md").read_text()


def test_a_row_json_cannot_hold_is_a_failure_not_a_crash(toy, tmp_path):
    run = run_study("toy", {"xs": [1], "mode": "bad-row"}, tmp_path)
    assert (run.n_new, run.n_failed) == (0, 1)
    assert run.summary is None and "No job" in (tmp_path / "verdict.md").read_text()
    with Store(tmp_path) as store:
        assert "TypeError" in store.failures()["error"].iloc[0]


def test_a_failing_plot_still_writes_table_and_verdict(toy, tmp_path):
    with pytest.raises(KeyError, match="missing column"):
        run_study("toy", {"xs": [1, 2], "mode": "bad-plot"}, tmp_path)
    assert (tmp_path / "summary.csv").read_text().startswith("seed,n,mean_y")
    assert "The toy study stored 2 rows" in (tmp_path / "verdict.md").read_text()
    with Store(tmp_path) as store:
        assert len(store) == 2  # the rows are kept for `symlab report` after a fix


@pytest.mark.parametrize(
    ("spec", "kwargs", "error"),
    [
        ({"xs": "three"}, {}, SpecError),
        ({"xs": [1]}, {"workers": 0}, InputError),
        ({"xs": [1]}, {"workers": 2, "executor": LocalExecutor(1)}, InputError),
        (object(), {}, InputError),
    ],
)
def test_bad_input_writes_nothing(toy, tmp_path, spec, kwargs, error):
    with pytest.raises(error):
        run_study("toy", spec, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_a_directory_of_another_study_is_refused(toy, tmp_path):
    with Store(tmp_path) as store:
        store.set_meta(study="hidden-symmetries")
    with pytest.raises(InputError, match="holds a run of study hidden-symmetries"):
        run_study("toy", {"xs": [1]}, tmp_path)
    with pytest.raises(InputError, match="not a directory"):
        (tmp_path / "file").write_text("")
        run_study("toy", {"xs": [1]}, tmp_path / "file")


def test_report_files_and_report_study_rebuilds_them(toy, tmp_path):
    run = run_study("toy", load_spec("toy"), tmp_path)
    assert [p.name for p in run.figures] == ["toy.png", "toy.svg"]
    assert all(p.is_file() and p.parent == tmp_path / "figures" for p in run.figures)
    page = (tmp_path / "report.html").read_text()
    assert '<img src="figures/toy.png"' in page
    assert run.summary.verdict in page and "<table" in page and "xs = [0, 1, 2, 3]" in page
    assert (tmp_path / "summary.csv").read_text().splitlines()[0] == "seed,n,mean_y"
    verdict = (tmp_path / "verdict.md").read_text()
    assert "jobs: 8 of 8 stored" in verdict and run.summary.verdict in verdict
    for name in ("report.html", "summary.csv", "verdict.md", "figures/toy.png"):
        (tmp_path / name).unlink()
    again = report_study(tmp_path)
    assert (again.n_new, again.n_stored, again.n_total) == (0, 8, 8)
    assert again.summary.verdict == run.summary.verdict
    assert (tmp_path / "report.html").read_text().count("<img") == 1
    assert (tmp_path / "figures" / "toy.png").is_file()


def test_the_pool_is_fed_lazily_and_recovers_from_a_dead_worker(toy):
    """Jobs are drawn from the iterator only as slots free up (bounded memory for any grid),
    and a worker that dies costs only the jobs in flight: a fresh pool runs the rest."""
    from symlab.engine.executors import IN_FLIGHT_PER_WORKER

    drawn = []

    def jobs():
        for i in range(40):
            drawn.append(i)
            mode = {"mode": "crash"} if i == 3 else {}
            yield Job(f"k{i}", {"x": i, "seed": 0, "sleep": 0.02, "fail": i == 3, **mode})

    outcomes = {}
    for job, outcome in LocalExecutor(2).submit_all(toy.run_job, jobs()):
        outcomes[job.key] = outcome
        # never more than the in-flight bound drawn ahead of what was reported
        assert len(drawn) - len(outcomes) <= IN_FLIGHT_PER_WORKER * 2
    assert set(outcomes) == {f"k{i}" for i in range(40)}  # every job reported once
    failed = [k for k, o in outcomes.items() if isinstance(o, JobError)]
    assert "k3" in failed and len(failed) <= IN_FLIGHT_PER_WORKER * 2
    assert all(outcomes[f"k{i}"]["y"] == i * i for i in range(20, 40))
