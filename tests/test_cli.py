"""The symlab CLI: bad input -> one red sentence and exit 2; run, show, export, report; resume
after a real SIGKILL of the whole process group.

In-process tests call ``symlab.cli.main(argv)``; the subprocess tests run the real
``python -m symlab.cli`` with the toy study registered through ``SYMLAB_EXPERIMENTS``.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_in_process import cli

ENGINE_TESTS = Path(__file__).resolve().parent / "engine"


@pytest.fixture(scope="module")
def toy():
    if str(ENGINE_TESTS) not in sys.path:
        sys.path.insert(0, str(ENGINE_TESTS))
    return importlib.import_module("toy_study").TOY


@pytest.fixture()
def toy_env():
    env = dict(os.environ)
    parts = [str(ENGINE_TESTS), str(ENGINE_TESTS.parent.parent), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["SYMLAB_EXPERIMENTS"] = "toy_study"
    return env


def symlab(env: dict, cwd: Path, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "symlab.cli", *argv]
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "nope"], "study 'nope': expected one of"),
        (["run", "toy", "--preset", "fast"], "preset 'fast': expected one of quick, paper."),
        (["run", "toy", "--config", "missing.toml"], "config: file 'missing.toml' does not exist."),
        (["run", "toy", "--config", "bad.toml"], "'bad.toml' is not valid TOML"),
        (["run", "toy", "--config", "typo.toml"], "config field 'xz' is not a field of toy"),
        (["run", "toy", "-p", "quick", "-c", "bad.toml"], "--preset and --config: expected one"),
        (["run", "toy", "--workers", "0"], "--workers: expected an integer >= 1, got 0."),
        (["run", "toy", "--workers", "two"], "Invalid value for '--workers'"),
        (["run", "toy", "--bogus"], "No such option: --bogus"),
        (["show", "nowhere"], "DIR: 'nowhere' is not a directory."),
        (["show", "empty"], "DIR: 'empty' is not a symlab run directory"),
        (["report", "nowhere"], "DIR: 'nowhere' is not a directory."),
        (["export", "nowhere"], "DIR: 'nowhere' is not a directory."),
        (["export", "empty", "--format", "xlsx"], "--format: expected csv or parquet, got 'xlsx'."),
    ],
)
def test_bad_input_is_one_red_sentence_exit_2_and_writes_nothing(
    toy, capsys, tmp_path, monkeypatch, argv, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text("xs = [1,\n")
    (tmp_path / "typo.toml").write_text("xs = [1]\nxz = 2\n")
    (tmp_path / "empty").mkdir()
    before = listing(tmp_path)
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert message in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith(".")
    assert "Traceback" not in out + err
    assert listing(tmp_path) == before  # nothing written (no runs/ folder either)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run"], "Missing argument 'STUDY' (see symlab run --help)."),
        (["run", "toy", "--bogus"], "(see symlab run --help)."),
        (["export", "x", "--all=3"], "(see symlab export --help)."),
        (["nope"], "No such command 'nope' (see symlab --help)."),
    ],
)
def test_usage_errors_point_at_the_help_of_the_command_typed(toy, capsys, argv, message):
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.strip().endswith(message) and len(err.strip().splitlines()) == 1


def test_real_entry_point_bad_input(toy_env, tmp_path):
    result = symlab(toy_env, tmp_path, "run", "toy", "--preset", "fast")
    assert result.returncode == 2
    assert result.stderr.strip() == "preset 'fast': expected one of quick, paper."
    assert result.stdout == "" and listing(tmp_path) == []


def test_python_dash_m_symlab_is_the_cli(toy_env, tmp_path):
    """``python -m symlab`` runs the same CLI (a node with the interpreter but no script)."""
    result = subprocess.run([sys.executable, "-m", "symlab", "run", "toy", "--preset", "fast"],
                            cwd=tmp_path, env=toy_env, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "preset 'fast': expected one of quick, paper."


def test_unknown_user_module_is_bad_input(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYMLAB_EXPERIMENTS", "no_such_study_module")
    code, _, err = cli(capsys, "run", "toy")
    assert code == 2
    assert "SYMLAB_EXPERIMENTS: could not import module 'no_such_study_module'" in err
    assert listing(tmp_path) == []


# ------------------------------------------------------------------------------ run in process


def test_run_show_export_report_in_process(toy, capsys, tmp_path):
    run_dir = tmp_path / "r"
    code, out, err = cli(capsys, "run", "toy", "--out", str(run_dir))
    assert code == 0, err
    assert f"table:   {run_dir / 'summary.csv'}" in out
    assert f"report:  {run_dir / 'report.html'}" in out
    assert "(2 files)" in out and "The toy study stored 8 rows" in out
    assert "resuming" not in out

    code, out, _ = cli(capsys, "run", "toy", "--preset", "paper", "--out", str(run_dir))
    assert code == 0 and "resuming: 8 of 24 jobs already stored" in out

    code, out, _ = cli(capsys, "show", str(run_dir))
    assert code == 0
    assert "toy in" in out and "24 of 24 jobs of the stored spec done" in out and "mean_y" in out
    assert "The toy study stored 24 rows" in out

    for fmt in ("csv", "parquet"):
        target = tmp_path / f"all.{fmt}"
        code, out, _ = cli(capsys, "export", str(run_dir), "--format", fmt, "-o", str(target))
        assert code == 0 and f"exported 24 rows to {target}" in out
        table = pd.read_csv(target) if fmt == "csv" else pd.read_parquet(target)
        assert len(table) == 24 and (table["y"] == table["x"] ** 2 + table["seed"]).all()
        pairs = [json.loads(p) for p in table["pair"]] if fmt == "csv" else table["pair"]
        assert [list(p) for p in pairs] == [[x, x * x] for x in table["x"]]

    target = tmp_path / "all.xlsx"  # no --format and a suffix that names none: refused
    code, _, err = cli(capsys, "export", str(run_dir), "-o", str(target))
    assert code == 2 and "--output: cannot tell the format from the suffix '.xlsx'" in err
    assert not target.exists()
    code, out, _ = cli(capsys, "export", str(run_dir), "-o", str(tmp_path / "all.pq"))
    assert code == 0 and len(pd.read_parquet(tmp_path / "all.pq")) == 24

    (run_dir / "report.html").unlink()
    code, out, _ = cli(capsys, "report", str(run_dir))
    assert code == 0 and "24 of 24 jobs of the stored spec summarized" in out
    assert '<img src="figures/toy.png"' in (run_dir / "report.html").read_text()

    code, out, _ = cli(capsys, "list")
    assert code == 0 and "toy" in out and "quick, paper" in out


def test_show_and_export_keep_to_the_stored_spec_unless_all(toy, capsys, tmp_path):
    run_dir = tmp_path / "r"
    assert cli(capsys, "run", "toy", "--preset", "paper", "--out", str(run_dir))[0] == 0
    assert cli(capsys, "run", "toy", "--preset", "quick", "--out", str(run_dir))[0] == 0
    code, out, _ = cli(capsys, "show", str(run_dir))
    assert code == 0 and "8 of 8 jobs of the stored spec done" in out
    assert "16 more rows from earlier specs" in out
    code, out, _ = cli(capsys, "export", str(run_dir), "-o", str(tmp_path / "spec.csv"))
    assert code == 0 and len(pd.read_csv(tmp_path / "spec.csv")) == 8
    code, out, _ = cli(capsys, "export", str(run_dir), "--all", "-o", str(tmp_path / "all.csv"))
    assert code == 0 and len(pd.read_csv(tmp_path / "all.csv")) == 24


def test_failed_jobs_exit_1_and_show_failures(toy, capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("xs = [0, 1, 2]\nfail_on = [1]\n")
    code, out, err = cli(capsys, "run", "toy", "-c", str(config), "-o", str(tmp_path / "r"))
    assert code == 1
    assert f"1 of 3 jobs failed; tracebacks: symlab show {tmp_path / 'r'} --failures" in err
    assert "The toy study stored 2 rows" in out  # the sweep went on and was summarized
    code, out, _ = cli(capsys, "show", str(tmp_path / "r"), "--failures")
    assert code == 0 and "RuntimeError: toy failure at x=1" in out and "Traceback" in out


def test_a_study_exception_is_exit_1_with_traceback_only_under_debug(toy, capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('xs = [1]\nmode = "bad-summary"\n')
    code, _, err = cli(capsys, "run", "toy", "-c", str(config), "-o", str(tmp_path / "a"))
    assert code == 1
    assert "ZeroDivisionError: toy summary divides by zero" in err and "--debug" in err
    assert "Traceback" not in err
    argv = ("run", "toy", "-c", str(config), "-o", str(tmp_path / "b"), "--debug")
    code, _, err = cli(capsys, *argv)
    assert code == 1 and "Traceback" in err


# ------------------------------------------------------------------------------ real processes


def stored_count(path: Path) -> int:
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_resume_after_sigkill_of_the_process_group(toy, toy_env, tmp_path):
    from symlab.engine import expand_jobs, spec_from_mapping

    process, argv, run_dir, _ = _start_sweep(toy_env, tmp_path, sleep=0.2, min_stored=3)
    store = run_dir / "results.sqlite"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    n_killed = stored_count(store)
    assert 3 <= n_killed < 20, "the kill must land mid-sweep"

    second = subprocess.run(argv, env=toy_env, cwd=tmp_path, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert f"resuming: {n_killed} of 20 jobs already stored" in second.stdout
    assert f"{20 - n_killed} jobs run, {n_killed} already stored" in second.stdout

    spec = spec_from_mapping(toy, {"xs": list(range(10)), "seeds": [0, 1], "sleep": 0.2})
    with sqlite3.connect(store) as db:
        code = db.execute("SELECT value FROM meta WHERE name = 'code'").fetchone()[0]
    expected = {job.key: job.params for job in expand_jobs(toy, spec, code)}
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT key, params, result FROM results").fetchall()
    assert sorted(key for key, _, _ in rows) == sorted(expected)  # each key exactly once
    for key, params, result in rows:
        params, result = json.loads(params), json.loads(result)
        assert params == expected[key]
        assert result["y"] == params["x"] ** 2 + params["seed"]


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN], ids=["default", "ignored"])
def test_ctrl_c_keeps_the_stored_jobs_and_exits_130(toy_env, tmp_path, inherited):
    """Also when SIGINT is inherited as ignored (a `symlab run ... &` from a script without job
    control): run installs its own handler. The child's disposition is set explicitly, so the
    test does not depend on how pytest itself was started."""
    config = tmp_path / "slow.toml"
    config.write_text("xs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\nsleep = 0.3\n")
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "symlab.cli", "run", "toy", "-c", str(config), "-o", str(run_dir)]
    process = subprocess.Popen(
        argv, env=toy_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, inherited),
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while stored_count(run_dir / "results.sqlite") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == (
        f"interrupted: the finished jobs are stored in {run_dir}; run the same command again "
        "to resume."
    )
    assert "Traceback" not in err and 2 <= stored_count(run_dir / "results.sqlite") < 10


def test_fdim_prints_rank_bound_and_rejects_bad_widths():
    import subprocess
    import sys

    ok = subprocess.run(
        [sys.executable, "-m", "symlab.cli", "fdim", "3,4,1", "--seeds", "2", "--max-points", "500"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "(3, 4, 1)" in ok.stdout and " 17 " in ok.stdout  # bound = 21 - 4 = 17
    bad = subprocess.run(
        [sys.executable, "-m", "symlab.cli", "fdim", "3,x"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "WIDTHS" in bad.stderr and "Traceback" not in bad.stderr
    ignored = subprocess.run(
        [sys.executable, "-m", "symlab.cli", "fdim", "3,4,1", "--init", "pytorch",
         "--bias-std", "0.5"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ignored.returncode == 2 and "--bias-std: applies to --init he only" in ignored.stderr


def test_a_corrupt_store_is_bad_input_not_a_traceback(capsys, tmp_path):
    (tmp_path / "results.sqlite").write_text("not a database")
    code, _, err = cli(capsys, "show", str(tmp_path))
    assert (
        code == 2
        and "is not a SQLite database; expected a symlab" in err
        and "Traceback" not in err
    )


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _start_sweep(toy_env, tmp_path, *, sleep: float, min_stored: int):
    """The toy sweep (20 jobs of ``sleep`` s) on 2 workers in its own process group, once
    ``min_stored`` rows are stored: (process, argv without --workers, run dir, worker PIDs)."""
    config = tmp_path / "sweep.toml"
    config.write_text(f"xs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\nseeds = [0, 1]\nsleep = {sleep}\n")
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "symlab.cli", "run", "toy", "-c", str(config), "-o", str(run_dir)]
    process = subprocess.Popen(
        [*argv, "--workers", "2"],
        env=toy_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the CLI and its workers
    )
    store = run_dir / "results.sqlite"
    deadline = time.monotonic() + 90
    while (
        stored_count(store) < min_stored and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    workers = _children(process.pid) if sys.platform.startswith("linux") else []
    return process, argv, run_dir, workers


def _wait_gone(pids: list[int], seconds: float = 20) -> list[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(pids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_the_workers_like_ctrl_c_and_the_sweep_resumes(toy_env, tmp_path):
    process, argv, run_dir, workers = _start_sweep(toy_env, tmp_path, sleep=0.4, min_stored=2)
    assert len(workers) >= 2, "the pool's worker processes"
    process.send_signal(signal.SIGTERM)  # to the CLI only, not its process group
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted: the finished jobs are stored")
    assert _wait_gone(workers) == []
    n_stored = stored_count(run_dir / "results.sqlite")
    second = subprocess.run(argv, env=toy_env, cwd=tmp_path, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert f"{20 - n_stored} jobs run, {n_stored} already stored" in second.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux")
def test_workers_die_with_a_killed_parent(toy_env, tmp_path):
    """SIGKILL cannot be handled: the workers learn of it from the kernel (PR_SET_PDEATHSIG)."""
    process, _, _, workers = _start_sweep(toy_env, tmp_path, sleep=0.4, min_stored=2)
    assert len(workers) >= 2
    process.kill()  # the CLI only; its workers are not signalled by us
    process.communicate(timeout=30)
    assert _wait_gone(workers) == []


def test_a_second_run_on_a_held_folder_stops_at_once_naming_the_holder(toy_env, tmp_path):
    # 5 s jobs: the holder must outlive a second interpreter's start even on a loaded machine
    process, argv, run_dir, _ = _start_sweep(toy_env, tmp_path, sleep=5.0, min_stored=1)
    try:
        second = subprocess.run(argv, env=toy_env, cwd=tmp_path, capture_output=True, text=True)
        assert second.returncode == 2 and "Traceback" not in second.stderr
        message = second.stderr.strip().splitlines()[-1]
        assert f"is held by a live run (pid {process.pid}, started " in message
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    # the lock died with its holder (none is stale): a third run takes the folder and stores rows
    before = stored_count(run_dir / "results.sqlite")
    third, _, _, _ = _start_sweep(toy_env, tmp_path, sleep=5.0, min_stored=before + 1)
    try:
        assert third.poll() is None or third.returncode == 0, third.stderr.read()
        assert stored_count(run_dir / "results.sqlite") > before
    finally:
        os.killpg(third.pid, signal.SIGKILL)
        third.wait(timeout=30)


def test_nothing_written_names_the_machine_the_user_or_a_folder(toy_env, tmp_path):
    import socket

    home = tmp_path / "marker-home-7f3a"
    home.mkdir()
    env = {**toy_env, "HOME": str(home), "USER": "marker-user-7f3a"}
    config = tmp_path / "fails.toml"
    config.write_text("xs = [0, 1, 2]\nfail_on = [1]\n")
    run_dir = home / "run"
    result = symlab(env, home, "run", "toy", "-c", str(config), "-o", str(run_dir))
    assert result.returncode == 1 and "1 of 3 jobs failed" in result.stderr, result.stderr
    for fmt in ("csv", "parquet"):
        assert (
            symlab(
                env,
                home,
                "export",
                str(run_dir),
                "--format",
                fmt,
                "-o",
                str(run_dir / f"rows.{fmt}"),
            ).returncode
            == 0
        )
    with sqlite3.connect(run_dir / "results.sqlite") as db:
        dump = "\n".join(db.iterdump())
        traceback_text = db.execute("SELECT traceback FROM failures").fetchone()[0]
    assert 'File "' in traceback_text and "toy_study.py" in traceback_text
    repo = str(Path(__file__).resolve().parents[1])
    import re

    import pandas as pd

    files = [p for p in run_dir.rglob("*") if p.is_file() and p.suffix not in (".png", ".parquet")]
    texts = [dump, pd.read_parquet(run_dir / "rows.parquet").to_csv()]
    texts += [p.read_text(encoding="utf-8", errors="replace") for p in files]
    host = re.compile(rf"\b{re.escape(socket.gethostname())}\b")
    for text in texts:
        assert not host.search(text)
        for marker in ("marker-home-7f3a", "marker-user-7f3a", repo):
            assert marker not in text, marker


def test_resuming_after_a_code_edit_refuses_and_new_code_computes_beside(toy_env, tmp_path):
    """A real edit of the study's module: the resume names the module and the ways out;
    --new-code computes the edited code's jobs, and show uses them."""
    module = tmp_path / "code" / "toy_study.py"
    module.parent.mkdir()
    module.write_text((ENGINE_TESTS / "toy_study.py").read_text())
    env = {**toy_env, "PYTHONPATH": os.pathsep.join([str(module.parent), toy_env["PYTHONPATH"]])}
    config = tmp_path / "c.toml"
    config.write_text("xs = [1, 2]\n")
    argv = ("run", "toy", "-c", str(config), "-o", str(tmp_path / "run"))
    assert symlab(env, tmp_path, *argv).returncode == 0
    again = symlab(env, tmp_path, *argv)
    assert again.returncode == 0 and "2 already stored" in again.stdout  # same code: resumes
    module.write_text(module.read_text().replace('"y": x**2 + seed,', '"y": x**2 + seed + 100,'))
    refused = symlab(env, tmp_path, *argv)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    message = refused.stderr.strip().splitlines()[-1]
    assert "were computed by other code (changed since: toy_study)" in message
    assert "--new-code" in message and "choose a new directory" in message
    beside = symlab(env, tmp_path, *argv, "--new-code")
    assert beside.returncode == 0 and "2 jobs run, 0 already stored" in beside.stdout
    with sqlite3.connect(tmp_path / "run" / "results.sqlite") as db:
        ys = sorted(json.loads(r[0])["y"] for r in db.execute("SELECT result FROM results"))
        codes = {r[0] for r in db.execute("SELECT code FROM results")}
    assert ys == [1, 4, 101, 104] and len(codes) == 2
    shown = symlab(env, tmp_path, "export", str(tmp_path / "run"), "-o", str(tmp_path / "x.csv"))
    assert shown.returncode == 0
    import pandas as pd

    assert sorted(pd.read_csv(tmp_path / "x.csv")["y"]) == [101, 104]
