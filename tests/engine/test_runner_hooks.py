"""run_study's progress hooks: on_start once, on_failure for each job that raised (before that
job's on_progress), on_progress after every job; the counts agree with the store."""

from __future__ import annotations

import json

from symlab.engine import JobError, Store, run_study


def test_on_failure_sees_each_failing_job_before_its_progress(toy, tmp_path):
    events = []
    run = run_study(
        "toy",
        {"xs": [0, 1, 2, 3], "seeds": [0, 1], "fail_on": [1, 3]},
        tmp_path,
        on_start=lambda done, total: events.append(("start", done, total)),
        on_progress=lambda done, total: events.append(("progress", done, total)),
        on_failure=lambda job, error: events.append(("failure", job, error)),
    )
    assert events[0] == ("start", 0, 8)
    progress = [e for e in events if e[0] == "progress"]
    assert [e[1] for e in progress] == list(range(1, 9)) and {e[2] for e in progress} == {8}
    failures = [e for e in events if e[0] == "failure"]
    assert sorted((j.params["x"], j.params["seed"]) for _, j, _ in failures) == [
        (1, 0), (1, 1), (3, 0), (3, 1),
    ]  # fmt: skip
    for index, event in enumerate(events):
        if event[0] == "failure":  # the next event is this job's progress
            assert events[index + 1][0] == "progress"
            assert isinstance(event[2], JobError) and event[2].error_type == "RuntimeError"
            assert f"toy failure at x={event[1].params['x']}" in str(event[2])
    assert run.n_failed == len(failures) == 4
    with Store(tmp_path) as store:
        stored = store.failures()
    assert sorted(stored["key"]) == sorted(job.key for _, job, _ in failures)
    assert sorted(json.loads(p)["x"] for p in stored["params"]) == [1, 1, 3, 3]
