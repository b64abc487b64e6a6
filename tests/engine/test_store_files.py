"""Store files that are not symlab stores: refused in one sentence and left untouched, except a
0-byte file, which a run takes as an empty store (SQLite's view; a polling reader creates one)."""

from __future__ import annotations

import sqlite3

import pytest

from symlab.engine.errors import InputError
from symlab.engine.store import Store


def test_a_zero_byte_store_is_refused_for_reading_and_empty_for_a_run(tmp_path):
    (tmp_path / "results.sqlite").write_bytes(b"")
    with pytest.raises(InputError, match=r"is empty \(0 bytes\); expected a symlab results store"):
        Store(tmp_path, create=False)
    assert (tmp_path / "results.sqlite").stat().st_size == 0  # reading wrote nothing
    with Store(tmp_path) as store:
        assert store.add("k", "toy", "1", {"x": 1}, {"y": 1})
    with Store(tmp_path, create=False) as store:
        assert store.keys() == {"k"}


@pytest.mark.parametrize("create", [False, True], ids=["read", "write"])
def test_a_foreign_database_is_refused_and_left_as_it_was(tmp_path, create):
    path = tmp_path / "results.sqlite"
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE results (id INTEGER, name TEXT)")  # same name, other columns
    db.close()
    before = path.read_bytes()
    with pytest.raises(InputError, match="of another application .tables: results.; expected"):
        Store(tmp_path, create=create)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite"]


def test_a_file_that_is_not_sqlite_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"PK\x03\x04 a zip archive, say")
    for create in (False, True):
        with pytest.raises(InputError, match="is not a SQLite database; expected a symlab"):
            Store(tmp_path, create=create)
    assert path.read_bytes() == b"PK\x03\x04 a zip archive, say"
