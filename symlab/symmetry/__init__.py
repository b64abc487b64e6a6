"""symlab.symmetry: group actions, canonical forms, functional dimension and its mechanisms.

- :mod:`symlab.symmetry.actions`: permute / rescale hidden neurons, random elements of
  G = prod_l (S_{n_l} x| R_{>0}^{n_l}), canonical representative of an orbit.
- :mod:`symlab.symmetry.functional_dimension`: batch functional dimension and its bound.
- :mod:`symlab.symmetry.diagnose`: never-/always-active neurons, narrow layers, and the
  functional-dimension deficit they force.
"""

from symlab.symmetry.actions import (
    SymmetryElement,
    apply_symmetry,
    canonicalize,
    is_positively_homogeneous,
    permute,
    random_symmetry,
    rescale,
)
from symlab.symmetry.certified_fd import CertifiedFD, certified_functional_dimension
from symlab.symmetry.diagnose import MechanismReport, diagnose, mechanism_kernel
from symlab.symmetry.functional_dimension import FDResult, fd_bound, functional_dimension

__all__ = [
    "CertifiedFD",
    "FDResult",
    "MechanismReport",
    "SymmetryElement",
    "apply_symmetry",
    "canonicalize",
    "certified_functional_dimension",
    "diagnose",
    "fd_bound",
    "functional_dimension",
    "is_positively_homogeneous",
    "mechanism_kernel",
    "permute",
    "random_symmetry",
    "rescale",
]
