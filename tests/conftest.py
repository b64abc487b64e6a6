"""Shared test settings: one BLAS thread per test worker (the suite runs with pytest -n 2)."""

import torch

torch.set_num_threads(1)
