"""Crash safety, proven on real processes: a sweep (the real CLI in a subprocess) is SIGKILLed at
random moments and resumed each time; at the end every job has exactly one row with the right
value, ``PRAGMA integrity_check`` is ok after every kill, and no process of the killed sweep (its
pool workers, or Ray's processes and workers) outlives it.

Local executor: ten kills of the CLI process alone (its workers learn of it from the kernel,
PR_SET_PDEATHSIG). Ray executor: two kills of the sweep's whole process group, as a batch
scheduler ends a job (Ray's own helper processes outlive a driver killed alone by up to a minute
before they notice). The kill moments are drawn from a seeded generator: half at a random time
after the start (some land in the start-up, before any row), half once a random number of rows
is stored.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ENGINE_TESTS = Path(__file__).resolve().parent / "engine"
REPO = ENGINE_TESTS.parent.parent
N_JOBS = 24

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture()
def toy_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ENGINE_TESTS), str(REPO), env.get("PYTHONPATH", "")])
    env["SYMLAB_EXPERIMENTS"] = "toy_study"
    return env


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process (from /proc/PID/stat)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (command)"
        table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def _sweep_processes(root: int) -> set[int]:
    """The processes of the sweep started as ``root``: its descendants and its process group."""
    table = _processes()
    found = {pid for pid, (_, group) in table.items() if group == root}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found - {root}


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if state[state.rindex(")") + 2] != "Z":  # a zombie has already exited
            alive.add(pid)
    return alive


def _stored(store: Path) -> int:
    try:
        with sqlite3.connect(store, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def _integrity(store: Path) -> str:
    with sqlite3.connect(store, timeout=5) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def _kill_and_resume(env, tmp_path, argv_tail, kills, kill_group, seed):
    """Start the sweep ``kills`` times, SIGKILL it at a random moment each time, then run it to the
    end; check the store after each kill and at the end."""
    config = tmp_path / "sweep.toml"
    config.write_text(f"xs = {list(range(N_JOBS))}\nsleep = 0.15\n")
    run_dir = tmp_path / "run"
    store = run_dir / "results.sqlite"
    argv = [sys.executable, "-m", "symlab.cli", "run", "toy", "-c", str(config), "-o", str(run_dir)]
    argv += ["--quiet", *argv_tail]
    rng = random.Random(seed)
    counts = []
    for i in range(kills):
        process = subprocess.Popen(
            argv, env=env, cwd=tmp_path, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        start, deadline = time.monotonic(), time.monotonic() + 120
        if i % 2 == 0:  # a random time after the start
            moment = rng.uniform(0.2, 4.0)
            while time.monotonic() - start < moment and process.poll() is None:
                time.sleep(0.02)
        else:  # once a random number of further rows is stored
            target = min(N_JOBS, _stored(store) + rng.randint(1, 6))
            while _stored(store) < target and process.poll() is None:
                assert time.monotonic() < deadline, "the sweep made no progress"
                time.sleep(0.02)
        members = _sweep_processes(process.pid)
        if kill_group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()  # the CLI alone
        process.wait(timeout=60)
        gone_by = time.monotonic() + 30
        while _alive(members) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert _alive(members) == set(), f"kill {i}: processes outlived the sweep"
        if store.exists():
            assert _integrity(store) == "ok"
        counts.append(_stored(store))
    assert counts == sorted(counts)  # a kill never loses a stored row

    final = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert _integrity(store) == "ok"
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT key, params, result FROM results").fetchall()
        n_failed = db.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
    assert len(rows) == len({key for key, _, _ in rows}) == N_JOBS  # one row per job
    assert sorted(json.loads(params)["x"] for _, params, _ in rows) == list(range(N_JOBS))
    for _, params, result in rows:
        assert json.loads(result)["y"] == json.loads(params)["x"] ** 2
    assert n_failed == 0
    return counts


def test_ten_sigkills_of_a_local_sweep_at_random_moments_lose_and_leak_nothing(toy_env, tmp_path):
    counts = _kill_and_resume(
        toy_env, tmp_path, ["--workers", "2"], kills=10, kill_group=False, seed=2026
    )
    assert any(0 < n < N_JOBS for n in counts), "some kills landed mid-sweep"


def test_sigkills_of_a_ray_sweep_lose_and_leak_nothing(toy_env, tmp_path):
    pytest.importorskip("ray")
    counts = _kill_and_resume(
        toy_env,
        tmp_path,
        ["--executor", "ray", "--workers", "2"],
        kills=2,
        kill_group=True,
        seed=7,
    )
    assert any(0 < n < N_JOBS for n in counts), "some kills landed mid-sweep"
