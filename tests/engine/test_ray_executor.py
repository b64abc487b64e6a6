"""The Ray executor on a real local Ray instance (no mocks): the rows equal the local executor's
bit for bit (the CPU determinism test), a failing job is stored with its traceback, a Ray worker
killed with SIGKILL mid-sweep loses no row, and symlab imports and explains itself without ray.

One Ray instance (2 CPUs, no dashboard) per test process, shared by the tests of this module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from symlab.engine import InputError, Job, Store, run_study
from symlab.engine.ray_executor import (
    CHUNK_SECONDS,
    MAX_CHUNK,
    ChunkSizer,
    RayExecutor,
    run_chunk,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TINY_HIDDEN_SYMMETRIES = {
    "input_dims": [2],
    "widths": [4],
    "depths": [1, 2],
    "seeds": 2,
    "samplers": ["gaussian"],
    "max_points": 2000,
}


@pytest.fixture(scope="module")
def ray_instance(toy):
    """A real local Ray instance whose workers can import the toy study."""
    ray = pytest.importorskip("ray")
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), before or ""])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def test_ray_rows_equal_the_local_rows_bit_for_bit(ray_instance, tmp_path):
    """CPU determinism: the same spec gives the same rows, to the last bit, inline and on Ray."""
    local = run_study("hidden-symmetries", TINY_HIDDEN_SYMMETRIES, tmp_path / "local")
    on_ray = run_study(
        "hidden-symmetries", TINY_HIDDEN_SYMMETRIES, tmp_path / "ray", executor="ray"
    )
    assert on_ray.n_new == on_ray.n_total == 4 and on_ray.n_failed == 0
    timing = [c for c in local.rows.columns if c.endswith("seconds")]  # wall times differ
    left, right = local.rows.drop(columns=timing), on_ray.rows.drop(columns=timing)
    assert list(left.columns) == list(right.columns)
    assert left.equals(right)  # same dtypes and values (NaN where NaN)
    floats = left.select_dtypes("float64").columns
    assert len(floats) >= 2  # exact: the floats' bit patterns
    assert (left[floats].to_numpy().view("int64") == right[floats].to_numpy().view("int64")).all()
    with Store(tmp_path / "ray") as store:
        assert store.sessions()["executor"].tolist() == ["RayExecutor"]


def test_a_failing_ray_job_is_stored_with_its_traceback_and_the_sweep_goes_on(
    ray_instance, toy, tmp_path
):
    spec = {"xs": [0, 1, 2, 3, 4, 5], "seeds": [0], "fail_on": [2]}
    failures = []
    run = run_study(
        toy,
        spec,
        tmp_path,
        executor="ray",
        on_failure=lambda job, error: failures.append((job.params["x"], str(error))),
    )
    assert run.n_new == 5 and run.n_failed == 1
    assert failures == [(2, "RuntimeError: toy failure at x=2")]
    assert sorted(run.rows["x"]) == [0, 1, 3, 4, 5]
    assert set(run.rows["pid"]).isdisjoint({os.getpid()})  # computed in Ray workers
    with Store(tmp_path) as store:
        failure = store.failures().iloc[0]
    assert 'File "toy_study.py"' in failure["traceback"]  # portable: no folder named
    assert str(HERE) not in failure["traceback"]


def test_a_failing_job_in_a_chunk_is_stored_with_its_error_and_the_others_land(
    ray_instance, toy, tmp_path
):
    spec = {"xs": list(range(9)), "seeds": [0], "fail_on": [4]}
    run = run_study(toy, spec, tmp_path, executor="ray", chunk=3)
    assert run.n_new == 8 and run.n_failed == 1
    assert sorted(run.rows["x"]) == [0, 1, 2, 3, 5, 6, 7, 8]
    pids = run.rows.set_index("x")["pid"]
    for chunk in ([0, 1, 2], [3, 5], [6, 7, 8]):  # one task (one worker process) per chunk
        assert pids[chunk].nunique() == 1
    with Store(tmp_path) as store:
        (failure,) = store.failures().itertuples()
    assert failure.error == "RuntimeError: toy failure at x=4"
    assert 'File "toy_study.py"' in failure.traceback


def test_chunk_sizes_follow_the_measured_job_time():
    fixed = ChunkSizer(7)
    fixed.observe(100.0)
    assert fixed.size() == 7
    sizer = ChunkSizer()
    assert sizer.size() == 1  # nothing measured yet
    sizer.observe(CHUNK_SECONDS / 5)
    assert sizer.size() == 5
    for _ in range(2000):  # the average follows jobs that became fast
        sizer.observe(1e-7)
    assert sizer.size() == MAX_CHUNK
    for _ in range(2000):
        sizer.observe(3 * CHUNK_SECONDS)  # jobs longer than a chunk's target: one per task
    assert sizer.size() == 1


def test_a_chunk_stops_when_its_budget_is_spent_and_returns_what_it_ran(toy):
    sleep_then_echo = sys.modules["toy_study"].sleep_then_echo
    params = [{"i": i, "sleep": 0.05} for i in range(10)]
    outcomes = run_chunk(sleep_then_echo, params, threads=1, budget=0.1)
    assert 1 <= len(outcomes) <= 3  # stopped after the job that passed 0.1 s
    assert [row["i"] for row, _ in outcomes] == list(range(len(outcomes)))
    assert all(seconds >= 0.05 for _, seconds in outcomes)
    assert len(run_chunk(sleep_then_echo, params[:3], threads=1)) == 3  # no budget: all


def test_jobs_that_turn_slow_are_given_back_and_each_runs_once(ray_instance, toy):
    """The first jobs take microseconds (so the next chunk is sized to hold all the rest), the
    last six 1.2 s each: that chunk spends its budget (2 s) after two of them and gives the
    rest back. The workers are warmed first: a cold worker's first job (imports) can take long
    enough on a loaded machine to size the chunks too small to hold two slow jobs."""
    jobs = [Job(f"k{i}", {"i": i, "sleep": 1.2 if i >= 34 else 0.0}) for i in range(40)]
    executor, fn = RayExecutor(), sys.modules["toy_study"].sleep_then_echo
    warm = [Job(f"w{i}", {"i": i, "sleep": 0.0}) for i in range(16)]
    assert len(list(executor.submit_all(fn, warm))) == len(warm)
    got = [(job.key, outcome) for job, outcome in executor.submit_all(fn, jobs)]
    assert sorted(key for key, _ in got) == sorted(job.key for job in jobs)  # each once
    assert all(outcome["i"] == int(key[1:]) for key, outcome in got)
    assert executor.n_given_back > 0


def test_chunked_ray_rows_equal_the_local_rows(ray_instance, toy, tmp_path):
    spec = {"xs": list(range(40)), "seeds": [0, 1]}
    local = run_study(toy, spec, tmp_path / "local")
    executor = RayExecutor()  # adaptive chunks: these jobs take microseconds
    on_ray = run_study(toy, spec, tmp_path / "ray", executor=executor)
    assert on_ray.n_new == on_ray.n_total == 80
    columns = [c for c in local.rows.columns if c != "pid" and not c.endswith("seconds")]
    assert local.rows[columns].equals(on_ray.rows[columns])
    # the first 8 tasks (4 per CPU) hold one job each, then chunks hold the rest: 9-12 tasks on
    # an idle machine; the sizes follow measured job times, so a loaded machine (parallel test
    # workers, CI) makes more, smaller chunks — still far fewer tasks than the 80 jobs
    assert 9 <= executor.n_tasks <= 40


def _busy_ray_workers() -> list[int]:
    """Pids of Ray worker processes running a task (Ray names them ``ray::run_chunk``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if command.startswith(b"ray::run_chunk"):
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("chunk", [None, 4], ids=["adaptive", "chunks-of-4"])
def test_a_ray_worker_killed_mid_sweep_loses_no_row(ray_instance, toy, tmp_path, chunk):
    """Adaptive chunks of these 0.3 s jobs hold one job each; with chunks of 4 the killed
    worker's chunk is re-run whole by Ray, and each of its jobs is still stored once."""
    killed: list[int] = []

    def kill_a_busy_worker(n_done: int, n_total: int) -> None:
        if not killed and n_done >= 2:
            for _ in range(200):  # the next tasks start within moments
                busy = [pid for pid in _busy_ray_workers() if pid != os.getpid()]
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
                    return
                time.sleep(0.02)

    spec = {"xs": list(range(12)), "seeds": [0], "sleep": 0.3}
    run = run_study(
        toy, spec, tmp_path, executor="ray", chunk=chunk, on_progress=kill_a_busy_worker
    )
    assert killed, "a busy Ray worker was found and killed"
    assert run.n_failed == 0 and run.n_new == 12
    assert sorted(run.rows["x"]) == list(range(12))  # every row, once
    assert not Path(f"/proc/{killed[0]}").exists() or b"ray::" not in (
        Path(f"/proc/{killed[0]}/cmdline").read_bytes()
    )  # it is gone: its task was re-run by Ray on another worker
    with Store(tmp_path) as store:
        assert len(store) == 12 and len(store.failures()) == 0


def test_symlab_imports_without_ray_and_asks_for_it_in_one_sentence(
    toy, monkeypatch, capsys, tmp_path
):
    code = "import sys, symlab.engine, symlab.cli; assert 'ray' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees without the package
    with pytest.raises(InputError, match=r"^--executor ray: the ray package is not installed"):
        run_study(toy, {"xs": [1]}, tmp_path / "run", executor="ray")
    from cli_in_process import cli

    code, _, err = cli(capsys, "run", "toy", "--executor", "ray", "-o", str(tmp_path / "cli"))
    assert code == 2 and "Traceback" not in err
    assert err.strip().endswith("install it with pip install 'symlab[ray]' (or pip install ray).")
    assert not (tmp_path / "cli").exists()
