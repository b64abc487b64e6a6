"""Nothing written names the machine, the user or a folder of this machine.

A small sweep with one failing job runs in a real ``symlab`` process under a marker hostname
(``unshare --uts`` where allowed: root, or a user namespace) and with HOME and USER set to
markers; then the bytes of the SQLite store (with its WAL), the CSV and parquet exports, the
report files and the figures are searched for the marker and the real hostname, the marker and
the real home folder and user name, the repository's and the run's absolute paths.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import subprocess
from pathlib import Path

from bad_input_support import REPO, cli_commands, split_results, toy_env

MARKER_HOST = "markerhost-e12b7q"
MARKER_USER = "markeruser-e12b7q"


def _hostname_command(command: list[str]) -> tuple[list[str], bool]:
    """``command`` under the marker hostname when a UTS namespace can be made."""
    script = f"hostname {MARKER_HOST} && exec {shlex.join(command)}"
    for prefix in (["unshare", "--uts"], ["unshare", "--user", "--map-root-user", "--uts"]):
        probe = subprocess.run([*prefix, "sh", "-c", f"hostname {MARKER_HOST}"],
                               capture_output=True)  # fmt: skip
        if probe.returncode == 0:
            return [*prefix, "sh", "-c", script], True
    return command, False


def _written_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_store_exports_and_report_name_no_host_user_or_path(tmp_path):
    home = tmp_path / f"home-{MARKER_USER}"
    home.mkdir()
    (tmp_path / "c.toml").write_text("xs = [0, 1, 2]\nseeds = [0, 1]\nfail_on = [1]\n")
    commands = cli_commands(
        ["run", "toy", "-c", "c.toml", "-o", "run", "-q"],
        ["export", "run", "-o", "run/rows.csv"],
        ["export", "run", "-o", "run/rows.parquet"],
        ["report", "run"],
        ["show", "run", "--failures"],
    )
    command, renamed = _hostname_command(commands)
    env = toy_env(HOME=str(home), USER=MARKER_USER, LOGNAME=MARKER_USER)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    codes = [r[0] for r in split_results(done.stdout, done.stderr)]
    assert codes == [1, 0, 0, 0, 0], done.stderr  # run: 2 of 6 jobs failed
    shown = split_results(done.stdout, done.stderr)[4][1]
    assert "toy failure at x=1" in shown and 'File "toy_study.py"' in shown  # a portable frame

    forbidden = {
        "marker home": str(home),
        "marker user": MARKER_USER,
        "repository path": str(REPO),
        "run path": str(tmp_path),
        "real home": os.path.expanduser("~") if len(os.path.expanduser("~")) > 1 else None,
        "real user": getpass.getuser() if len(getpass.getuser()) >= 5 else None,
        "real hostname": socket.gethostname() if len(socket.gethostname()) >= 6 else None,
        "marker hostname": MARKER_HOST if renamed else None,
    }
    files = _written_files(tmp_path / "run")
    names = {p.name for p in files}
    assert {"results.sqlite", "rows.csv", "rows.parquet", "report.html", "verdict.md"} <= names
    leaks = []
    for path in files:
        data = path.read_bytes()
        for what, text in forbidden.items():
            if text and text.encode() in data:
                leaks.append(f"{path.relative_to(tmp_path)} holds the {what}")
    assert not leaks, leaks
    if not renamed:
        print("no UTS namespace here: searched for the real hostname only")


def _open_missing(params):
    return open(params["path"], encoding="utf-8")  # noqa: SIM115 - raises before a handle exists


def test_failure_messages_name_no_home_or_python_path(tmp_path, monkeypatch):
    """An error message that names a file under the home folder or a ``sys.path`` entry is
    stored with "~" and "<python-path>" in their place (the message, not only the frames)."""
    from symlab.engine.executors import call_job

    home = tmp_path / f"home-{MARKER_USER}"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    outcome = call_job(_open_missing, {"path": str(home / "data" / "x.npy")})
    assert outcome.error_type == "FileNotFoundError"
    assert "~/data/x.npy" in outcome.message and MARKER_USER not in outcome.message
    assert MARKER_USER not in outcome.traceback
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    outcome = call_job(_open_missing, {"path": str(tmp_path / "lib" / "pkg" / "y.toml")})
    assert "<python-path>/pkg/y.toml" in outcome.message and str(tmp_path) not in outcome.message
