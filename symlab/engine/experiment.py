"""What a study is, for the engine: a spec model, a job expander, a job, a summary and figures.

A study module in ``symlab/experiments/`` builds one :class:`Experiment` and calls
:func:`register` at import time. The engine never imports torch-specific code itself; it calls
these functions:

``spec_model``
    a pydantic model (``extra="forbid"``) whose fields are the TOML keys of a config.
``expand(spec) -> list[dict]``
    one dict of JSON-serialisable scalars per job (include the seed). The job key is a hash of
    (experiment name, ``version``, params), so re-running a spec runs only missing jobs. The
    engine reads it lazily: a generator (``yield`` inside ``itertools.product``) keeps a grid
    of any size out of memory.
``run_job(params) -> dict``
    a pure function of its params: returns a flat row of scalars (and small JSON-serialisable
    lists/dicts). Must be a module-level function (it is sent to worker processes). Never prints.
``summarize(rows, spec) -> Summary``
    rows is a DataFrame with one row per job: the params' columns, then the result's columns.
``plot(rows, spec, out_dir) -> list[Path]``
    writes figures (PNG + SVG) into ``out_dir`` and returns their paths.
``count_jobs(spec) -> int`` (optional)
    ``len(expand(spec))`` from the grid sizes, without building the jobs: the progress total
    without a pass over the expansion (without it the engine counts the expansion, keeping
    nothing), and ``symlab run`` refuses a grid over the job limit before expanding it
    (:mod:`symlab.engine.job_limit`; without it, the product of the spec's list lengths and its
    ``seeds``).

Presets are TOML files ``<preset>.toml`` in ``config_dir`` (default: the package folder
``symlab/configs/<name>/``).

Studies of your own: set ``SYMLAB_EXPERIMENTS="pkg.mod,other.mod"``; :func:`get_experiment` and
:func:`list_experiments` import those modules (which call :func:`register`) before looking up a
study. The modules must be importable (installed, on ``PYTHONPATH``, or in the current directory).
Example::

    SYMLAB_EXPERIMENTS=my_study symlab run my-study --config my_study.toml
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from symlab.engine.errors import InputError, StudyNotFoundError

USER_MODULES_ENV = "SYMLAB_EXPERIMENTS"


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
    expand: Callable[[BaseModel], Iterable[dict[str, Any]]]
    run_job: Callable[[dict[str, Any]], dict[str, Any]]
    summarize: Callable[[pd.DataFrame, BaseModel], Summary]
    plot: Callable[[pd.DataFrame, BaseModel, Path], list[Path]]
    version: str = "1"
    config_dir: Path | None = None  # folder of <preset>.toml files; None: symlab/configs/<name>
    # len(expand(spec)) without expanding; None: the product of the spec's list lengths and
    # its ``seeds`` count (symlab.engine.job_limit)
    count_jobs: Callable[[BaseModel], int] | None = None


_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry under its name (re-registering replaces it)."""
    _REGISTRY[experiment.name] = experiment
    return experiment


def _load_builtin() -> None:
    """Import the built-in studies (once); a study registered before keeps its entry."""
    if "symlab.experiments" in sys.modules:
        return
    registered = dict(_REGISTRY)
    importlib.import_module("symlab.experiments")  # registers the built-in studies
    _REGISTRY.update(registered)


def _load_user_modules() -> None:
    """Import the modules named in ``$SYMLAB_EXPERIMENTS`` (comma-separated) so they register."""
    names = [n.strip() for n in os.environ.get(USER_MODULES_ENV, "").split(",") if n.strip()]
    if names and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # lowest priority: a user's study file in the current dir
    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise InputError(
                f"{USER_MODULES_ENV}: could not import module {name!r} ({error})."
            ) from error


def _load_all() -> None:
    _load_user_modules()
    _load_builtin()


def get_experiment(name: str) -> Experiment:
    """The registered study called ``name``; StudyNotFoundError (a ValueError) otherwise.

    Studies from ``$SYMLAB_EXPERIMENTS`` are looked up first, so running one of them does not
    import the built-in studies (and their torch code); a user's study of the same name as a
    built-in one wins.
    """
    _load_user_modules()
    if name not in _REGISTRY:
        _load_builtin()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise StudyNotFoundError(
            f"study {name!r}: expected one of {known} "
            f"(a study of your own needs {USER_MODULES_ENV}=your.module)."
        )
    return _REGISTRY[name]


def list_experiments() -> list[Experiment]:
    """All registered studies (built-in and from ``$SYMLAB_EXPERIMENTS``), sorted by name."""
    _load_all()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
