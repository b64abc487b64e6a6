"""Run provenance: sessions recorded by real runs of the toy study in real SQLite stores, the
migration of a store written before sessions existed, and what ``symlab show`` / the report say."""

from __future__ import annotations

import json
import os
import platform
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy
import pandas as pd
import pytest
import torch
from cli_in_process import cli

from symlab.engine import InputError, Store, expand_jobs, job_key, report_study, run_study
from symlab.engine.provenance import ENVIRONMENT_FIELDS, environment, probe_software, provenance
from symlab.engine.store import STORE_NAME

# the schema of results.sqlite before sessions existed (symlab 0.1.0 as of 2026-11-22)
OLD_SCHEMA = """
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


def stored_sessions(run_dir: Path) -> dict[str, str | None]:
    """key -> session, read with sqlite3 directly (not through the Store)."""
    db = sqlite3.connect(run_dir / STORE_NAME)
    try:
        return dict(db.execute("SELECT key, session FROM results"))
    finally:
        db.close()


def test_a_fresh_run_records_one_session_and_every_row_names_it(toy, tmp_path):
    run = run_study(toy, {"xs": [0, 1, 2], "seeds": [0, 1]}, tmp_path / "r")
    with Store(tmp_path / "r") as store:
        sessions = store.sessions()
        timed = store.rows(timing=True)
    assert len(sessions) == 1
    session = sessions.iloc[0]
    assert set(stored_sessions(tmp_path / "r").values()) == {session["session"]}
    assert timed["session"].tolist() == [session["session"]] * 6  # export's session column
    assert session["rows"] == 6 and run.n_new == 6
    assert session["torch"] == torch.__version__ and session["numpy"] == numpy.__version__
    assert session["python"].endswith(platform.python_version())
    assert (session["executor"], session["workers"], session["threads"]) == ("LocalExecutor", 1, 1)
    assert session["machine"] == platform.machine() and session["device"] is None
    assert session["blas"].startswith("torch ") and "(LAPACK " in session["blas"]
    assert torch.backends.mkl.is_available() == ("mkl" in session["blas"].split(" + ")[0].lower())
    assert session["finished_at"] >= session["started_at"]
    # a run with nothing left to do records no session
    again = run_study(toy, {"xs": [0, 1, 2], "seeds": [0, 1]}, tmp_path / "r")
    assert again.n_new == 0
    with Store(tmp_path / "r") as store:
        assert len(store.sessions()) == 1


def test_no_hostname_user_or_path_in_the_sessions_table(toy, tmp_path):
    run_study(toy, {"xs": [0, 1]}, tmp_path / "r")
    db = sqlite3.connect(tmp_path / "r" / STORE_NAME)
    values = [str(v) for row in db.execute("SELECT * FROM sessions") for v in row if v is not None]
    db.close()
    forbidden = {socket.gethostname()}
    for folder in (Path.cwd(), tmp_path, Path.home()):
        forbidden |= {part for part in folder.parts if len(part) >= 3 and part != os.sep}
    assert len(values) >= 10
    for value in values:
        assert os.sep not in value, value
        assert not [part for part in forbidden if part in value], value


def test_a_resumed_run_records_a_second_session_for_its_new_rows_only(toy, tmp_path):
    run_dir = tmp_path / "r"
    first = run_study(toy, {"xs": [0, 1]}, run_dir)
    before = stored_sessions(run_dir)
    second = run_study(toy, {"xs": [0, 1, 2, 3]}, run_dir, workers=2)
    after = stored_sessions(run_dir)
    assert (first.n_new, second.n_done_before, second.n_new) == (2, 2, 2)
    with Store(run_dir) as store:
        sessions = store.sessions()
        code = store.meta()["code"]
        origin = provenance(
            store, [j.key for j in expand_jobs(toy, store_spec(toy, run_dir), code)]
        )
    assert sessions["rows"].tolist() == [2, 2] and sessions["workers"].tolist() == [1, 2]
    old, new = sessions["session"].tolist()
    assert set(before.values()) == {old}
    assert {k: s for k, s in after.items() if k in before} == before  # old rows keep theirs
    assert sorted(s for k, s in after.items() if k not in before) == [new, new]
    assert origin.line().startswith("computed in 2 sessions: ")
    assert origin.line().endswith("rows: 4 / 0 unknown")
    assert origin.warning() is None  # same software and threads per worker


def store_spec(toy, run_dir: Path):
    from symlab.engine import open_run

    _, spec, store = open_run(run_dir)
    store.close()
    return spec


def test_an_interrupted_run_ends_its_session_with_the_rows_it_stored(toy, tmp_path):
    def stop(done: int, total: int) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(toy, {"xs": [0, 1, 2, 3]}, tmp_path / "r", on_progress=stop)
    with Store(tmp_path / "r") as store:
        sessions = store.sessions()
    assert sessions["rows"].tolist() == [2] and sessions["finished_at"].notna().all()


def old_store(run_dir: Path, toy, xs: list[int]) -> list[str]:
    """A results.sqlite built with the schema before sessions, holding the rows of ``xs``."""
    run_dir.mkdir()
    db = sqlite3.connect(run_dir / STORE_NAME)
    db.executescript(OLD_SCHEMA)
    keys = []
    for x in xs:
        params = {"x": x, "seed": 0, "sleep": 0.0, "fail": False}
        key = job_key("toy", "1", params)
        result = {"y": x * x, "pid": 1, "pair": [x, x * x], "half": x / 2}
        db.execute(
            "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key, "toy", "1", json.dumps(params), json.dumps(result), 0.1, "then", "old"),
        )
        keys.append(key)
    db.execute("INSERT INTO meta VALUES ('study', 'toy')")
    db.execute("INSERT INTO meta VALUES ('spec', ?)", (f"xs = {xs}\n",))
    db.commit()
    db.close()
    return keys


def test_an_old_store_reads_as_unknown_resumes_and_is_migrated(toy, tmp_path, capsys):
    run_dir = tmp_path / "r"
    old_keys = old_store(run_dir, toy, [0, 1])
    # read-only: rows and sessions work and the file's schema is left as it is
    with Store(run_dir, create=False) as store:
        assert store.rows(timing=True)["session"].tolist() == [None, None]
        assert len(store.sessions()) == 0 and store.session_counts() == {None: 2}
    code, out, _ = cli(capsys, "show", str(run_dir))
    assert code == 0 and "computed in no recorded session; rows: 2 / 2 unknown" in out
    report_study(run_dir)
    assert (
        "computed in no recorded session; rows: 2 / 2 unknown"
        in (run_dir / "verdict.md").read_text()
    )
    db = sqlite3.connect(run_dir / STORE_NAME)
    assert [r[1] for r in db.execute("PRAGMA table_info(results)")][-1] == "host"
    db.close()

    # its code is unknown: a plain resume refuses, --new-code computes beside the old rows
    with pytest.raises(InputError, match="by a symlab that did not record its code; pass --new"):
        run_study(toy, {"xs": [0, 1, 2]}, run_dir)
    run = run_study(toy, {"xs": [0, 1, 2]}, run_dir, new_code=True)
    assert (run.n_done_before, run.n_new) == (0, 3)
    sessions = stored_sessions(run_dir)
    assert [sessions[k] for k in old_keys] == [None, None]
    with Store(run_dir) as store:
        (new,) = store.sessions()["session"].tolist()
        assert store.session_counts() == {None: 2, new: 3}
    verdict = (run_dir / "verdict.md").read_text()
    assert "- provenance: computed in 1 session: " in verdict
    assert "rows: 3 / 0 unknown" in verdict and "warning" not in verdict
    code, out, _ = cli(capsys, "export", str(run_dir), "-o", str(tmp_path / "x.csv"))
    table = pd.read_csv(tmp_path / "x.csv")
    columns = ["seconds", "finished_at", "session", "code"]
    assert code == 0 and table.columns[-4:].tolist() == columns
    # show, report and export keep the new code's rows apart from the old ones
    assert len(table) == 3 and (table["session"] == new).all() and table["code"].nunique() == 1
    with Store(run_dir) as store:
        assert len(store) == 5


def test_mixed_environments_are_warned_about(toy, tmp_path, capsys):
    run_dir = tmp_path / "r"
    run_study(toy, {"xs": [0, 1]}, run_dir)
    other = {**environment(), "torch": "2.12.0+cpu", "threads": 4}
    with Store(run_dir) as store:
        elsewhere, code = store.begin_session(other), store.meta()["code"]
        for x in (2, 3):  # rows computed (honestly, y = x**2) "on another machine"
            params = {"x": x, "seed": 0, "sleep": 0.0, "fail": False}
            result = {"y": x * x, "pid": 1, "pair": [x, x * x], "half": x / 2}
            key = job_key("toy", "1", params, code)
            store.add(key, "toy", "1", params, result, session=elsewhere, code=code)
        store.end_session(elsewhere)
    run = run_study(toy, {"xs": [0, 1, 2, 3]}, run_dir)
    assert run.n_new == 0  # nothing left to run: no third session
    verdict = (run_dir / "verdict.md").read_text()
    assert "- provenance: computed in 2 sessions: " in verdict
    assert f"torch {torch.__version__} | 2.12.0+cpu" in verdict
    warning = next(line for line in verdict.splitlines() if line.startswith("- warning: "))
    assert f"torch {torch.__version__} vs 2.12.0+cpu; threads 1 vs 4" in warning
    assert warning.count(". ") == 0 and warning.endswith(".")  # one sentence
    page = (run_dir / "report.html").read_text()
    assert "<h2>Provenance</h2>" in page and elsewhere in page and "Warning:" in page
    code, out, err = cli(capsys, "show", str(run_dir))
    assert code == 0 and "rows: 4 / 0 unknown" in out
    assert "warning: these rows were computed in mixed environments" in err
    assert "2.12.0+cpu" in " ".join(err.split())
    report_study(run_dir)  # rebuilding the report keeps the warning
    assert "- warning: " in (run_dir / "verdict.md").read_text()


def test_begin_session_refuses_unknown_fields(tmp_path):
    with Store(tmp_path) as store, pytest.raises(InputError, match="environment: expected"):
        store.begin_session({"torch": "2.13.0", "hostname": "x"})
    assert set(environment()) == set(ENVIRONMENT_FIELDS)


def test_session_ids_never_read_back_as_numbers(tmp_path):
    """A random all-digit id (about 1 in 300 for 12 hex digits) came back from a CSV export as
    a float; ids start with a letter."""
    import re

    with Store(tmp_path / "run") as store:
        ids = [store.begin_session({}) for _ in range(400)]
    assert len(set(ids)) == 400 and all(re.fullmatch(r"s[0-9a-f]{12}", i) for i in ids)
    pd.DataFrame({"session": ids}).to_csv(tmp_path / "ids.csv", index=False)
    assert pd.read_csv(tmp_path / "ids.csv")["session"].tolist() == ids


def test_a_process_without_torch_records_the_same_environment_as_one_with_it(tmp_path):
    """The engine does not import torch for provenance (a toy sweep stays small): a process
    without torch asks a child process, which reports what torch's importer reads itself."""
    code = (
        "import json, sys\n"
        "from symlab.engine.provenance import software_environment\n"
        "values = software_environment()\n"
        "print(json.dumps({'torch_imported': 'torch' in sys.modules, 'values': values}))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path.cwd()), *sys.path]))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["torch_imported"] is False
    assert child["values"] == probe_software()
    assert child["values"]["torch"].startswith(torch.__version__)
