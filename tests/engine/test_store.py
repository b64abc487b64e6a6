"""The SQLite store: WAL, idempotent inserts, tidy rows, failures, csv/parquet export."""

from __future__ import annotations

import json
import math
import sqlite3

import pandas as pd
import pytest

from symlab.engine import InputError, Store
from symlab.engine.store import STORE_NAME


def fill(store: Store) -> None:
    store.add("k2", "toy", "1", {"x": 2, "seed": 0}, {"y": 4.0, "pair": [2, 4]}, seconds=0.5)
    store.add("k1", "toy", "1", {"x": 1, "seed": 0}, {"y": 1.0, "pair": [1, 1]}, seconds=0.25)
    store.add("k3", "toy", "1", {"x": 3, "seed": 1}, {"y": math.nan, "pair": [3, 9]})


def test_schema_wal_and_idempotent_insert(tmp_path):
    with Store(tmp_path / "run") as store:
        assert store.add("k", "toy", "1", {"x": 1}, {"y": 1})
        assert not store.add("k", "toy", "1", {"x": 1}, {"y": 999})  # INSERT OR IGNORE
        assert store.keys() == {"k"} and len(store) == 1
        store.set_meta(study="toy", spec="xs = [1]\n", created="now")
        assert store.meta() == {"study": "toy", "spec": "xs = [1]\n", "created": "now"}
    db = sqlite3.connect(tmp_path / "run" / STORE_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = db.execute("SELECT key, experiment, version, params, result FROM results").fetchall()
    assert rows == [("k", "toy", "1", '{"x":1}', '{"y":1}')]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"results", "failures", "meta", "sessions"}


def test_rows_are_tidy_and_ordered(tmp_path):
    with Store(tmp_path) as store:
        fill(store)
        rows = store.rows()
        assert list(rows.columns) == ["key", "x", "seed", "y", "pair"]
        assert rows["key"].tolist() == ["k1", "k2", "k3"]  # sorted by key without keys
        assert rows["pair"].tolist() == [[1, 1], [2, 4], [3, 9]]
        assert math.isnan(rows["y"].iloc[2])  # NaN survives the JSON round trip
        chosen = store.rows(["k3", "missing", "k1"])
        assert chosen["key"].tolist() == ["k3", "k1"]  # the order asked for, missing skipped
        timed = store.rows(["k2"], timing=True)
        assert timed["seconds"].tolist() == [0.5]
        assert {"finished_at", "session"} <= set(timed.columns) and "host" not in timed.columns
        assert store.rows([]).columns.tolist() == ["key"]


def test_result_field_clashing_with_a_param_is_prefixed(tmp_path):
    with Store(tmp_path) as store:
        store.add("k", "toy", "1", {"x": 1}, {"x": 2, "y": 3})
        row = store.rows().iloc[0]
        assert (row["x"], row["result_x"], row["y"]) == (1, 2, 3)


def test_timing_columns_never_overwrite_a_result_field(tmp_path):
    """A study may return its own ``seconds`` (critical-points does): with timing, the store's
    run time is ``store_seconds`` and the result's value survives."""
    with Store(tmp_path) as store:
        store.add("a", "toy", "1", {"x": 1}, {"seconds": 7.0, "y": 1}, seconds=0.25)
        store.add("b", "toy", "1", {"x": 2}, {"seconds": 9.0, "y": 4}, seconds=0.5)
        timed = store.rows(timing=True)
        assert timed["seconds"].tolist() == [7.0, 9.0]
        assert timed["store_seconds"].tolist() == [0.25, 0.5]
        assert "host" not in timed.columns and "finished_at" in timed.columns
        assert store.job_seconds(["a", "b", "missing"]) == 0.75
        assert store.job_seconds(["b"]) == 0.5
        store.add_failure("c", {"x": 3}, "RuntimeError: boom", "tb")
        assert store.n_failed(["a", "b", "c"]) == 1 and store.n_failed(["a"]) == 0


def test_failures_outstanding_until_the_key_succeeds(tmp_path):
    with Store(tmp_path) as store:
        store.add_failure("a", {"x": 1}, "RuntimeError: first", "tb1")
        store.add_failure("a", {"x": 1}, "RuntimeError: second", "tb2")
        store.add_failure("b", {"x": 2}, "RuntimeError: b", "tb3")
        outstanding = store.failures()
        assert outstanding["key"].tolist() == ["a", "b"]
        assert outstanding["error"].tolist() == ["RuntimeError: second", "RuntimeError: b"]
        store.add("b", "toy", "1", {"x": 2}, {"y": 4})
        assert store.failures()["key"].tolist() == ["a"]
        assert len(store.failures(outstanding=False)) == 3


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_round_trip(tmp_path, fmt):
    with Store(tmp_path / "run") as store:
        fill(store)
        expected = store.rows(timing=True)
        path = store.export(tmp_path / f"out.{fmt}")
        assert path == tmp_path / f"out.{fmt}"
    back = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    assert back.columns.tolist() == expected.columns.tolist()
    assert back["key"].tolist() == expected["key"].tolist()
    assert back["x"].tolist() == expected["x"].tolist()
    assert back["seconds"].tolist()[:2] == [0.25, 0.5]
    y = back["y"].tolist()
    assert y[:2] == [1.0, 4.0] and math.isnan(y[2])
    if fmt == "csv":  # JSON text in CSV, an int64 list column in parquet
        assert [json.loads(p) for p in back["pair"]] == expected["pair"].tolist()
    else:
        assert [p.tolist() for p in back["pair"]] == expected["pair"].tolist()
        assert all(p.dtype == "int64" for p in back["pair"])


def test_parquet_types_list_columns_and_writes_the_rest_as_json(tmp_path):
    """Lists (with None rows, nested, ints and floats mixed) become list columns; dicts and
    columns mixing lists with scalars or with strings stay JSON text."""
    results = [
        {"curve": [1, 2.5], "grid": [[1, 2], [3]], "info": {"a": 1}, "mixed": [1], "odd": [1, "a"]},
        {"curve": None, "grid": [], "info": {"b": [2]}, "mixed": 3.0, "odd": [2]},
        {"y": 1.0},  # fields missing from a row are missing cells
    ]
    with Store(tmp_path / "run") as store:
        for i, result in enumerate(results):
            store.add(f"k{i}", "toy", "1", {"x": i}, result)
        path = store.export(tmp_path / "out.parquet")
    back = pd.read_parquet(path)
    assert back["curve"][0].tolist() == [1.0, 2.5] and back["curve"][1] is None
    assert [g.tolist() for g in back["grid"][0]] == [[1, 2], [3]] and len(back["grid"][1]) == 0
    assert back["grid"][2] is None
    assert back["info"].tolist()[:2] == ['{"a":1}', '{"b":[2]}'] and pd.isna(back["info"][2])
    assert back["mixed"].tolist()[:2] == ["[1]", "3.0"] and pd.isna(back["mixed"][2])
    assert back["odd"].tolist()[:2] == ['[1,"a"]', "[2]"] and pd.isna(back["odd"][2])
    assert back["y"].tolist()[2] == 1.0


def test_export_rejects_unknown_format_and_missing_store(tmp_path):
    with Store(tmp_path / "run") as store, pytest.raises(InputError, match="format"):
        store.export(tmp_path / "x.xlsx", format="xlsx")
    with Store(tmp_path / "run") as store, pytest.raises(InputError, match="suffix '.xlsx'"):
        store.export(tmp_path / "x.xlsx")
    assert not (tmp_path / "x.xlsx").exists()
    with pytest.raises(InputError, match="holds no results"):
        Store(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()
