"""Engine test fixtures: the toy study (tests/engine/toy_study.py), registered as ``toy``."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


@pytest.fixture(scope="session")
def toy():
    """The toy Experiment (importable as ``toy_study`` also in spawned worker processes)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    module = importlib.import_module("toy_study")
    from symlab.engine.experiment import register

    return register(module.TOY)


@pytest.fixture()
def toy_env():
    """Environment for a subprocess that runs the real CLI with the toy study registered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    env["SYMLAB_EXPERIMENTS"] = "toy_study"
    env["COLUMNS"] = "200"
    return env
