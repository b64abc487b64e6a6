"""The refused Schur counts of the paper-preset slice: would another shift or the block route decide?

The adaptive functional dimension (hidden-symmetries study: ReLU, He init, bias_std 0.1, one
output, seed 0, multiscale sampler, max_points 40000) of the networks whose certified count is
refused at some doubling (an eigenvalue of the Schur complement within its rounding margin of 0,
i.e. an eigenvalue of the Gram at the shift mu = SHIFT_MARGIN (tol^2 + e)); after a refusal the
loop takes the eigenvalue route and its rank comes from the SVD of the scaled rows.

Per network: each refusal met in the loop (rows x columns, kept and pending columns, mu, the
margin, and how many Gram eigenvalues lie within a factor 2 of mu: a continuum there leaves no
shift clear of it), then, on the scaled rows of the final sample (the loop's representatives),
the SVD rule's rank and its time against the Schur route at shift margins 2 (the default), 4 and
16: the count, then its certificate, then :func:`symlab.linalg.block_rank.block_rank` (the rank
it decides, or "declined"), with the CPU seconds of count + certificate + block. A larger margin
is as sound as the default (any mu >= tol^2 + e keeps sigma_r > tol); it only counts fewer
eigenvalues and leaves more to the certificate or the block.

Run: PYTHONPATH=. python benchmarks/bench_refused_counts.py [--cells 2,20,5 2,20,6]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import symlab.linalg.schur_rank as schur_module
import symlab.symmetry.adaptive_dimension as adaptive
from symlab.linalg.block_rank import block_rank
from symlab.linalg.deferred_cholesky import deferred_cholesky, symmetric_from_lower
from symlab.linalg.rank import GAP_THRESHOLD, equilibrate_columns, rank_from_singular_values
from symlab.linalg.schur_rank import gram_lower, scale_lower, schur_certify
from symlab.nets import mlp
from symlab.symmetry import functional_dimension
from symlab.symmetry.scaled_jacobian import ScaledJacobian

MARGINS = (2.0, 4.0, 16.0)
_EPS = float(torch.finfo(torch.float64).eps)
_count = schur_module.schur_count


def _refusal(gram: torch.Tensor, shape: tuple[int, int]) -> str:
    """What the refused count saw (recomputed the way schur_count does)."""
    m, n_all = shape
    lam_max = schur_module.lanczos_lambda_max(gram)
    tol = math.sqrt(lam_max) * max(m, n_all) * _EPS
    rounding = (m + gram.shape[0]) * _EPS / 2 * float(gram.diagonal().sum())
    shift = schur_module.SHIFT_MARGIN * (tol * tol + rounding)
    _, kept, pending, _ = deferred_cholesky(
        gram, shift, schur_module.PIVOT_STOP, schur_module.DEFER_STOP
    )
    margin = schur_module.INERTIA_MARGIN * len(pending) * (len(kept) + 2) * _EPS / 2
    eigenvalues = torch.linalg.eigvalsh(symmetric_from_lower(gram))
    near = int(((eigenvalues > shift / 2) & (eigenvalues < 2 * shift)).sum())
    return (
        f"{m} x {n_all}: kept {len(kept)}, pending {len(pending)}, mu {shift:.3g}, "
        f"margin {margin:.3g}, Gram eigenvalues in [mu/2, 2 mu]: {near}"
    )


def run_cell(n0: int, width: int, depth: int) -> None:
    model = mlp([n0] + [width] * depth + [1], init="he", bias_std=0.1, seed=0, dtype=torch.float64)
    refusals: list[str] = []

    def recording(gram, shape, tol):
        count = _count(gram, shape, tol)
        if count is None:
            refusals.append(_refusal(gram, shape))
        return count

    adaptive.schur_count = recording
    try:
        start = time.process_time()
        fd = functional_dimension(model, sampler="multiscale", seed=0, max_points=40000)
        seconds = time.process_time() - start
    finally:
        adaptive.schur_count = _count
    print(
        f"({n0}, {width}, {depth}): rank {fd.rank}, upper {fd.upper}, {fd.saturated}, "
        f"{fd.method}, {len(fd.points)} points differentiated, {seconds:.1f} CPU s"
    )
    for refusal in refusals:
        print(f"    refused count at {refusal}")
    rows = ScaledJacobian(model, True)(fd.points).contiguous()
    m, n = rows.shape
    start = time.process_time()
    values = torch.linalg.svdvals(equilibrate_columns(rows))
    svd = rank_from_singular_values(values, (m, n))
    print(
        f"    final sample {m} x {n}: SVD rule rank {svd.rank} (gap {svd.gap:.3g}), "
        f"{time.process_time() - start:.2f} CPU s"
    )
    gram = gram_lower(rows)
    norms = gram.diagonal().sqrt()
    keep = norms > norms.max() * max(m, n) * _EPS
    inverse = torch.where(keep, 1 / norms, torch.zeros_like(norms))
    scale_lower(gram, inverse, out=gram)
    default = schur_module.SHIFT_MARGIN
    for margin in MARGINS:
        schur_module.SHIFT_MARGIN = margin
        try:
            start = time.process_time()
            count = _count(gram, (m, n), None)
            if count is None:
                outcome = "count refused"
            else:
                result = schur_certify(count, rows, inverse, None)
                route = "certificate"
                if result is None or not result[2] >= GAP_THRESHOLD:
                    result = block_rank(count, rows, inverse, None, GAP_THRESHOLD)
                    route = "block"
                decided = (
                    "declined" if result is None else f"rank {result[0]} (gap {result[2]:.3g})"
                )
                outcome = f"count {count.rank}, pending {len(count.pending)}, {route}: {decided}"
            print(
                f"    shift margin {margin:>4}: {outcome}, {time.process_time() - start:.2f} CPU s"
            )
        finally:
            schur_module.SHIFT_MARGIN = default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["2,20,5", "2,20,6"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; CPU seconds")
    for cell in args.cells:
        n0, width, depth = (int(part) for part in cell.split(","))
        run_cell(n0, width, depth)


if __name__ == "__main__":
    main()
