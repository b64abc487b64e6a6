"""Batch functional dimension: symlab's route vs the Gram GEMM alone and the generic route.

symlab route: ``batch_functional_dimension(model, x, compress_regions=False)`` = closed-form
MLP Jacobian (float64) + row scaling + one dropped scaling column per hidden neuron +
``numerical_rank(method="auto")``: Gram by BLAS dsyrk, then the certified Schur route of
:mod:`symlab.linalg.schur_rank` (left-looking Cholesky of G - mu I with deferred columns, Haynsworth inertia of the small
Schur complement, refined null basis, certificate) and, only when that does not certify, the
tridiagonal route (SciPy dsytrd) and the SVD.

Gram GEMM alone: ``gram_lower(J)`` (dsyrk, m n^2 flops) on the same closed-form Jacobian J, in
the same process, interleaved with the other timings; "rank/Gram" = ``numerical_rank(J)`` /
Gram on that same J (the FD's own matrix has the D - #hidden columns left after the scaling
drop, so "FD/Gram" divides by a Gram about 4-8 % larger than the FD's own one). "FD/JtJ":
the FD over the full Gram GEMM ``J.T @ J`` (torch's matmul, 2 m n^2 flops) on the same J, timed
in the same loop: the Gram as one GEMM computes it; dsyrk computes only its lower half, so
"FD/Gram" is the stricter ratio. ``--clock cpu`` times this process's CPU seconds instead of
wall time (one thread: on a machine shared with other jobs the wall time also counts the time
other processes held the core). Per-step
breakdown of the fastest FD call (each step timed inside that call: J, row and column scaling,
Gram, lambda_max, Cholesky with the Schur complement, certificate, the rest), and "FD / its own
Gram step": the FD's time over its own Gram's, both from the same call (immune to load changes
between calls, which on a shared machine move "FD/Gram" by tens of percent).

generic route (an autodiff Jacobian and an SVD rank, as ``torch.linalg.matrix_rank``):
``torch.func`` ``vmap(jacrev)`` Jacobian in float64 + ``torch.linalg.svdvals`` + tol =
sigma_max max(m, n) eps; each part the fastest of ``--repeats`` calls, as the FD (one call
before 2026-12-07: on a shared machine the ratio then moved with the load of that one call,
and the first case paid torch.func's first-call set-up).

Peak: the GFLOP/s of one n = 3000 float64 matmul (torch, MKL) in the same process, 1 thread;
"% peak" = (m n^2 Gram flops) / (FD time) / peak: the share of the machine's float64 limit the
route reaches against the one unavoidable GEMM.

``--gram-variants``: the Gram of the same J also by :func:`blocked_gram` (torch GEMMs per block
row, lower triangle only) with 256, 512 and 1024 columns per block, next to dsyrk and the full
GEMM, interleaved.

Run: ``python benchmarks/bench_fdim.py`` (``--large`` adds (20,64,64,64,64,64,1) on 20000
points; ``--device cuda`` runs the symlab route and the Gram on the GPU when there is one).
Prints per case the times, the ratios, the route taken, and checks the ranks are identical.

``--regions``: adaptive mode (no inputs, ``--sampler``, default multiscale) on the hidden-symmetries study's
deep cells (n0 = width in {5, 10}, depth 4-6, seeds 0-2), region compression against the
uncompressed route: rank, stop reason, candidates |Z|, Jacobian rows (points differentiated),
activation regions met, time. "plain" = ``compress_regions=False`` (default max_points 8 x
start), "plain@40k" and "comp@40k" = both with max_points 40000 (the same candidates, so the
ranks must agree: checked), "comp" = compressed with its default max_points (128 x start).
"""

from __future__ import annotations

import argparse
import functools
import time

import torch
from threadpoolctl import threadpool_limits

import symlab.linalg.rank as rank_module
import symlab.linalg.schur_certificate as certificate_module
import symlab.linalg.schur_rank as schur_module
import symlab.symmetry.scaled_jacobian as scaled_module
from symlab.linalg import numerical_rank, parameter_jacobian
from symlab.linalg.schur_rank import gram_lower
from symlab.nets import mlp
from symlab.symmetry.adaptive_dimension import functional_dimension
from symlab.symmetry.batch_dimension import batch_functional_dimension, fd_bound

SCHUR_OUTCOMES: list[bool] = []  # per call of the Schur route: did it certify?
STEP_TIMES: dict[str, float] = {}  # seconds per step of the last timed FD (see ``_timed_step``)


def _timed_step(name, fn):
    """fn, its time added to STEP_TIMES[name] (only while not nested in another timed step)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = CLOCK()
        try:
            return fn(*args, **kwargs)
        finally:
            STEP_TIMES[name] = STEP_TIMES.get(name, 0.0) + CLOCK() - start

    return wrapper


def _recording_schur(*args, **kwargs):
    result = _schur(*args, **kwargs)
    SCHUR_OUTCOMES.append(result is not None)
    return result


# the route's own functions, recorded and timed where they are looked up
_schur = schur_module.schur_certified_rank
rank_module.schur_certified_rank = _recording_schur
scaled_module.parameter_jacobian = _timed_step("J", scaled_module.parameter_jacobian)
scaled_module.closed_form_factors = _timed_step("J", scaled_module.closed_form_factors)
scaled_module.ScaledJacobian.__call__ = _timed_step(
    "J+scale", scaled_module.ScaledJacobian.__call__
)
rank_module.gram_lower = _timed_step("Gram", rank_module.gram_lower)
schur_module.lanczos_lambda_max = _timed_step("lambda_max", schur_module.lanczos_lambda_max)
schur_module.deferred_cholesky = _timed_step("Cholesky", schur_module.deferred_cholesky)
schur_module.pivoted_cholesky = _timed_step("Cholesky", schur_module.pivoted_cholesky)
certificate_module.NullRefinement.norm_bound = _timed_step(
    "certificate", certificate_module.NullRefinement.norm_bound
)


def step_breakdown() -> dict[str, float]:
    """STEP_TIMES as the table's steps (J: the Jacobian, or for an MLP its factors; scaling:
    the rest of the scaled Jacobian, for an MLP writing its kept columns)."""
    t = dict(STEP_TIMES)
    return {
        "J": t.get("J", 0.0),
        "scale": t.get("J+scale", 0.0) - t.get("J", 0.0),
        "Gram": t.get("Gram", 0.0),
        "lambda_max": t.get("lambda_max", 0.0),
        "Cholesky": t.get("Cholesky", 0.0),
        "certificate": t.get("certificate", 0.0),
    }


CASES = [
    ((10, 30, 30, 30, 30, 1), 4000),
    ((5, 20, 20, 20, 2), 1500),
    ((20, 50, 50, 1), 4000),
]
LARGE = [((20, 64, 64, 64, 64, 64, 1), 20000)]


CLOCK = time.perf_counter  # --clock cpu: time.process_time (this process's CPU seconds)


def timed(fn, repeats: int = 1):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = CLOCK()
        out = fn()
        best = min(best, CLOCK() - start)
    return best, out


def blocked_gram(tall: torch.Tensor, block: int) -> torch.Tensor:
    """The lower triangle of T^T T by torch GEMMs (MKL on x86 wheels), one block row of
    ``block`` columns at a time against the columns up to its diagonal: m n^2 (1 + block / n)
    flops instead of a full GEMM's 2 m n^2 (the alternative to SciPy's dsyrk measured by
    ``--gram-variants``)."""
    n = tall.shape[1]
    out = torch.empty(n, n, dtype=tall.dtype, device=tall.device)
    for start in range(0, n, block):
        stop = min(n, start + block)
        torch.matmul(tall[:, start:stop].T, tall[:, :stop], out=out[start:stop, :stop])
    return out


GRAM_BLOCKS = (256, 512, 1024)


def _summed(call) -> float:
    return call().sum().item()  # .item(): waits for a GPU


def gram_variants(jac: torch.Tensor, repeats: int) -> dict[str, float]:
    """Best times of the Gram by dsyrk, by the full GEMM and by ``blocked_gram``, interleaved."""
    full = torch.tril(jac.T @ jac)
    for block in GRAM_BLOCKS:  # the same lower triangle, to rounding
        error = float((torch.tril(blocked_gram(jac, block)) - full).abs().max())
        if error > 1e-12 * float(full.diagonal().max()):
            raise SystemExit(f"blocked_gram({block}) differs from J^T J by {error:.3g}")
    best: dict[str, float] = {}
    calls = {"dsyrk": lambda: gram_lower(jac), "J^T J": lambda: jac.T @ jac}
    for block in GRAM_BLOCKS:
        calls[f"blocked {block}"] = functools.partial(blocked_gram, jac, block)
    for _ in range(repeats):
        for name, call in calls.items():
            seconds = timed(functools.partial(_summed, call))[0]
            best[name] = min(best.get(name, float("inf")), seconds)
    return best


def gemm_peak(device: str, size: int = 3000, repeats: int = 3) -> float:
    """GFLOP/s of one size^3 float64 matmul (best of ``repeats``)."""
    a = torch.randn(size, size, dtype=torch.float64, device=device)
    a @ a  # warm-up
    t, _ = timed(lambda: (a @ a).sum().item(), repeats)
    return 2 * size**3 / t / 1e9


def run_case(widths, n_points, repeats, device, generic=True):
    model = mlp(widths, "relu", init="he", bias_std=0.1, seed=0).to(device)
    x = torch.randn(
        n_points, widths[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64
    ).to(device)
    jac = parameter_jacobian(model, x, method="closed_form", dtype=torch.float64)
    t_gram = t_gemm = t_rank = t_fd = t_jac = float("inf")
    fd = rank = None
    for _ in range(repeats):  # interleaved: the same load for each step
        t_jac = min(
            t_jac,
            timed(lambda: parameter_jacobian(model, x, method="closed_form", dtype=torch.float64))[
                0
            ],
        )
        t_gram = min(t_gram, timed(lambda: gram_lower(jac).sum().item())[0])
        t_gemm = min(t_gemm, timed(lambda: (jac.T @ jac).sum().item())[0])
        t, rank = timed(lambda: numerical_rank(jac))
        t_rank = min(t_rank, t)
        SCHUR_OUTCOMES.clear()
        STEP_TIMES.clear()
        t, fd = timed(lambda: batch_functional_dimension(model, x, compress_regions=False))
        if t < t_fd:
            t_fd, steps = t, step_breakdown()
        route = "Schur" if SCHUR_OUTCOMES == [True] else "tridiagonal/SVD fallback"
    out = {
        "widths": widths,
        "N": n_points,
        "D": sum(p.numel() for p in model.parameters()),
        "bound": fd_bound(widths),
        "rank_symlab": fd.rank,
        "rank_auto_on_raw_J": rank.rank,
        "method": f"{fd.method} ({route})",
        "certificate": fd.certificate,
        "gap_symlab": fd.gap,
        "t_jac": t_jac,
        "t_gram": t_gram,
        "t_gemm": t_gemm,
        "t_rank": t_rank,
        "t_symlab": t_fd,
        "gram_flops": jac.shape[0] * jac.shape[1] ** 2,
        "steps": steps,
    }
    if generic:
        cpu_model, cpu_x = model.cpu(), x.cpu()
        t_generic_jac = t_svd = float("inf")
        for _ in range(repeats):  # the fastest of as many calls as the FD had
            t, gjac = timed(lambda: parameter_jacobian(cpu_model, cpu_x, method="generic"))
            t_generic_jac = min(t_generic_jac, t)
            t, svd = timed(functools.partial(numerical_rank, gjac, method="svd"))
            t_svd = min(t_svd, t)
        out.update(
            rank_generic=svd.rank,
            gap_generic=svd.gap,
            t_generic_jac=t_generic_jac,
            t_svd=t_svd,
            t_generic=t_generic_jac + t_svd,
        )
    return out


REGION_CELLS = [(n0, depth) for n0 in (5, 10) for depth in (4, 5, 6)]
REGION_RUNS = {
    "plain": {"compress_regions": False},
    "plain@40k": {"compress_regions": False, "max_points": 40000},
    "comp@40k": {"max_points": 40000},
    "comp": {},
}


def run_regions(seeds: int, sampler: str) -> None:
    print(
        f"{'widths':<24}{'seed':>5}{'bound':>6}  "
        + "  ".join(f"{name + ' rank/stop/|Z|/rows/regions/s':<44}" for name in REGION_RUNS)
    )
    totals = {name: [0.0, 0, 0] for name in REGION_RUNS}  # seconds, rows, rank sum
    for n0, depth in REGION_CELLS:
        widths = (n0,) + (n0,) * depth + (1,)
        for seed in range(seeds):
            model = mlp(widths, "relu", init="he", bias_std=0.1, seed=seed)
            results = {}
            for name, kwargs in REGION_RUNS.items():
                call = functools.partial(
                    functional_dimension, model, seed=seed, sampler=sampler, **kwargs
                )
                t, fd = timed(call)
                results[name] = fd
                totals[name][0] += t
                totals[name][1] += len(fd.points)
                totals[name][2] += fd.rank
                results[name + " t"] = t
            if results["plain@40k"].rank != results["comp@40k"].rank:
                raise SystemExit("compressed and plain ranks differ on the same candidates")
            cells = []
            for name in REGION_RUNS:
                fd = results[name]
                cells.append(
                    f"{fd.rank}/{fd.saturated[:4]}/{fd.n_points}/{len(fd.points)}/"
                    f"{fd.regions if fd.regions is not None else '-'}/{results[name + ' t']:.2f}"
                )
            print(
                f"{str(widths):<24}{seed:>5}{fd.bound:>6}  " + "  ".join(f"{c:<44}" for c in cells),
                flush=True,
            )
    for name, (t, rows, ranks) in totals.items():
        print(f"total {name:<10} time {t:8.2f} s, Jacobian rows {rows:>8}, sum of ranks {ranks}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="also run the large case")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--regions", action="store_true", help="only the region-compression runs")
    parser.add_argument("--seeds", type=int, default=3, help="networks per cell for --regions")
    parser.add_argument("--sampler", default="multiscale", help="input sampler for --regions")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--no-generic", action="store_true", help="skip the generic route")
    parser.add_argument(
        "--gram-variants",
        action="store_true",
        help="also time the Gram by blocked torch GEMMs (lower triangle) against dsyrk",
    )
    parser.add_argument(
        "--clock",
        default="wall",
        choices=("wall", "cpu"),
        help="wall: perf_counter; cpu: this process's CPU seconds (steadier on a shared machine)",
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    if args.regions:
        print(f"torch {torch.__version__}, {args.threads} threads (torch and BLAS)")
        with threadpool_limits(limits=args.threads):
            run_regions(args.seeds, args.sampler)
        return
    cases = CASES + (LARGE if args.large else [])
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available on this machine")
    print(
        f"torch {torch.__version__}, {args.threads} threads (torch and BLAS), {args.device}, "
        f"{args.clock} clock"
    )
    print(f"torch BLAS/LAPACK: {blas_of_torch()}; SciPy BLAS/LAPACK: {blas_of_scipy()}")
    print(
        "LAPACK per step: Gram dsyrk = SciPy's; lambda_max dsymv = SciPy's; Cholesky up to "
        f"{schur_module.WHOLE_PIVOTING_MAX} columns: one dpstrf = SciPy's; beyond: GEMM and "
        "dpotrf = torch's, trsm and the pivoted 256-blocks' dpstrf = SciPy's; Schur eigh = "
        "torch's; certificate GEMMs = NumPy's; fallback dsytrd = SciPy's"
    )
    header = (
        f"{'widths':<26}{'N':>6}{'D':>6}{'bound':>6}{'rank':>6}{'same':>5}{'J':>7}{'Gram':>7}"
        f"{'rank':>7}{'FD':>7}{'generic':>8}{'FD/Gram':>8}{'FD/JtJ':>7}{'rank/Gram':>10}"
        f"{'gen/FD':>7}"
        f"{'%peak':>6}"
    )
    with threadpool_limits(limits=args.threads):
        peak = gemm_peak(args.device)
        print(f"float64 GEMM limit (3000^3 matmul, same process): {peak:.1f} GFLOP/s")
        print(header)
        for widths, n_points in cases:
            r = run_case(widths, n_points, args.repeats, args.device, generic=not args.no_generic)
            same = (
                r["rank_symlab"]
                == r["rank_auto_on_raw_J"]
                == r.get("rank_generic", r["rank_symlab"])
            )
            generic = r.get("t_generic", float("nan"))
            print(
                f"{str(widths):<26}{r['N']:>6}{r['D']:>6}{r['bound']:>6}{r['rank_symlab']:>6}"
                f"{'yes' if same else 'NO':>5}{r['t_jac']:>7.2f}{r['t_gram']:>7.2f}"
                f"{r['t_rank']:>7.2f}{r['t_symlab']:>7.2f}{generic:>8.2f}"
                f"{r['t_symlab'] / r['t_gram']:>8.2f}{r['t_symlab'] / r['t_gemm']:>7.2f}"
                f"{r['t_rank'] / r['t_gram']:>10.2f}"
                f"{generic / r['t_symlab']:>7.1f}"
                f"{100 * r['gram_flops'] / r['t_symlab'] / 1e9 / peak:>6.0f}",
                flush=True,
            )
            print(
                f"    rank method {r['method']}, certificate {r['certificate']}, gap symlab "
                f"{r['gap_symlab']:.3g} (certified lower bound) / generic "
                f"{r.get('gap_generic', float('nan')):.3g}; Gram at "
                f"{r['gram_flops'] / r['t_gram'] / 1e9:.1f} GFLOP/s"
            )
            steps = r["steps"]
            other = r["t_symlab"] - sum(steps.values())
            print(
                "    FD steps (s): "
                + ", ".join(f"{name} {value:.3f}" for name, value in steps.items())
                + f", other {other:.3f}; FD / its own Gram step {r['t_symlab'] / steps['Gram']:.2f}"
            )
            if args.gram_variants:
                model = mlp(widths, "relu", init="he", bias_std=0.1, seed=0).to(args.device)
                x = torch.randn(
                    n_points,
                    widths[0],
                    generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64,
                ).to(args.device)
                jac = parameter_jacobian(model, x, method="closed_form", dtype=torch.float64)
                variants = gram_variants(jac, args.repeats)
                print(
                    "    Gram variants (s): "
                    + ", ".join(f"{name} {value:.3f}" for name, value in variants.items())
                )
            if not same:
                raise SystemExit("ranks differ between routes")


def blas_of_torch() -> str:
    config = torch.__config__.show()
    mkl = "MKL" if "Math Kernel Library" in config else "?"
    lapack = "LAPACK_INFO=mkl" in config
    return f"{mkl} (LAPACK {'MKL' if lapack else 'other'})"


def blas_of_scipy() -> str:
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS)
    from threadpoolctl import threadpool_info

    found = [
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})"
        for i in threadpool_info()
        if "scipy" in i.get("filepath", "") and i.get("user_api") == "blas"
    ]
    return ", ".join(found) or "?"


if __name__ == "__main__":
    main()
