"""Reading a valid store on read-only media: ``show``, ``export`` and ``report --out`` work on a
real read-only folder (``chmod -R a-w``, or as root a read-only bind mount), write nothing
there, and read every row, also the rows a killed run left in its ``-wal`` file when the
``-shm`` file is gone (tests/bad_input_support.py says which mechanism runs)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from bad_input_support import (
    NO_READ_ONLY,
    READ_ONLY,
    cli_commands,
    run_read_only,
    snapshot,
    split_results,
)

from symlab.engine.store import Store

pytestmark = pytest.mark.skipif(READ_ONLY is None, reason=NO_READ_ONLY)


@pytest.fixture()
def toy_run(toy, tmp_path) -> Path:
    from symlab.engine import load_spec, run_study

    folder = tmp_path / "ro" / "run"
    run_study(toy, load_spec(toy, preset="paper"), folder)
    assert not (folder / "results.sqlite-wal").exists()  # closed cleanly: no WAL, no -shm
    return folder


def test_show_export_report_on_a_read_only_run_directory(toy_run, tmp_path):
    before = snapshot(toy_run.parent)
    commands = cli_commands(
        ["show", "ro/run"],
        ["export", "ro/run", "-o", "out/rows.csv"],
        ["export", "ro/run", "-o", "out/rows.parquet"],
        ["report", "ro/run", "--out", "out/report"],
        ["report", "ro/run"],
    )
    ((code, out, err),) = run_read_only(toy_run.parent, [commands], tmp_path)
    assert code == 0, err
    results = split_results(out, err)
    assert [r[0] for r in results] == [0, 0, 0, 0, 2], results
    show, csv, parquet, report, refused = results
    assert "24 of 24 jobs of the stored spec done" in show[1]
    assert "exported 24 rows" in csv[1] and "exported 24 rows" in parquet[1]
    assert "'ro/run' is read-only; pass --out" in refused[2]
    rows = pd.read_csv(tmp_path / "out" / "rows.csv")
    assert len(rows) == 24 and len(pd.read_parquet(tmp_path / "out" / "rows.parquet")) == 24
    assert "The toy study stored 24 rows" in (tmp_path / "out/report/report.html").read_text()
    assert sorted(p.name for p in (tmp_path / "out/report/figures").iterdir())
    assert snapshot(toy_run.parent) == before  # not a byte written, no -wal or -shm created


def test_rows_left_in_the_wal_are_read_when_the_shm_is_gone(tmp_path):
    """A run killed on media that then became read-only: rows in -wal, no -shm."""
    live = tmp_path / "live"
    store = Store(live)
    store.set_meta(study="toy", spec="xs = [1]\n")
    for i in range(5):
        store.add(f"k{i}", "toy", "1", {"x": i}, {"y": i * i})
    frozen = tmp_path / "ro" / "run"
    frozen.mkdir(parents=True)
    for name in ("results.sqlite", "results.sqlite-wal"):  # as a SIGKILL leaves them
        shutil.copyfile(live / name, frozen / name)
    store.close()
    assert (frozen / "results.sqlite-wal").stat().st_size > 0
    before = snapshot(frozen.parent)
    script = (
        "from symlab.engine.store import Store\n"
        "s = Store('ro/run', create=False)\n"
        "print(sorted(s.keys()), s.meta()['study'])\n"
        "s.close()\n"
    )
    ((code, out, err),) = run_read_only(frozen.parent, [[sys.executable, "-c", script]], tmp_path)
    assert code == 0, err
    assert out.strip() == "['k0', 'k1', 'k2', 'k3', 'k4'] toy"
    assert snapshot(frozen.parent) == before
