"""symlab: a laboratory for the empirical science of deep-learning theory.

Subpackages, one per science: :mod:`symlab.nets` (architectures), :mod:`symlab.linalg`
(Jacobians, certified ranks, spectra), :mod:`symlab.symmetry` (functional dimension, group
actions, mechanisms), :mod:`symlab.critical` (symmetry-induced critical points, embeddings),
:mod:`symlab.ntk` (empirical NTK and its dynamics), :mod:`symlab.boolean` (functions on the
Boolean cube: Walsh transforms, merged staircases, leap), :mod:`symlab.bias` (implicit bias
toward low rank: layer spectra, deep linear nets, Leaky ResNets), :mod:`symlab.train` (the shared
training engine),
and :mod:`symlab.engine` (specs, sweeps, SQLite store, reports).

Attributes load on first use (PEP 562), so ``import symlab`` stays cheap: the engine's worker
processes and a user's own study module do not pay for torch unless they use it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBPACKAGES = (
    "bias",
    "boolean",
    "critical",
    "engine",
    "linalg",
    "nets",
    "ntk",
    "symmetry",
    "train",
)
_ATTRIBUTES = {
    "mlp": "symlab.nets",
    "functional_dimension": "symlab.symmetry",
    "batch_functional_dimension": "symlab.symmetry",
    "fd_bound": "symlab.symmetry",
    "FDResult": "symlab.symmetry",
}

__all__ = sorted([*_SUBPACKAGES, *_ATTRIBUTES])


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"symlab.{name}")
    if name in _ATTRIBUTES:
        return getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    raise AttributeError(f"module 'symlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
