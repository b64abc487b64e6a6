"""Result cells as files hold them: JSON text, or typed list columns for parquet.

A study's result row holds scalars and small JSON-serialisable lists and dicts (e.g. a loss
curve). CSV and HTML hold the lists and dicts as compact JSON text; parquet keeps every column
of lists that Arrow can type (list<double>, list<list<int64>>, ...) as a list column, so a
time series reads back as an array of numbers, not a string to parse.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd


def to_json(value: Any, *, sort_keys: bool = True) -> str:
    """Compact JSON text, canonical (sorted keys) by default; NaN and infinities are kept."""
    return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"))


def flatten_cells(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with list/dict cells replaced by their JSON text (for CSV and HTML)."""
    table = table.copy()
    for column in table.columns:
        if table[column].map(lambda v: isinstance(v, list | dict | tuple)).any():
            table[column] = table[column].map(
                lambda v: to_json(v) if isinstance(v, list | dict | tuple) else v
            )
    return table


def list_columns(table: pd.DataFrame) -> dict[str, pd.Series]:
    """The columns of ``table`` whose cells are all lists (or missing) of one type Arrow can give,
    e.g. list<double> or list<list<int64>>: name -> the cells with tuples made lists. Columns that
    mix lists with other values, or kinds Arrow cannot unify in one list type, are left out."""
    import pyarrow as pa

    found = {}
    for column in table.columns:
        cells = table[column]
        if cells.dtype != object or not cells.map(lambda v: isinstance(v, list | tuple)).any():
            continue
        if not cells.map(lambda v: _missing(v) or isinstance(v, list | tuple)).all():
            continue
        values = [None if _missing(v) else _as_lists(v) for v in cells]
        try:
            pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            continue
        found[column] = pd.Series(values, index=table.index, dtype=object)
    return found


def parquet_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` ready for ``to_parquet``: typed list columns kept as lists; every other column
    holding a list or dict is JSON text in all its cells (scalars too: a parquet column has one
    type), missing cells (None, or NaN where a row lacks the field) staying missing."""
    lists = list_columns(table)
    table = table.copy()
    for column in table.columns:
        if column in lists:
            table[column] = lists[column]
        elif table[column].map(lambda v: isinstance(v, list | dict | tuple)).any():
            table[column] = table[column].map(lambda v: None if _missing(v) else to_json(v))
    return table


def _as_lists(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_as_lists(v) for v in value]
    return value


def _missing(value: Any) -> bool:
    """None, or the NaN pandas puts where a row lacks a field."""
    return value is None or (isinstance(value, float) and math.isnan(value))
