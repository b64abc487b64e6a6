"""Certified functional dimension: a proof, in exact arithmetic, that the batch FD is at least r.

Grigsby, Lindsey, Meyerhoff, Wu 2022 (arXiv 2209.04036) define the batch functional dimension
on Z as rank J E_Z|_theta and bound it by fd_bound(model) = D - #hidden neurons (positive
scaling). :func:`certified_functional_dimension` quantizes the network to dyadic parameters
(:func:`symlab.linalg.certified.quantize_mlp`), forms its Jacobian exactly and ranks it modulo
primes (:func:`symlab.linalg.certified.certified_rank`). The maximum rank mod p is a certified
lower bound on the batch FD of the quantized network on Z, hence on its dim_fun (a supremum
over batches). When it equals fd_bound the quantized network provably has full functional
dimension on Z, so no continuous hidden symmetry near its parameters (GLR23's criterion), a
proof rather than a float heuristic. The float route
(:func:`symlab.symmetry.functional_dimension`) on the same quantized model and points can be
checked against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from symlab.linalg.certified import (
    DEFAULT_BITS,
    DEFAULT_PRIMES,
    CertifiedRank,
    certified_rank,
    jacobian_rank_bound,
    quantize_mlp,
)
from symlab.symmetry.batch_dimension import FDResult


@dataclass(frozen=True)
class CertifiedFD:
    """Certified batch functional dimension of the quantized network on ``n_points`` points.

    lower_bound: proven lower bound on rank J E_Z (max over primes of rank mod p); bound: the
    upper bound D - #hidden (:func:`symlab.symmetry.fd_bound` of the model, with or without
    biases; D when some hidden neuron's incoming vector is zero); full: lower_bound == bound, a
    proof of full functional dimension; exact: the batch FD itself is pinned (lower_bound ==
    the certified upper bound, see :class:`CertifiedRank`); max_deficit = bound - lower_bound
    bounds the deficit from above; certified: the underlying
    :class:`symlab.linalg.certified.CertifiedRank`.
    """

    lower_bound: int
    bound: int
    full: bool
    exact: bool
    max_deficit: int
    n_points: int
    bits: int | None
    certified: CertifiedRank


def certified_functional_dimension(
    model: nn.Module,
    inputs: torch.Tensor | FDResult,
    *,
    bits: int | None = DEFAULT_BITS,
    primes: Sequence[int] = DEFAULT_PRIMES,
) -> CertifiedFD:
    """Certified lower bound on the batch functional dimension of the ``bits``-quantized MLP.

    Args:
        model: MLP with ReLU, LeakyReLU or Identity activation.
        inputs: (N, n0) points, or an :class:`FDResult` whose ``points`` are used (so a float
            estimate can be certified on exactly its own sample).
        bits: parameters are rounded to multiples of 2^-bits (None: the float parameters are
            used exactly as they are).
        primes: primes below 2^31; the rank mod each is a lower bound.

    Cost: see :func:`symlab.linalg.certified.certified_rank` (one exact Jacobian and one
    elimination per prime, the second skipped when the first reaches the bound).
    """
    if isinstance(inputs, FDResult):
        if inputs.points is None:
            raise ValueError("inputs: expected an FDResult carrying its points, got none")
        inputs = inputs.points
    result = certified_rank(model, inputs, bits=bits, primes=primes)
    quantized = quantize_mlp(model, bits) if bits is not None else model
    bound = jacobian_rank_bound(quantized)
    return CertifiedFD(
        lower_bound=result.lower_bound,
        bound=bound,
        full=result.lower_bound == bound,
        exact=result.exact,
        max_deficit=bound - result.lower_bound,
        n_points=int(inputs.shape[0]),
        bits=bits,
        certified=result,
    )
