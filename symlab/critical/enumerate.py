"""Brute-force enumeration of the symmetry-induced subspaces of a two-layer network.

Lists the affine subspaces counted by ``symlab.critical.counts`` directly from their definitions
(Şimşek et al., ICML 2021; Fukumizu & Amari 2000), without any counting formula: every student
neuron j in [m] gets a label (the teacher / narrow-net neuron whose incoming weights it copies, or
a free incoming vector), every labelling that satisfies the definition is turned into its canonical
:class:`Subspace` (the partition of the student neurons into groups sharing one incoming vector,
each group tagged with its source), and duplicates are removed.

Cost: (r + 1)^m labellings for the global minima (zero-type neurons only), r^m for the
symmetry-induced subspaces, and about T'(r, m) labellings (free-vector ids in first-use order) with
zero-sum groups. Meant for r <= 4, m <= 8 (a few seconds at most); the closed forms are in
``counts.py``. Neuron indices are 0-based.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import product

import torch


@dataclass(frozen=True)
class NeuronGroup:
    """Student neurons that share one incoming vector.

    ``source`` is the teacher (narrow-net) neuron whose incoming weights they copy, or None for a
    free incoming vector (a zero-type neuron when the group has one neuron, else a zero-sum group).
    """

    neurons: tuple[int, ...]
    source: int | None


@dataclass(frozen=True)
class Subspace:
    """An affine subspace of width-``width`` parameters, in canonical form.

    ``family`` is "global-minima" (teacher groups: outgoing weights sum to the teacher's; free
    groups: outgoing weights sum to 0) or "symmetry-induced" (a_j = beta_j a_source with the betas
    of a group summing to 1). ``groups`` are sorted by their smallest neuron.
    """

    family: str
    width: int
    groups: tuple[NeuronGroup, ...]

    @property
    def free_groups(self) -> int:
        """Number of groups with free incoming weights."""
        return sum(group.source is None for group in self.groups)

    def dimension(self, input_dim: int, *, bias: bool = False, output_dim: int = 1) -> int:
        """Dimension of the subspace, summed group by group from its constraints.

        Teacher group of size s: (s - 1) output_dim (symmetry-induced: s - 1 betas); free group of
        size z: input_dim (+ 1 with ``bias``) + (z - 1) output_dim.
        """
        per_output = 1 if self.family == "symmetry-induced" else output_dim
        total = 0
        for group in self.groups:
            total += (len(group.neurons) - 1) * per_output
            if group.source is None:
                total += input_dim + (1 if bias else 0)
        return total


def _canonical(
    family: str, labels: Sequence[object], sources: dict[object, int | None]
) -> Subspace:
    members: dict[object, list[int]] = {}
    for neuron, label in enumerate(labels):
        members.setdefault(label, []).append(neuron)
    groups = sorted(
        (NeuronGroup(tuple(neurons), sources[label]) for label, neurons in members.items()),
        key=lambda group: group.neurons[0],
    )
    return Subspace(family, len(labels), tuple(groups))


def _check(r: int, m: int) -> None:
    for name, value in (("r", r), ("m", m)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")


def _free_labellings(r: int, m: int) -> Iterator[tuple[object, ...]]:
    """Labels in {0..r-1} (teacher) or ("free", k), free ids k introduced in first-use order."""

    def extend(prefix: list[object], next_free: int) -> Iterator[tuple[object, ...]]:
        if len(prefix) == m:
            yield tuple(prefix)
            return
        for label in [*range(r), *(("free", k) for k in range(next_free + 1))]:
            prefix.append(label)
            is_new = isinstance(label, tuple) and label[1] == next_free
            yield from extend(prefix, next_free + 1 if is_new else next_free)
            prefix.pop()

    yield from extend([], 0)


def enumerate_global_minima_subspaces(
    r: int, m: int, *, zero_sum_groups: bool = False
) -> list[Subspace]:
    """All subspaces of the zero-loss manifold of a width-m student of a width-r teacher.

    Default: every neuron is a duplicate of a teacher neuron or zero-type (own free incoming
    vector, outgoing weight 0), and every teacher neuron has at least one duplicate.
    ``zero_sum_groups=True``: neurons may also share a free incoming vector with outgoing weights
    summing to 0. Sorted list of distinct canonical subspaces; its length is T(r, m) (T'(r, m)).
    """
    _check(r, m)
    found: set[Subspace] = set()
    if zero_sum_groups:
        labellings: Iterator[tuple[object, ...]] = _free_labellings(r, m)
    else:  # label -1: zero-type, each such neuron its own free group
        labellings = (
            tuple(("free", j) if label < 0 else label for j, label in enumerate(labels))
            for labels in product(range(-1, r), repeat=m)
        )
    for labels in labellings:
        if not set(range(r)) <= set(labels):
            continue
        sources: dict[object, int | None] = {
            label: (None if isinstance(label, tuple) else label) for label in labels
        }
        found.add(_canonical("global-minima", labels, sources))
    return sorted(found, key=_sort_key)


def enumerate_symmetry_induced_subspaces(r: int, m: int) -> list[Subspace]:
    """All subspaces {w_j = w_pi(j), a_j = beta_j a_pi(j)} induced by one width-r critical point.

    One per surjection pi: [m] -> [r] (every narrow neuron copied at least once); sorted, distinct.
    Its length is G(r, m).
    """
    _check(r, m)
    found = {
        _canonical("symmetry-induced", labels, {i: i for i in range(r)})
        for labels in product(range(r), repeat=m)
        if len(set(labels)) == r
    }
    return sorted(found, key=_sort_key)


def _sort_key(subspace: Subspace) -> tuple:
    return tuple(
        (group.neurons, -1 if group.source is None else group.source) for group in subspace.groups
    )


def sample_point(
    subspace: Subspace,
    incoming: torch.Tensor,
    outgoing: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    scale: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random point (W (m, d), a (m, K)) on ``subspace`` built from a width-r point.

    ``incoming`` (r, d) and ``outgoing`` (r, K) (or (r,)) are the teacher's (narrow net's)
    weights. Teacher groups copy the source's incoming row; their outgoing weights are random
    splits summing to the source's (global minima: arbitrary vectors; symmetry-induced: beta_j
    a_source with sum beta_j = 1). Free groups get one random incoming row (N(0, scale^2)) and
    outgoing weights summing to 0 (exactly 0 for a single zero-type neuron).
    """
    squeeze = outgoing.dim() == 1
    outgoing = outgoing.reshape(outgoing.shape[0], -1)
    dtype, (d, k) = incoming.dtype, (incoming.shape[1], outgoing.shape[1])
    weights = torch.empty(subspace.width, d, dtype=dtype)
    heads = torch.empty(subspace.width, k, dtype=dtype)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype) * scale

    for group in subspace.groups:
        index, size = list(group.neurons), len(group.neurons)
        if group.source is None:
            weights[index] = randn(d)
            split = randn(size, k)
            heads[index] = split - split.mean(dim=0)
        else:
            weights[index] = incoming[group.source]
            if subspace.family == "symmetry-induced":
                beta = randn(size)
                beta = beta - beta.mean() + 1.0 / size
                heads[index] = beta[:, None] * outgoing[group.source]
            else:
                split = randn(size, k)
                heads[index] = split - split.mean(dim=0) + outgoing[group.source] / size
    return weights, (heads[:, 0] if squeeze else heads)
