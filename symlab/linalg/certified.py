"""Certified (exact) rank of network Jacobians: exact integer Jacobians and ranks modulo primes.

Why it is a proof. Every float is a dyadic rational m / 2^k, so a ReLU, leaky-ReLU or linear MLP
with float parameters, evaluated at float inputs where no hidden pre-activation is a kink, has
a Jacobian J E_Z|_theta (Grigsby, Lindsey, Meyerhoff, Wu 2022, arXiv 2209.04036) whose entries
are dyadic rationals: sums of products of weights, inputs and activation slopes. Scaling each
column by a power of two (a diagonal scaling, so the rank is unchanged) gives an integer matrix
A. For any prime p, rank_p(A mod p) <= rank_Q(A): a nonzero r x r minor mod p is a nonzero
r x r minor over Q. Conversely a nonzero r x r minor is divisible by only finitely many primes,
so equality holds for all but finitely many p. The maximum over a few large primes is
therefore a certified LOWER bound on the exact rank; with the upper bound min(N K, fd_bound)
(the positive-scaling null space, GLMW22) it pins the rank exactly whenever the two meet.

- :func:`quantize_mlp`: round every parameter to a multiple of 2^-bits (small numerators).
- :func:`exact_jacobian`: the integer matrix A and its column exponents (J = A 2^-e), computed
  in exact integer arithmetic (int64 where a bound proves no overflow, else Python ints), or A
  mod p as int64 residues.
- :func:`rank_mod_p`: rank over GF(p) by Gaussian elimination in blocks of rows.
- :func:`certified_rank`: lower bound max_p rank_p, upper bound, and whether they meet.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from symlab.linalg.modular import _check_prime, rank_mod_p
from symlab.nets import activation_of, is_mlp, linear_layers, widths_of

DEFAULT_PRIMES = (1_048_573, 2_147_483_629)
DEFAULT_BITS = 16
_INT64_SAFE = 2**62  # bound on |values| (and partial sums) kept in int64


# ---------------------------------------------------------------------------------------------
# exact integer Jacobians
# ---------------------------------------------------------------------------------------------


def _dyadic(values: np.ndarray) -> tuple[np.ndarray, int]:
    """(numerators, s) with values = numerators / 2^s exactly, s >= 0 minimal; finite floats."""
    ratios = [float(v).as_integer_ratio() for v in values.ravel()]
    s = max((den.bit_length() - 1 for _, den in ratios), default=0)
    nums = np.empty(len(ratios), dtype=object)
    nums[:] = [num << (s - den.bit_length() + 1) for num, den in ratios]
    return _compact(nums.reshape(values.shape)), s


def _max_abs(x: np.ndarray) -> int:
    return int(np.abs(x).max()) if x.size else 0


def _compact(x: np.ndarray) -> np.ndarray:
    """int64 when every |entry| < 2^62 (fast path), else an object array of Python ints."""
    if x.dtype == np.int64:
        return x
    return x.astype(np.int64) if _max_abs(x) < _INT64_SAFE else x.astype(object)


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b exactly: int64 when |a| |b| inner < 2^62 bounds every partial sum, else Python ints."""
    if _max_abs(a) * _max_abs(b) * a.shape[-1] < _INT64_SAFE:
        return a.astype(np.int64) @ b.astype(np.int64)
    return _compact(a.astype(object) @ b.astype(object))


def _exact_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b (broadcast) exactly."""
    if _max_abs(a) + _max_abs(b) < _INT64_SAFE:
        return a.astype(np.int64) + b.astype(np.int64)
    return _compact(a.astype(object) + b.astype(object))


def _exact_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a * b (broadcast, elementwise) exactly."""
    if _max_abs(a) * _max_abs(b) < _INT64_SAFE:
        return a.astype(np.int64) * b.astype(np.int64)
    return _compact(a.astype(object) * b.astype(object))


def _scaled(x: np.ndarray, factor: int) -> np.ndarray:
    """x * factor exactly (factor a Python int)."""
    if factor == 0:
        return np.zeros(x.shape, dtype=np.int64)
    if _max_abs(x) * abs(factor) < _INT64_SAFE:
        return x.astype(np.int64) * factor
    return _compact(x.astype(object) * factor)


def _check_exact_model(model: nn.Module) -> None:
    if not is_mlp(model) or not isinstance(
        activation_of(model), nn.ReLU | nn.LeakyReLU | nn.Identity
    ):
        raise ValueError(
            "model: expected an MLP (nn.Sequential of Linear layers) with ReLU, LeakyReLU or "
            "Identity activation"
        )
    for param in model.parameters():
        if not bool(torch.isfinite(param).all()):
            raise ValueError("model: expected finite parameters, got NaN or inf")


def _check_points(model: nn.Module, inputs: object) -> np.ndarray:
    n0 = linear_layers(model)[0].in_features
    if (
        not isinstance(inputs, torch.Tensor)
        or inputs.dim() != 2
        or inputs.shape[0] < 1
        or inputs.shape[1] != n0
        or not inputs.is_floating_point()
    ):
        raise ValueError(
            f"inputs: expected a floating-point tensor of shape (N, {n0}) with N >= 1, got "
            f"{type(inputs).__name__} of shape {tuple(getattr(inputs, 'shape', ()))}"
        )
    x = inputs.detach().cpu().to(torch.float64).numpy()
    if not np.isfinite(x).all():
        raise ValueError("inputs: expected finite entries, got NaN or inf")
    return x


def quantize_mlp(model: nn.Module, bits: int) -> nn.Module:
    """A float64 copy of ``model`` with every parameter rounded to the nearest multiple of 2^-bits.

    The copy's parameters are dyadic rationals k / 2^bits (exact in float64 while |k| < 2^53),
    so its Jacobian at float inputs is exactly rational with small numerators. Activations
    (e.g. a leaky-ReLU slope) are kept as they are.
    """
    if not isinstance(bits, int) or isinstance(bits, bool) or not 0 <= bits <= 60:
        raise ValueError(f"bits: expected an integer between 0 and 60, got {bits!r}")
    quantized = copy.deepcopy(model).to(torch.float64)
    with torch.no_grad():
        for param in quantized.parameters():
            param.copy_(torch.round(param * 2.0**bits) / 2.0**bits)
    return quantized


@dataclass(frozen=True)
class ExactJacobian:
    """J E_Z|_theta = numerators * 2^-exponents (column-wise), exactly.

    numerators: (N*K, D) integer matrix, rows point-major, columns in flat parameter order
    (W_1, b_1, ..., W_L, b_L): Python ints (dtype object) when ``modulus`` is None, else int64
    residues mod ``modulus``. exponents: (D,) non-negative column exponents. Same rank as J.
    nonzero_columns: (D,) bool, True where the column of J is not exactly zero (decided in
    exact arithmetic, also when only residues are kept).
    """

    numerators: np.ndarray
    exponents: np.ndarray
    modulus: int | None
    nonzero_columns: np.ndarray

    def to_float(self) -> torch.Tensor:
        """float64 J, each entry correctly rounded (only when ``modulus`` is None)."""
        if self.modulus is not None:
            raise ValueError("modulus: to_float needs the exact Jacobian, got residues mod p")
        flat = np.array([float(v) for v in self.numerators.ravel()], dtype=np.float64)
        values = np.ldexp(flat.reshape(self.numerators.shape), -self.exponents[None, :])
        return torch.from_numpy(values)


def exact_jacobian(
    model: nn.Module, inputs: torch.Tensor, *, modulus: int | None = None
) -> ExactJacobian:
    """The parameter Jacobian of a ReLU / leaky-ReLU / linear MLP in exact integer arithmetic.

    Every float is dyadic, so the inputs and parameters are used exactly (quantize first with
    :func:`quantize_mlp` to keep numerators small). Forward: a^{l-1} = A^{l-1} / 2^{s_{l-1}},
    W_l = Wn_l / 2^{q_l}, z^l = (Wn_l A^{l-1} + bn_l 2^{s_{l-1}}) / 2^{q_l + s_{l-1}}; the ReLU
    mask is the sign of the integer numerator, and a leaky slope c / 2^t multiplies the
    numerators by c (negative side) or 2^t (positive side). Backward: g^L = I_K and
    G^{l-1} = (G^l Wn_l) * D^{l-1} with D = slope numerators, so df/dW^l_ij = G^l_i A^{l-1}_j /
    2^{r_l + s_{l-1}} and df/db^l_i = G^l_i / 2^{r_l}: the integer matrix has the same rank as J.
    Arithmetic is int64 where a bound on the partial sums proves it cannot overflow, else Python
    ints. Cost O(N K D) big-integer operations (int64 for small numerators).

    Args:
        model: MLP with ReLU, LeakyReLU or Identity hidden activation.
        inputs: (N, n0) floating-point points.
        modulus: None for Python-int numerators, or a prime p < 2^31 for int64 residues mod p.

    Exact zeros. When the whole input a^{l-1}(x) of a bias-free layer l is 0 (e.g. layer l-1 is
    all off at x), z^l = 0 for all parameters near theta: a smooth point, where relu'(0) = 0
    (leaky: the slope) is used as in the float route; J does not depend on that choice (each
    column it reaches has a factor a_j = 0 or relu'(z < 0) = 0). Any other exactly zero
    pre-activation is a kink a parameter moves (non-smooth, no Jacobian): ValueError. GLMW22.
    """
    _check_exact_model(model)
    x = _check_points(model, inputs)
    if modulus is not None:
        modulus = _check_prime(modulus, "modulus")
    activation = activation_of(model)
    kinked = isinstance(activation, nn.ReLU | nn.LeakyReLU)
    if isinstance(activation, nn.LeakyReLU):
        slope_num, slope_den = float(activation.negative_slope).as_integer_ratio()
    else:
        slope_num, slope_den = 0, 1
    t = slope_den.bit_length() - 1
    layers = linear_layers(model)
    a, s = _dyadic(x)
    acts, scales, weights, wscales, derivs = [a], [s], [], [], []
    for index, layer in enumerate(layers):
        w = layer.weight.detach().cpu().to(torch.float64).numpy()
        b = layer.bias.detach().cpu().to(torch.float64).numpy() if layer.bias is not None else None
        wb, q = _dyadic(w if b is None else np.concatenate([w, b[:, None]], axis=1))
        wn = wb if b is None else wb[:, :-1]
        z = _exact_matmul(a, wn.T)
        if b is not None:
            z = _exact_add(z, _scaled(wb[:, -1], 2**s)[None, :])
        weights.append(wn)
        wscales.append(q)
        if index == len(layers) - 1:
            break
        kinks = z == 0 if kinked else np.zeros(z.shape, dtype=bool)
        if b is None:  # forced zeros: the layer's whole input is 0 (smooth, relu'(0) = 0 used)
            kinks &= ~np.asarray(a == 0, dtype=bool).all(axis=1, keepdims=True)
        if bool(kinks.any()):
            point, neuron = (int(v[0]) for v in np.nonzero(kinks))
            raise ValueError(
                f"inputs: point {point} has an exactly zero pre-activation at hidden layer "
                f"{index + 1}, neuron {neuron} (a non-smooth point); perturb or drop that point"
            )
        positive = z > 0
        if kinked:
            a = np.where(positive, _scaled(z, slope_den), _scaled(z, slope_num))
            deriv = np.full(z.shape, slope_num, dtype=object)
            deriv[positive] = slope_den
            s = s + q + t
        else:
            a, deriv = z, np.ones_like(z, dtype=np.int64)
            s = s + q
        a = _compact(np.asarray(a))
        acts.append(a)
        scales.append(s)
        derivs.append(_compact(np.asarray(deriv, dtype=object)))
    n, k = x.shape[0], layers[-1].out_features
    g = np.broadcast_to(np.eye(k, dtype=np.int64), (n, k, k)).reshape(n * k, k)
    r = 0
    blocks, exponents, nonzero = [], [], []
    for index in range(len(layers) - 1, -1, -1):
        prev, s_prev = acts[index], scales[index]
        if modulus is not None:
            gm = np.mod(g, modulus).astype(np.int64).reshape(n, k, -1)
            am = np.mod(prev, modulus).astype(np.int64)
            wcols = (gm[:, :, :, None] * am[:, None, None, :] % modulus).reshape(n * k, -1)
            bcols = gm.reshape(n * k, -1)
        else:
            go = g.astype(object).reshape(n, k, -1)
            wcols = (go[:, :, :, None] * prev.astype(object)[:, None, None, :]).reshape(n * k, -1)
            bcols = go.reshape(n * k, -1)
        n_out, n_in = weights[index].shape
        block = [wcols]
        exps = [np.full(n_out * n_in, r + s_prev, dtype=np.int64)]
        if layers[index].bias is not None:
            block.append(bcols)
            exps.append(np.full(n_out, r, dtype=np.int64))
        blocks.append(np.concatenate(block, axis=1))
        exponents.append(np.concatenate(exps))
        # column (i, j) is nonzero iff some point has g_i != 0 (for some output) and a_j != 0
        live_g = (g != 0).reshape(n, k, -1).any(axis=1).astype(np.float64)
        live = [(live_g.T @ (prev != 0).astype(np.float64)).ravel() > 0]
        if layers[index].bias is not None:
            live.append(live_g.any(axis=0))
        nonzero.append(np.concatenate(live))
        if index > 0:
            d = derivs[index - 1]
            gw = _exact_matmul(g, weights[index])
            g = _exact_mul(gw.reshape(n, k, -1), d[:, None, :]).reshape(n * k, -1)
            r = r + wscales[index] + (t if kinked else 0)
    numerators = np.concatenate(blocks[::-1], axis=1)
    columns = np.concatenate(exponents[::-1])
    if modulus is None:
        numerators = numerators.astype(object)
    return ExactJacobian(numerators, columns, modulus, np.concatenate(nonzero[::-1]))


# ---------------------------------------------------------------------------------------------
# certified rank
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertifiedRank:
    """Exact-arithmetic bounds on rank J E_Z|_theta of the (quantized) network.

    lower_bound = max_p rank_p (certified); upper_bound = min(N K, bound, scaling bound) with
    bound = fd_bound(widths) (D - #hidden, the positive-scaling null space) or D, and the
    scaling bound #nonzero columns - #independent scaling vectors; exact = lower ==
    upper (then rank is proven). rank: the exact rank when ``exact``, else the lower bound
    (equal to the exact rank unless every prime divides all maximal nonzero minors).
    ranks_mod_p: rank_p for each prime in ``primes``; bits: the quantization used (None: none).
    """

    rank: int
    lower_bound: int
    upper_bound: int
    primes: tuple[int, ...]
    exact: bool
    ranks_mod_p: tuple[int, ...]
    bits: int | None


def jacobian_rank_bound(model: nn.Module) -> int:
    """An upper bound on rank J for every smooth batch: fd_bound(widths), or D when unproven.

    The scaling vectors v_h (+ incoming row of hidden neuron h, - its outgoing column) lie in
    ker J for positively homogeneous activations and are linearly independent when every hidden
    neuron has a nonzero incoming row (choose one nonzero entry per neuron: the coefficient
    matrix is block-triangular over layers with a nonzero diagonal), giving D - #hidden
    (GLMW22). A zero incoming row makes every point non-smooth for (leaky) ReLU; for a linear
    network it voids the argument, and D is returned.
    """
    layers = linear_layers(model)
    widths = widths_of(model)
    d = sum(p.numel() for p in model.parameters())
    for layer in layers[:-1]:
        rows = layer.weight.detach().abs().sum(dim=1)
        if layer.bias is not None:
            rows = rows + layer.bias.detach().abs()
        if bool((rows == 0).any()):
            return d
    return d - sum(widths[1:-1])


def scaling_rank_bound(model: nn.Module, nonzero_columns: np.ndarray) -> int:
    """Upper bound on rank J from its exactly-zero columns and the scaling null space.

    rank J = rank J' (J' = the nonzero columns). The scaling vector v_h of a hidden neuron h
    (+theta on its incoming row, -theta on its outgoing column; J v_h = 0 for positively
    homogeneous activations, GLMW22) restricted to J''s columns stays in ker J'. For the set H
    of neurons with an incoming coordinate c_h where theta != 0 and column c_h of J is nonzero,
    the restricted v_h are independent (v_h'(c_h) != 0 only for h' = h or h' in the layer
    below: block-triangular with nonzero diagonal). Hence rank J <= #nonzero columns - |H|.
    A dead neuron loses its n_{l-1} + 1 + n_{l+1} columns and its place in H: the bound drops
    by n_{l-1} + n_{l+1}, so dead-neuron deficits are certified exactly.
    """
    layers = linear_layers(model)
    independent, offset = 0, 0
    for index, layer in enumerate(layers):
        w = layer.weight.detach()
        n_out, n_in = w.shape
        cols = offset + np.arange(n_out * n_in).reshape(n_out, n_in)
        rows = w.cpu().numpy() != 0
        if layer.bias is not None:
            cols = np.concatenate([cols, offset + n_out * n_in + np.arange(n_out)[:, None]], 1)
            rows = np.concatenate([rows, layer.bias.detach().cpu().numpy()[:, None] != 0], 1)
        if index < len(layers) - 1:
            independent += int((rows & nonzero_columns[cols]).any(axis=1).sum())
        offset += cols.size
    return int(nonzero_columns.sum()) - independent


def certified_rank(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    bits: int | None = DEFAULT_BITS,
    primes: Sequence[int] = DEFAULT_PRIMES,
) -> CertifiedRank:
    """Certified rank of the Jacobian J E_Z|_theta of the ``bits``-quantized MLP at ``inputs``.

    The network is quantized with :func:`quantize_mlp` (``bits=None``: the float parameters
    are used as they are, also exactly), its Jacobian is formed exactly and reduced mod each
    prime (:func:`exact_jacobian`), and lower = max_p :func:`rank_mod_p` is a proof that
    rank J >= lower; upper = min(N K, :func:`jacobian_rank_bound`,
    :func:`scaling_rank_bound`) (the last one sees exactly-zero columns, e.g. dead neurons).
    When lower == upper the rank is certified exactly. A float rank (:func:`symlab.linalg.numerical_rank`) of the same
    quantized model at the same inputs can be checked against it.

    Cost per prime: the Jacobian mod p, O(N K D), plus the elimination, about 2 N K r (D - r)
    flops in float64 BLAS (r the rank); the second prime is skipped once the bound is reached.

    Raises ValueError for a non-MLP, a non-smooth input (see :func:`exact_jacobian`), a
    non-prime or non-integer in ``primes``, or an invalid ``bits``.
    """
    primes = tuple(primes) if not isinstance(primes, int | str) else (primes,)
    if not primes:
        raise ValueError("primes: expected at least one prime below 2^31, got none")
    primes = tuple(_check_prime(p, "primes") for p in primes)
    _check_exact_model(model)
    quantized = quantize_mlp(model, bits) if bits is not None else model
    _check_points(quantized, inputs)
    k = linear_layers(quantized)[-1].out_features
    upper = min(inputs.shape[0] * k, jacobian_rank_bound(quantized))
    ranks: list[int] = []
    for p in primes:
        jac = exact_jacobian(quantized, inputs, modulus=p)
        upper = min(upper, scaling_rank_bound(quantized, jac.nonzero_columns))
        ranks.append(rank_mod_p(jac.numerators, p, stop_at=upper))
        if max(ranks) >= upper:
            break
    lower = max(ranks)
    if lower > upper:
        raise RuntimeError(
            f"certified rank {lower} exceeds its upper bound {upper}: the exact Jacobian or the "
            "elimination is wrong"
        )
    return CertifiedRank(lower, lower, upper, primes, lower == upper, tuple(ranks), bits)
