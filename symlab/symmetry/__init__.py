"""symlab.symmetry: group actions, canonical forms, functional dimension and its mechanisms.

- :mod:`symlab.symmetry.actions`: permute / rescale hidden neurons, random elements of
  G = prod_l (S_{n_l} x| R_{>0}^{n_l}); :mod:`symlab.symmetry.canonical_form`: canonical
  representative of an orbit (unique also with duplicated neurons).
- :mod:`symlab.symmetry.batch_dimension`: batch functional dimension (the Jacobian rank on given
  points) and its bound; :mod:`symlab.symmetry.adaptive_dimension`: the adaptive estimate (a
  sample grown until the rank saturates).
- :mod:`symlab.symmetry.samplers`: input samplers for the adaptive estimate (gaussian,
  multiscale, mixture) and :mod:`symlab.symmetry.boundary_sampler` ("boundary": point pairs
  straddling hidden neurons' bent hyperplanes, reads the network).
- :mod:`symlab.symmetry.regions`: activation patterns and decisive subsets (n0 + 1 points per
  linear region span the Jacobian rows of the whole region).
- :mod:`symlab.symmetry.neuron_mechanisms`: never-/always-active neurons, narrow layers, and the
  functional-dimension deficit they force (:mod:`symlab.symmetry.kernel_directions` holds the
  kernel algebra it uses).
- :mod:`symlab.symmetry.linear_regions`: the activation regions on all of R^{n0}, enumerated
  layer by layer with LPs; :mod:`symlab.symmetry.kernel_proofs`: an upper bound on dim_fun from
  kernel directions proven on all of R^{n0} (``FDResult.upper``; the interval [lower, upper]);
  :mod:`symlab.symmetry.exact_dimension`: dim_fun exactly from a decisive set (small n0).
"""

from symlab.symmetry.actions import (
    SymmetryElement,
    apply_symmetry,
    is_positively_homogeneous,
    permute,
    random_symmetry,
    rescale,
)
from symlab.symmetry.adaptive_dimension import functional_dimension
from symlab.symmetry.batch_dimension import FDResult, batch_functional_dimension, fd_bound
from symlab.symmetry.canonical_form import canonicalize
from symlab.symmetry.certified_fd import CertifiedFD, certified_functional_dimension
from symlab.symmetry.exact_dimension import ExactFD, exact_functional_dimension
from symlab.symmetry.kernel_proofs import ProvenKernel, proven_kernel
from symlab.symmetry.linear_regions import LinearRegions, enumerate_regions
from symlab.symmetry.neuron_mechanisms import MechanismReport, diagnose, mechanism_kernel
from symlab.symmetry.regions import activation_patterns, decisive_subset, is_piecewise_linear

__all__ = [
    "CertifiedFD",
    "ExactFD",
    "FDResult",
    "LinearRegions",
    "MechanismReport",
    "ProvenKernel",
    "SymmetryElement",
    "activation_patterns",
    "apply_symmetry",
    "batch_functional_dimension",
    "canonicalize",
    "certified_functional_dimension",
    "decisive_subset",
    "diagnose",
    "enumerate_regions",
    "exact_functional_dimension",
    "fd_bound",
    "functional_dimension",
    "is_piecewise_linear",
    "is_positively_homogeneous",
    "mechanism_kernel",
    "permute",
    "proven_kernel",
    "random_symmetry",
    "rescale",
]
