"""Bias-free two-layer teacher–student networks and the classification of training end points.

Networks f(x) = Σ_{j≤m} a_j σ(w_j·x) (``two_layer``), irreducible random teachers
(``make_teacher``), and :func:`classify`, which names an end point of training in the terms of
Şimşek, Ged, Jacot, Spadaro, Hongler, Gerstner, Brea (ICML 2021) and Fukumizu & Amari (2000):
a global minimum (each student neuron duplicates a teacher neuron, or sits in a zero-output
group), a symmetry-induced critical point (merging duplicate neurons and dropping zero-output
groups gives a narrower net), or another critical point. Neurons are equal when their incoming
weights agree to ``tol`` · max(1, max|w|) in the ∞-norm; for ReLU the positive scale ‖w_j‖ is
moved into a_j first (positive homogeneity) and dead neurons (w_j·x ≤ 0 on every input) count as
zero-output. For the odd activation tanh, a_j σ(w_j·x) = (−a_j) σ(−w_j·x): neurons are equal up to
sign (w_k = ±w_j; with a bias the flip applies to (w, b) together), a flipped member's outgoing
weight enters its group's sum with the flipped sign, and a neuron duplicating −w_i of teacher
neuron i gets label i (g, softplus and relu are not odd and are compared with the sign kept).
Cost: O(m² d) per classification.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from symlab.critical.criticality import gradient_norm
from symlab.nets import softplus_derivatives

CATEGORIES = (
    "global minimum",
    "global minimum (other)",
    "symmetry-induced saddle",
    "symmetry-induced minimum",
    "other saddle",
    "other minimum",
    "not converged",
)


class SigmoidSoftplus(nn.Module):
    """g(z) = sigmoid(4z) + softplus(z) (Şimşek et al. 2021): smooth, g(0) ≠ 0, asymmetric."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(4 * z) + nn.functional.softplus(z)

    def derivatives(self, z: torch.Tensor, order: int = 2) -> tuple[torch.Tensor, ...]:
        """(g, g', g'')[: order + 1] with g' = 4 s(1 − s) + softplus', g'' = 4 g_s'(1 − 2s) +
        softplus'', s = sigmoid(4z), g_s' = 4 s(1 − s) (softplus on torch's linear branch above
        20); used by :func:`symlab.nets.activation_derivatives`, hence by the closed-form
        derivatives of :mod:`symlab.train.two_layer_derivatives`."""
        s = torch.sigmoid(4 * z)
        softplus = softplus_derivatives(z, order=order)
        if order == 0:
            return (s + softplus[0],)
        ds = s * (1 - s) * 4
        values = (s + softplus[0], ds + softplus[1])
        return values if order == 1 else (*values, 4 * ds * (1 - 2 * s) + softplus[2])


TWO_LAYER_ACTIVATIONS = {
    "g": SigmoidSoftplus,
    "softplus": nn.Softplus,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}


def _activation(name: str) -> nn.Module:
    if name not in TWO_LAYER_ACTIVATIONS:
        known = ", ".join(TWO_LAYER_ACTIVATIONS)
        raise ValueError(f"activation: expected one of {known}, got {name!r}")
    return TWO_LAYER_ACTIVATIONS[name]()


def two_layer(weights: torch.Tensor, outputs: torch.Tensor, activation: str) -> nn.Sequential:
    """Bias-free f(x) = Σ_j a_j σ(w_j·x) with W = ``weights`` (m, d), a = ``outputs`` (m,)."""
    if weights.ndim != 2 or outputs.numel() != weights.shape[0]:
        raise ValueError(
            f"weights: expected an (m, d) matrix matching outputs of size m, got shapes "
            f"{tuple(weights.shape)} and {tuple(outputs.shape)}"
        )
    m, d = weights.shape
    first = nn.Linear(d, m, bias=False, dtype=weights.dtype)
    second = nn.Linear(m, 1, bias=False, dtype=weights.dtype)
    with torch.no_grad():
        first.weight.copy_(weights)
        second.weight.copy_(outputs.reshape(1, m))
    return nn.Sequential(first, _activation(activation), second)


def make_teacher(d: int, r: int, activation: str, seed: int) -> nn.Sequential:
    """Teacher with w_i ~ N(0, I_d), |a_i| ∈ [0.5, 1.5] with random signs (irreducible a.s.)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    w = torch.randn(r, d, generator=g, dtype=torch.float64)
    signs = torch.where(torch.rand(r, generator=g) < 0.5, -1.0, 1.0).double()
    a = signs * (0.5 + torch.rand(r, generator=g, dtype=torch.float64))
    return two_layer(w, a, activation)


def _neurons(model: nn.Sequential, activation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(w, a) per neuron; for relu the positive scale ‖w_j‖ is moved into a_j (w_j → unit)."""
    w, a = model[0].weight.detach().clone(), model[2].weight.detach()[0].clone()
    if activation == "relu":
        norms = torch.linalg.vector_norm(w, dim=1).clamp_min(1e-300)
        w, a = w / norms[:, None], a * norms
    return w, a


ODD_ACTIVATIONS = ("tanh",)  # σ(−z) = −σ(z): (w, a) and (−w, −a) are the same neuron


def _groups(w: torch.Tensor, tol: float, odd: bool = False) -> tuple[list[list[int]], list[int]]:
    """Neurons whose incoming weights agree to tol · max(1, max|w|) in the ∞-norm, or for ``odd``
    activations agree up to sign (union-find with parity). Returns the groups and, per neuron,
    its sign s_j = ±1 relative to the first member of its group (w_j ≈ s_j w_first)."""
    scale = tol * max(1.0, float(w.abs().max()))
    parent, parity = list(range(w.shape[0])), [1] * w.shape[0]

    def root(i: int) -> tuple[int, int]:  # (root, sign of i relative to the root)
        sign = 1
        while parent[i] != i:
            sign, i = sign * parity[i], parent[i]
        return i, sign

    for j, k in itertools.combinations(range(w.shape[0]), 2):
        if float((w[j] - w[k]).abs().max()) <= scale:
            relation = 1
        elif odd and float((w[j] + w[k]).abs().max()) <= scale:
            relation = -1
        else:
            continue
        (root_j, sign_j), (root_k, sign_k) = root(j), root(k)
        if root_j != root_k:  # w_k = relation w_j, w_j = sign_j w_rj, w_k = sign_k w_rk
            parent[root_k], parity[root_k] = root_j, sign_j * relation * sign_k
    groups: dict[int, list[int]] = {}
    for j in range(w.shape[0]):
        groups.setdefault(root(j)[0], []).append(j)
    signs = [0] * w.shape[0]
    for group in groups.values():
        first = root(group[0])[1]
        for j in group:
            signs[j] = root(j)[1] * first
    return list(groups.values()), signs


def classify(
    student: nn.Sequential, teacher: nn.Sequential, activation: str, *, zero_loss: bool,
    converged: bool, negative: int, tol: float, inputs: torch.Tensor | None = None,
) -> dict:  # fmt: skip
    """Category of an end point, its reduced width and each neuron's teacher label.

    ``assignment[j]`` = i ≥ 1 if neuron j duplicates teacher neuron i, 0 if it is in a
    zero-output group (zero-type neuron or zero-sum group) or, for relu with ``inputs`` given,
    dead (w_j·x ≤ 0 on every input), −1 if it matches nothing. For tanh, duplicates and teacher
    matches are up to sign: a group's outgoing weight is Σ_j s_j a_j with s_j = ±1 its members'
    signs, and label i also marks a neuron equal to −w_i. A zero-loss point is a global minimum
    whatever its gradient norm (L ≥ 0); other points need ``converged``."""
    w, a = _neurons(student, activation)
    w_t, a_t = _neurons(teacher, activation)
    odd = activation in ODD_ACTIVATIONS
    dead = set()
    if activation == "relu" and inputs is not None:
        dead = {j for j in range(w.shape[0]) if bool(((inputs @ w[j]) <= 0).all())}
    groups, signs = _groups(w, tol, odd)
    signed = a * torch.tensor(signs, dtype=a.dtype)
    a_scale = tol * max(1.0, float(a.abs().max()))
    live = [g for g in groups if abs(float(signed[g].sum())) > a_scale and not set(g) <= dead]
    assignment = [-1] * w.shape[0]
    for group in groups:
        if group not in live:
            for j in group:
                assignment[j] = 0
    w_scale = tol * max(1.0, float(w_t.abs().max()))
    for group in live:
        for i in range(w_t.shape[0]):
            same = float((w[group[0]] - w_t[i]).abs().max()) <= 10 * w_scale
            flipped = odd and float((w[group[0]] + w_t[i]).abs().max()) <= 10 * w_scale
            if same or flipped:
                for j in group:
                    assignment[j] = i + 1
    if zero_loss:
        labels = {i for i in assignment if i > 0}
        complete = -1 not in assignment and labels == set(range(1, w_t.shape[0] + 1))
        category = "global minimum" if complete else "global minimum (other)"
    elif not converged:
        category = "not converged"
    else:
        kind = "symmetry-induced" if len(live) < w.shape[0] else "other"
        category = f"{kind} {'saddle' if negative > 0 else 'minimum'}"
    return {
        "category": category,
        "reduced_width": len(live),
        "dead": len(dead),
        "zero_type": sum(1 for g in groups if g not in live and len(g) == 1 and g[0] not in dead),
        "zero_sum_groups": sum(1 for g in groups if g not in live and len(g) > 1),
        "assignment": assignment,
    }


def reduced_gradient_norm(student: nn.Sequential, activation: str, data, tol: float) -> float:
    """Gradient ∞-norm of the narrow net obtained by merging duplicates and dropping null groups.

    A group becomes one neuron with incoming weights mean_j s_j w_j and outgoing weight
    Σ_j s_j a_j (s_j = ±1 the member's sign, −1 only for a flipped tanh neuron)."""
    w, a = _neurons(student, activation)
    groups, signs = _groups(w, tol, activation in ODD_ACTIVATIONS)
    s = torch.tensor(signs, dtype=a.dtype)
    w, a = w * s[:, None], a * s
    groups = [g for g in groups if abs(float(a[g].sum())) > tol * max(1.0, float(a.abs().max()))]
    if not groups:
        return math.nan
    narrow = two_layer(
        torch.stack([w[g].mean(0) for g in groups]),
        torch.stack([a[g].sum() for g in groups]),
        activation,
    )
    return gradient_norm(narrow, data)
