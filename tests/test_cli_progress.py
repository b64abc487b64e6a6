"""Sweep progress of ``symlab run``: plain lines when stderr is not a terminal, the rich bar on a
terminal, nothing under ``--quiet``.

The line rule (a line when >= 10% of the jobs AND >= ``seconds`` passed since the last one, plus
the first and the 100% line) is checked against an explicit enumeration on a fake clock; the real
thing is checked in subprocesses of ``python -m symlab.cli`` running the toy study of
tests/engine with stderr a pipe, and with stderr a pseudo-terminal.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console

from symlab.cli.progress import (
    NoProgress,
    ProgressBar,
    ProgressLines,
    duration,
    progress_for,
    progress_seconds,
)
from symlab.cli.typer_app import Fail

ENGINE_TESTS = Path(__file__).resolve().parent / "engine"
LINE = re.compile(
    r"^toy: (\d+)/(\d+) jobs \((\d+)%\), (\d+\.\d) (?:s|min|h) elapsed"
    r"(?:, ~\d+\.\d (?:s|min|h) left)?, (\d+) failed$"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def simulate(n_total: int, job_seconds: float, *, n_stored: int = 0, seconds: float = 10.0):
    """Run ProgressLines over a sweep whose jobs each take ``job_seconds`` on a fake clock."""
    clock, stream = FakeClock(), io.StringIO()
    lines = ProgressLines("toy", stream=stream, seconds=seconds, heartbeat=None, clock=clock)
    lines.start(n_stored, n_total)
    for done in range(n_stored + 1, n_total + 1):
        clock.now += job_seconds
        lines.update(done, n_total)
    lines.stop()
    return stream.getvalue().splitlines()


def expected_counts(n_total: int, job_seconds: float, n_stored: int = 0, seconds: float = 10.0):
    """The done-counts that get a line, by enumerating the rule independently (exact integers)."""
    counts, last = [n_stored], n_stored
    for done in range(n_stored + 1, n_total + 1):
        jobs_ok = 10 * (done - last) >= n_total
        time_ok = (done - last) * job_seconds >= seconds - 1e-9
        if done == n_total or (jobs_ok and time_ok):
            counts.append(done)
            last = done
    return counts


def counts_of(lines: list[str]) -> list[int]:
    return [int(LINE.match(line).group(1)) for line in lines]


@pytest.mark.parametrize(
    ("n_total", "job_seconds", "n_stored"),
    [(100, 0.05, 0), (100, 2.0, 0), (100, 0.5, 0), (37, 3.0, 0), (100, 2.0, 40), (7, 20.0, 0)],
)
def test_lines_follow_the_rarer_of_ten_percent_and_ten_seconds(n_total, job_seconds, n_stored):
    lines = simulate(n_total, job_seconds, n_stored=n_stored)
    assert all(LINE.match(line) for line in lines), lines
    assert counts_of(lines) == expected_counts(n_total, job_seconds, n_stored)
    assert lines[-1].startswith(f"toy: {n_total}/{n_total} jobs (100%)")


def test_fast_sweep_prints_start_and_end_only_slow_sweep_every_tenth():
    assert counts_of(simulate(100, 0.05)) == [0, 100]  # 5 s in all: the 10 s rule is rarer
    assert counts_of(simulate(100, 2.0)) == list(range(0, 101, 10))  # 10% is rarer than 10 s
    assert counts_of(simulate(100, 0.5)) == list(range(0, 101, 20))  # 10 s = 20 jobs


def test_line_reports_elapsed_time_left_and_failures():
    clock, stream = FakeClock(), io.StringIO()
    lines = ProgressLines("toy", stream=stream, seconds=0, heartbeat=None, clock=clock)
    lines.start(20, 120)  # resumed: 20 stored, the rate counts only this run's jobs
    clock.now += 30.0
    lines.failed()
    lines.update(50, 120)  # 30 jobs in 30 s -> 70 left at 1 job/s
    clock.now += 170.0
    lines.update(120, 120)
    assert stream.getvalue().splitlines() == [
        "toy: 20/120 jobs (16%), 0.0 s elapsed, 0 failed",
        "toy: 50/120 jobs (41%), 30.0 s elapsed, ~70.0 s left, 1 failed",
        "toy: 120/120 jobs (100%), 3.3 min elapsed, 1 failed",
    ]


def test_percent_is_floored_so_100_means_done():
    clock, stream = FakeClock(), io.StringIO()
    lines = ProgressLines("toy", stream=stream, seconds=0, fraction=0, heartbeat=None, clock=clock)
    lines.start(0, 1000)
    lines.update(999, 1000)
    assert "(99%)" in stream.getvalue().splitlines()[-1]


def test_duration():
    assert [duration(s) for s in (0, 12.34, 99.9, 100, 5999, 6000, 36000)] == [
        "0.0 s", "12.3 s", "99.9 s", "1.7 min", "100.0 min", "1.7 h", "10.0 h",
    ]  # fmt: skip


def test_heartbeat_line_while_no_job_finishes():
    stream = io.StringIO()
    lines = ProgressLines("toy", stream=stream, seconds=1000, heartbeat=0.05)
    lines.start(0, 4)
    deadline = time.monotonic() + 10
    while len(stream.getvalue().splitlines()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    lines.update(4, 4)
    lines.stop()
    text = stream.getvalue().splitlines()
    assert len(text) >= 4 and all(LINE.match(line) for line in text)
    assert counts_of(text)[:-1] == [0] * (len(text) - 1) and counts_of(text)[-1] == 4
    elapsed = [float(LINE.match(line).group(4)) for line in text]
    assert elapsed == sorted(elapsed)
    assert not any(t.name == "symlab-progress" for t in threading.enumerate())


def test_progress_for_picks_bar_lines_or_nothing(monkeypatch):
    monkeypatch.delenv("SYMLAB_PROGRESS_SECONDS", raising=False)
    tty = Console(force_terminal=True, force_jupyter=False)
    pipe = Console(file=io.StringIO(), force_terminal=False, force_jupyter=False)
    assert isinstance(progress_for("toy", tty), ProgressBar)
    assert isinstance(progress_for("toy", pipe), ProgressLines)
    assert isinstance(progress_for("toy", tty, quiet=True), NoProgress)
    assert isinstance(progress_for("toy", pipe, quiet=True), NoProgress)


@pytest.mark.parametrize(("text", "value"), [(None, 10.0), ("", 10.0), ("0", 0.0), (" 2.5 ", 2.5)])
def test_progress_seconds_reads_the_environment(text, value):
    assert progress_seconds({} if text is None else {"SYMLAB_PROGRESS_SECONDS": text}) == value


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "inf"])
def test_bad_progress_seconds_is_bad_input(text):
    with pytest.raises(Fail, match="SYMLAB_PROGRESS_SECONDS: expected a number of seconds") as e:
        progress_seconds({"SYMLAB_PROGRESS_SECONDS": text})
    assert e.value.code == 2


# ------------------------------------------------------------------------------ real processes


@pytest.fixture()
def toy_env():
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    parts = [str(ENGINE_TESTS), str(ENGINE_TESTS.parent.parent), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env["SYMLAB_EXPERIMENTS"] = "toy_study"
    return env


def sweep_config(tmp_path: Path) -> Path:
    config = tmp_path / "sweep.toml"
    config.write_text("xs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\nseeds = [0, 1]\nsleep = 0.03\n"
                      "fail_on = [3]\n")  # fmt: skip
    return config


def symlab_run(env, tmp_path, *extra, stderr=subprocess.PIPE) -> subprocess.CompletedProcess:
    argv = ["run", "toy", "-c", str(sweep_config(tmp_path)), "-o", str(tmp_path / "run"), *extra]
    return subprocess.run(
        [sys.executable, "-m", "symlab.cli", *argv],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=120,
    )  # fmt: skip


def test_piped_stderr_gets_plain_monotone_lines_ending_at_100(toy_env, tmp_path):
    toy_env["SYMLAB_PROGRESS_SECONDS"] = "0"  # only the 10% rule: a line every 2 of 20 jobs
    done = symlab_run(toy_env, tmp_path)
    assert done.returncode == 1  # the two jobs at x = 3 fail
    assert "\x1b" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.startswith("toy: ")]
    assert all(LINE.match(line) for line in lines), done.stderr
    matches = [LINE.match(line).groups() for line in lines]
    counts = [int(m[0]) for m in matches]
    assert counts == list(range(0, 21, 2))  # each job is one update: exactly every 10%
    assert {int(m[1]) for m in matches} == {20}
    assert [int(m[2]) for m in matches] == list(range(0, 101, 10))
    elapsed = [float(m[3]) for m in matches]
    failed = [int(m[4]) for m in matches]
    assert elapsed == sorted(elapsed) and failed == sorted(failed) and failed[-1] == 2
    assert "~" not in lines[0] and "left" not in lines[-1]
    assert "2 of 20 jobs failed" in done.stderr and "━" not in done.stderr


def test_piped_default_interval_and_quiet(toy_env, tmp_path):
    done = symlab_run(toy_env, tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.startswith("toy: ")]
    assert lines[0].startswith("toy: 0/20 jobs (0%)") and lines[-1].startswith("toy: 20/20")
    assert len(lines) <= 11
    again = symlab_run(toy_env, tmp_path, "--quiet")  # 18 stored, the 2 failing jobs re-run
    assert again.returncode == 1 and "resuming: 18 of 20 jobs" in again.stdout
    assert again.stderr.strip().splitlines() == [
        f"2 of 20 jobs failed; tracebacks: symlab show {tmp_path / 'run'} --failures"
    ]


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_gets_the_rich_bar_not_lines(toy_env, tmp_path):
    leader, follower = os.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the other end closed
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        toy_env["SYMLAB_PROGRESS_SECONDS"] = "0"
        done = symlab_run(toy_env, tmp_path, stderr=follower)
    finally:
        os.close(follower)
    reader.join(timeout=10)
    os.close(leader)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert done.returncode == 1
    assert "\x1b[" in text and "━" in text and "20/20" in text  # the bar, drawn with ANSI codes
    assert not any(LINE.match(line.strip()) for line in text.splitlines())
