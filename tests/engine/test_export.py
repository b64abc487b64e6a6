"""Export keeps types: a real study's time series are parquet list columns of floats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from cli_in_process import cli

from symlab.engine import run_study
from symlab.engine.store import Store

SERIES = ("measured", "predicted")


def test_parquet_export_of_a_real_study_keeps_series_and_scalar_types(tmp_path, capsys):
    spec = {"width": 256, "dim": 4, "n_train": 6, "iterations": 12, "seeds": 1}
    run_dir = tmp_path / "run"
    run_study("ntk-optimizers", spec, run_dir)
    target = tmp_path / "results.parquet"
    code, out, _ = cli(capsys, "export", str(run_dir), "--format", "parquet", "-o", str(target))
    assert code == 0 and "exported 3 rows" in out  # one job per optimizer
    back = pd.read_parquet(target)
    with Store(run_dir, create=False) as store:
        assert set(back["key"]) == store.keys()
        expected = store.rows(back["key"], timing=True)  # in the exported (spec's) order
    assert back.columns.tolist() == expected.columns.tolist()
    for name in SERIES:
        for cell, stored in zip(back[name], expected[name], strict=True):
            assert isinstance(cell, np.ndarray) and cell.dtype == np.float64
            assert cell.tolist() == stored  # bit for bit: parquet doubles hold JSON's floats
    scalars = [c for c in expected.columns if c not in SERIES]
    for name in scalars:
        assert back[name].dtype == expected[name].dtype, name
    pd.testing.assert_frame_equal(back[scalars], expected[scalars])

    csv = tmp_path / "results.csv"  # CSV keeps the series as JSON text
    code, _, _ = cli(capsys, "export", str(run_dir), "-o", str(csv))
    assert code == 0
    assert [json.loads(c) for c in pd.read_csv(csv)["measured"]] == expected["measured"].tolist()
