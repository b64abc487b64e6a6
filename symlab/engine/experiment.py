"""What a study is, for the engine: a spec model, a job expander, a job, a summary and figures.

A study module in ``symlab/experiments/`` builds one :class:`Experiment` and calls
:func:`register` at import time. The engine never imports torch-specific code itself; it calls
these functions:

``spec_model``
    a pydantic model (``extra="forbid"``) whose fields are the TOML keys of a config.
``expand(spec) -> list[dict]``
    one dict of JSON-serialisable scalars per job (include the seed). The job key is a hash of
    (experiment name, ``version``, params), so re-running a spec runs only missing jobs.
``run_job(params) -> dict``
    a pure function of its params: returns a flat row of scalars (and small JSON-serialisable
    lists/dicts). Must be a module-level function (it is sent to worker processes). Never prints.
``summarize(rows, spec) -> Summary``
    rows is a DataFrame with one row per job: the params' columns, then the result's columns.
``plot(rows, spec, out_dir) -> list[Path]``
    writes figures (PNG + SVG) into ``out_dir`` and returns their paths.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel


@dataclass(frozen=True)
class Summary:
    """What a study concludes: a tidy table (one row per cell) and a one-paragraph verdict."""

    table: pd.DataFrame
    verdict: str
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    """A registered study (see the module docstring for each function's contract)."""

    name: str
    description: str
    spec_model: type[BaseModel]
    expand: Callable[[BaseModel], list[dict[str, Any]]]
    run_job: Callable[[dict[str, Any]], dict[str, Any]]
    summarize: Callable[[pd.DataFrame, BaseModel], Summary]
    plot: Callable[[pd.DataFrame, BaseModel, Path], list[Path]]
    version: str = "1"


_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry under its name (re-registering replaces it)."""
    _REGISTRY[experiment.name] = experiment
    return experiment


def _load_builtin() -> None:
    import symlab.experiments  # noqa: F401  (registers the built-in studies)


def get_experiment(name: str) -> Experiment:
    """The registered study called ``name``; ValueError naming the known studies otherwise."""
    _load_builtin()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ValueError(f"study: expected one of {known}, got {name!r}")
    return _REGISTRY[name]


def list_experiments() -> list[Experiment]:
    """All registered studies, sorted by name."""
    _load_builtin()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
