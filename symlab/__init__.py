"""symlab: a laboratory for the empirical science of deep-learning theory.

Subpackages, one per science: :mod:`symlab.nets` (architectures), :mod:`symlab.linalg`
(Jacobians, certified ranks, spectra), :mod:`symlab.symmetry` (functional dimension, group
actions, mechanisms), :mod:`symlab.critical` (symmetry-induced critical points, embeddings),
:mod:`symlab.ntk` (empirical NTK and its dynamics), :mod:`symlab.train` (shared training loops),
and :mod:`symlab.engine` (specs, sweeps, SQLite store, reports).
"""

from symlab import critical, engine, linalg, nets, ntk, symmetry, train
from symlab.nets import mlp
from symlab.symmetry import FDResult, fd_bound, functional_dimension

__version__ = "0.1.0"

__all__ = [
    "FDResult",
    "critical",
    "engine",
    "fd_bound",
    "functional_dimension",
    "linalg",
    "mlp",
    "nets",
    "ntk",
    "symmetry",
    "train",
]
