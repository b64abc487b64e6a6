"""Shared test settings: one BLAS thread per test worker (the suite runs with pytest -n 2), and
the tests folder on sys.path for its helper modules (pytest runs with --import-mode=importlib)."""

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
