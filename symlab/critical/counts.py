"""Exact counts of the symmetry-induced affine subspaces of a two-layer network (Şimşek et al. 2021).

Setting (Şimşek, Ged, Jacot, Spadaro, Hongler, Gerstner, Brea, "Geometry of the loss landscape in
overparameterized neural networks: symmetries and invariances", ICML 2021): a two-layer network of
width m, f(x) = sum_{j=1}^m a_j sigma(w_j . x), w_j in R^d, a_j in R^K. A teacher (or any
irreducible network) of width r has neurons (w_i*, a_i*) with distinct incoming vectors.

Neuron types used to build the subspaces:

- duplicate neurons of teacher neuron i: incoming weights equal to w_i*, outgoing weights summing
  to a_i* (for critical points of a narrower net: a_j = beta_j a_i with sum beta_j = 1);
- zero-type neuron: outgoing weight a_j = 0, incoming weights w_j free;
- zero-sum group (only with ``zero_sum_groups=True``): z >= 2 neurons sharing one free incoming
  vector whose outgoing weights sum to 0 (a zero-type neuron is the group of size 1).

Closed forms (derived here, checked against the brute-force enumerator in
``symlab.critical.enumerate`` for every r <= 4, m <= 8). S(n, k) is the Stirling number of the
second kind, B(n) the Bell number, G(r, i) below:

- G(r, m) = r! S(m, r) = sum_{j=0}^{r} (-1)^j C(r, j) (r - j)^m: the surjections
  [m] -> [r] (which narrow neuron each wide neuron copies).
- T(r, m) = sum_{k=0}^{m-r} C(m, k) G(r, m - k) = r! S(m + 1, r + 1)
  = sum_{j=0}^{r} (-1)^j C(r, j) (r + 1 - j)^m: maps [m] -> {0, 1, ..., r} hitting every teacher
  label 1..r (label 0 = zero-type; k = number of zero-type neurons). Adding a neuron m+1 that always
  carries label 0 turns these maps into set partitions of [m+1] into r+1 blocks with the r
  teacher blocks labelled, hence r! S(m+1, r+1).
- T'(r, m) (zero_sum_groups=True) = sum_{g=0}^{m-r} S(m, r + g) (r + g)! / g!
  = sum_{i=r}^{m} C(m, i) G(r, i) B(m - i): partition [m] into r + g blocks, give r of them distinct
  teacher labels, the other g are free groups (zero-type or zero-sum).

Dimensions (d_free = d, or d + 1 when the hidden layer has biases; K outputs): a teacher group of
size s contributes (s - 1) K, a free group of size z contributes d_free + (z - 1) K, so a T-subspace
with g free groups has dimension K (m - r - g) + g d_free (>= h = m - r for d_free >= K, the
"dimension at least h" of the abstract). A G-subspace has dimension m - r (the beta-simplex
directions, also with K outputs because a_j must stay a multiple of a_i).

Relation to the paper: the paper's closed forms could not be checked against its PDF from here.
The default T agrees with its Fig. 4 (m = r + 1: r! (r + 1) "blue" subspaces with one vanishing
output weight plus r! C(r + 1, 2) "green" ones with two identical incoming vectors, total
r! C(r + 2, 2) = r! S(r + 2, r + 1)). T' counts zero-sum groups as extra affine pieces; T' = T for
m <= r + 1 and T' > T from m = r + 2 on (Theiss et al. App. B.2 attribute such groups to the paper).
Zero-type neurons and zero-sum groups are not critical for a narrower net's non-global critical
points (d L / d a_j = E[l' sigma(w_j . x)] != 0 for free w_j), so G has no such variant.

Cost: O(r) big-integer operations of O(m log r) bits for T and G; O(m^2) for T' and the kinds.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb, factorial

FAMILIES = ("global-minima", "symmetry-induced")


def _check_size(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def stirling2(n: int, k: int) -> int:
    """Stirling number of the second kind S(n, k): set partitions of [n] into k non-empty blocks.

    S(n, k) = (1 / k!) sum_{j=0}^{k} (-1)^j C(k, j) (k - j)^n (exact integer arithmetic, O(k) big
    integer operations); S(0, 0) = 1 and S(n, k) = 0 for k > n or k = 0 < n.
    """
    _check_size("n", n, 0)
    _check_size("k", k, 0)
    if k > n:
        return 0
    return _surjections(n, k) // factorial(k)


def _surjections(n: int, k: int) -> int:
    """k! S(n, k): surjections [n] -> [k], by inclusion-exclusion over the missed labels."""
    return sum((-1) ** j * comb(k, j) * (k - j) ** n for j in range(k + 1))


def stirling2_row(n: int) -> list[int]:
    """[S(n, 0), ..., S(n, n)] by the recurrence S(n, k) = k S(n-1, k) + S(n-1, k-1); O(n^2)."""
    _check_size("n", n, 0)
    row = [1]
    for size in range(1, n + 1):
        row = [0] + [k * (row[k] if k < size else 0) + row[k - 1] for k in range(1, size + 1)]
    return row


def bell_number(n: int) -> int:
    """Bell number B(n) = sum_k S(n, k): set partitions of [n] (Bell triangle, O(n^2))."""
    _check_size("n", n, 0)
    row = [1]
    for _ in range(n):
        new = [row[-1]]
        for value in row:
            new.append(new[-1] + value)
        row = new
    return row[0]


def count_symmetry_induced_subspaces(r: int, m: int) -> int:
    """G(r, m) = r! S(m, r): affine subspaces of width-m critical points induced by one width-r one.

    A width-r critical point (w_i, a_i) and a surjection pi: [m] -> [r] give the subspace
    {w_j = w_pi(j), a_j = beta_j a_pi(j), sum_{pi(j) = i} beta_j = 1} of critical points at the same
    loss (Fukumizu & Amari 2000; Şimşek et al. 2021; Zhang et al. 2021). Counted per critical point
    of the narrow net (its r! permutations included, as distinct surjections); each subspace has
    dimension m - r. G(r, m) = sum_j (-1)^j C(r, j) (r - j)^m, exact Python int; 0 when m < r.
    """
    _check_size("r", r, 1)
    _check_size("m", m, 1)
    return _surjections(m, r) if m >= r else 0


def count_global_minima_subspaces(r: int, m: int, *, zero_sum_groups: bool = False) -> int:
    """T(r, m): affine subspaces forming the zero-loss manifold of a width-m student of a width-r teacher.

    Default convention: subspaces built from duplicate neurons (incoming weights equal to a teacher
    neuron's, outgoing weights summing to the teacher's) and zero-type neurons (outgoing weight 0,
    incoming weights free); T(r, m) = r! S(m + 1, r + 1) = sum_j (-1)^j C(r, j) (r + 1 - j)^m.

    ``zero_sum_groups=True`` also counts groups of >= 2 neurons sharing free incoming weights whose
    outgoing weights sum to 0: T'(r, m) = sum_{i=r}^{m} C(m, i) r! S(i, r) B(m - i). T' = T for
    m <= r + 1. Exact Python ints; 0 when m < r. See the module docstring for the derivation and
    how this relates to Şimşek et al. (ICML 2021).
    """
    _check_size("r", r, 1)
    _check_size("m", m, 1)
    if m < r:
        return 0
    if not zero_sum_groups:
        return _surjections(m, r + 1) + _surjections(m, r)  # = r! S(m+1, r+1)
    return sum(comb(m, i) * _surjections(i, r) * bell_number(m - i) for i in range(r, m + 1))


@dataclass(frozen=True)
class SubspaceKind:
    """One kind of subspace: ``count`` subspaces of dimension ``dimension``.

    ``free_groups`` is the number of groups of neurons with free incoming weights (zero-type
    neurons, or zero-sum groups with ``zero_sum_groups=True``); 0 for symmetry-induced subspaces.
    """

    family: str
    free_groups: int
    count: int
    dimension: int


def subspace_kinds(
    r: int,
    m: int,
    input_dim: int,
    *,
    family: str = "global-minima",
    zero_sum_groups: bool = False,
    bias: bool = False,
    output_dim: int = 1,
) -> list[SubspaceKind]:
    """The subspaces counted by T(r, m) (``family="global-minima"``) or G(r, m), by kind.

    Global minima: one kind per number g of free groups, g = 0..m-r, with
    count C(m, g) G(r, m - g) (zero-type neurons only) or S(m, r + g) (r + g)! / g! (with zero-sum
    groups), and dimension K (m - r - g) + g d_free, d_free = input_dim (+ 1 with ``bias``),
    K = ``output_dim``. Symmetry-induced: one kind, count G(r, m), dimension m - r.
    The counts sum to T(r, m) (T'(r, m)) or G(r, m). Empty when m < r.
    """
    _check_size("r", r, 1)
    _check_size("m", m, 1)
    _check_size("input_dim", input_dim, 1)
    _check_size("output_dim", output_dim, 1)
    if family not in FAMILIES:
        raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {family!r}")
    if m < r:
        return []
    if family == "symmetry-induced":
        return [SubspaceKind(family, 0, count_symmetry_induced_subspaces(r, m), m - r)]
    d_free = input_dim + (1 if bias else 0)
    row = stirling2_row(m) if zero_sum_groups else []
    kinds = []
    for g in range(m - r + 1):
        if zero_sum_groups:
            count = row[r + g] * factorial(r + g) // factorial(g)
        else:
            count = comb(m, g) * _surjections(m - g, r)
        kinds.append(SubspaceKind(family, g, count, output_dim * (m - r - g) + g * d_free))
    return kinds
