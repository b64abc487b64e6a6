"""Verdict of the ``saddle-to-saddle`` study: five claims, each measured, tested and rendered.

Each claim is a :class:`Claim` (the paper's statement, what was measured, the statistic and an
outcome among "reproduced", "partly reproduced", "not reproduced", "opposite" and
"not measured"); the verdict text is their rendering, so tests check outcomes, not prose.

1. Saddle-to-saddle (Jacot et al. 2021): every small-init trace visits plateaus of rank
   0, 1, …, k − 1 in order, one each (:func:`symlab.bias.is_saddle_to_saddle`), each at the loss
   Σ_{i>r} s_i(A*)²/d² of the saddle that has learned the r largest modes (within a factor 2),
   and ends at rank k. Reproduced when all runs and levels do, partly when at least half the
   runs do.
2. Lazy at large init (Jacot et al. 2021; Tu et al. 2024): large-init traces show no plateau and
   no low-rank bias: end-point stable rank ≥ 1.5 × that of A* and test error ≥ 10 × the
   small-init runs' (medians). Opposite when large init generalizes better than small init.
3. Rank over-estimation in the lazy corner (Tu et al.): phase-diagram cells with σ²w > d have a
   median stable rank at the best test error ≥ 1.5 × sr(A*), a median numerical rank
   #{s_i > s_1/5} above k, and stable ranks above the active cells' (one-sided Mann–Whitney
   p < 0.05 when both groups have ≥ 3 cells). Opposite when their median is below the active one.
4. Rank recovery in the active/mixed region (Tu et al.): cells with γ_σ² + γ_w ≤ 1 − margin
   and σ⁴w ≤ 1: at least half have numerical rank k, and the median stable rank is within 25% of
   sr(A*). Partly when one of the two holds.
5. GD follows the self-consistent dynamics (Tu et al.) where their theory applies (γ_w > 1 and
   σ⁴w < 1): median over those cells of max_t ‖A_t^GD − A_t^SC‖_F / ‖A*‖_F ≤ ``sc_tolerance``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict

import numpy as np
import pandas as pd

from symlab.engine.experiment import Summary
from symlab.engine.verdict import Claim


def _traces(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["part"] == "trace"] if "part" in rows else rows.iloc[:0]


def _cells(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["part"] == "cell"] if "part" in rows else rows.iloc[:0]


def _per_seed(traces: pd.DataFrame, column: str) -> list:
    return [value for cell in traces[column] for value in cell]


def saddle_claim(traces: pd.DataFrame, k: int) -> Claim:
    small = traces[traces["init"] == "small"]
    parts, total, good = [], 0, 0
    for rec in small.sort_values("depth").itertuples():
        ok = [s and r == k for s, r in zip(rec.saddle_to_saddle, rec.end_rank)]
        seqs = Counter("-".join(map(str, q)) or "none" for q in rec.plateau_ranks)
        parts.append(
            f"L = {rec.depth}: {sum(ok)}/{len(ok)} runs (plateau ranks {dict(seqs)}, end ranks "
            f"{list(rec.end_rank)})"
        )
        total, good = total + len(ok), good + sum(ok)
    ratios = [
        p["loss"] / p["predicted_loss"]
        for seed in _per_seed(small, "plateaus") for p in seed if p.get("predicted_loss", 0) > 0
    ]  # fmt: skip
    levels_ok = bool(ratios) and all(0.5 <= r <= 2 for r in ratios)
    outcome = (
        "not measured" if total == 0 else "reproduced" if good == total and levels_ok
        else "partly reproduced" if 2 * good >= total else "not reproduced"
    )  # fmt: skip
    levels = (
        f"plateau loss / Σ_(i>r) s_i(A*)²/d² in [{min(ratios):.2f}, {max(ratios):.2f}] over "
        f"{len(ratios)} plateaus" if ratios else "no plateau level"
    )  # fmt: skip
    return Claim(
        "Saddle-to-saddle at small init (Jacot et al. 2021)",
        f"one loss plateau per rank 0, 1, ..., {k - 1} in this order, at the loss of the saddle "
        f"that has learned the r largest target modes, then the rank-{k} minimum",
        "; ".join(parts) + f"; {levels}" if parts else "no small-init trace",
        f"{good}/{total} runs with exactly that plateau sequence and end rank {k}; every "
        "plateau level within a factor 2 of the saddle's",
        outcome,
    )


def lazy_trace_claim(traces: pd.DataFrame) -> Claim:
    large, small = traces[traces["init"] == "large"], traces[traces["init"] == "small"]
    if large.empty or small.empty:
        return Claim("Lazy at large init", "no plateaus, no low-rank bias", "no trace", "-",
                     "not measured")  # fmt: skip
    n_plateaus = [len(p) for p in _per_seed(large, "plateaus")]
    sr_large = float(np.median(_per_seed(large, "end_stable_rank")))
    sr_star = float(np.median(large["target_stable_rank"]))
    err_large = float(np.median(_per_seed(large, "end_test_error")))
    err_small = float(np.median(_per_seed(small, "end_test_error")))
    none = sum(n == 0 for n in n_plateaus)
    holds = none == len(n_plateaus) and sr_large >= 1.5 * sr_star and err_large >= 10 * err_small
    outcome = "opposite" if err_large < err_small else "reproduced" if holds else "not reproduced"
    return Claim(
        "Lazy at large init (Jacot et al. 2021; Tu et al. 2024)",
        "no plateaus and no low-rank bias: the end point is high-rank and generalizes worse",
        f"{none}/{len(n_plateaus)} large-init runs without a plateau; end-point stable rank "
        f"{sr_large:.3g} vs {sr_star:.3g} for A*; end test error {err_large:.3g} vs "
        f"{err_small:.3g} at small init",
        "medians over runs; thresholds stable rank >= 1.5 sr(A*), test error >= 10x small init",
        outcome,
    )


def _mann_whitney_greater(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import stats

    if len(a) < 3 or len(b) < 3:
        return math.nan
    return float(stats.mannwhitneyu(a, b, alternative="greater").pvalue)


def regions(cells: pd.DataFrame, margin: float) -> tuple[pd.Series, pd.Series]:
    """(lazy, active) masks: σ²w > d; γ_σ² + γ_w ≤ 1 − margin and σ⁴w ≤ 1."""
    total = cells["gamma_sigma2"] + cells["gamma_w"]
    lazy = total > 1
    active = (total <= 1 - margin) & (2 * cells["gamma_sigma2"] + cells["gamma_w"] <= 0)
    return lazy, active


def lazy_corner_claim(cells: pd.DataFrame, k: int, margin: float) -> Claim:
    lazy, active = regions(cells, margin)
    name = "Rank over-estimation in the lazy corner (Tu et al. 2024)"
    claim = "cells with σ²w > d reach their best test error at a high-rank A"
    if not lazy.any() or not active.any():
        return Claim(name, claim, "no lazy or no active cell in the grid", "-", "not measured")
    sr_star = float(cells["target_stable_rank"].median())
    sr_lazy, sr_active = cells.loc[lazy, "stable_rank"], cells.loc[active, "stable_rank"]
    nr_lazy = float(cells.loc[lazy, "numerical_rank"].median())
    p = _mann_whitney_greater(sr_lazy.to_numpy(), sr_active.to_numpy())
    holds = sr_lazy.median() >= 1.5 * sr_star and nr_lazy > k and (math.isnan(p) or p < 0.05)
    outcome = (
        "opposite" if sr_lazy.median() < sr_active.median()
        else "reproduced" if holds else "not reproduced"
    )  # fmt: skip
    test = "too few cells for a test" if math.isnan(p) else f"one-sided Mann–Whitney p = {p:.2g}"
    return Claim(
        name,
        claim,
        f"{int(lazy.sum())} lazy cells: median stable rank {sr_lazy.median():.3g} "
        f"({sr_lazy.median() / sr_star:.2f} x sr(A*) = {sr_star:.3g}), median numerical rank "
        f"{nr_lazy:.3g} (k = {k}), median best test error "
        f"{cells.loc[lazy, 'min_test_error'].median():.3g}; {int(active.sum())} active cells: "
        f"median stable rank {sr_active.median():.3g}, best test error "
        f"{cells.loc[active, 'min_test_error'].median():.3g}",
        f"lazy vs active stable ranks, {test}; thresholds 1.5 sr(A*) and numerical rank > k",
        outcome,
    )


def active_claim(cells: pd.DataFrame, k: int, margin: float) -> Claim:
    _, active = regions(cells, margin)
    name = "Rank recovery in the active/mixed region (Tu et al. 2024)"
    claim = f"cells with γ_σ² + γ_w <= {1 - margin:g} and σ⁴w <= 1 recover the rank {k} of A*"
    if not active.any():
        return Claim(name, claim, "no active cell in the grid", "-", "not measured")
    sr_star = float(cells["target_stable_rank"].median())
    exact = int((cells.loc[active, "numerical_rank"] == k).sum())
    sr = float(cells.loc[active, "stable_rank"].median())
    rank_ok, sr_ok = 2 * exact >= int(active.sum()), abs(sr / sr_star - 1) <= 0.25
    outcome = (
        "reproduced" if rank_ok and sr_ok
        else "partly reproduced" if rank_ok or sr_ok else "not reproduced"
    )  # fmt: skip
    # how far from the active corner the rank stays exact: every cell with γ_σ² + γ_w <= reach
    total = cells["gamma_sigma2"] + cells["gamma_w"]
    wrong = total[(cells["numerical_rank"] != k) & active]
    inside = active & (total < wrong.min()) if len(wrong) else active
    reach = (
        f"rank {k} in all {int(inside.sum())} active cells with γ_σ² + γ_w <= "
        f"{total[inside].max():.2f}"
        if inside.any()
        else f"no active cell reaches rank {k}"
    )
    return Claim(
        name,
        claim,
        f"{exact}/{int(active.sum())} active cells with numerical rank #{{s_i > s_1/5}} = {k} "
        f"({reach}); median stable rank {sr:.3g} vs sr(A*) = {sr_star:.3g} ({sr / sr_star:.2f} x)",
        "count of exact ranks (threshold: half the cells) and median stable rank (within 25%)",
        outcome,
    )


def self_consistent_claim(cells: pd.DataFrame, tolerance: float) -> Claim:
    name = "GD follows the self-consistent dynamics (Tu et al. 2024)"
    claim = "where γ_w > 1 and σ⁴w < 1, A_t under GD stays close to the solution of eq. (1)"
    inside = (cells["gamma_w"] > 1) & (2 * cells["gamma_sigma2"] + cells["gamma_w"] < 0)
    if not inside.any():
        return Claim(name, claim, "no cell in the theory's region", "-", "not measured")
    dist = cells.loc[inside, "sc_distance_max"]
    outside = cells.loc[~inside, "sc_distance_max"]
    out_text = f"; outside: median {outside.median():.2g}" if len(outside) else ""
    return Claim(
        name,
        claim,
        f"{int(inside.sum())} cells: median max relative distance {dist.median():.2g} "
        f"(largest {dist.max():.2g}){out_text}",
        f"median of max_t ||A_GD - A_SC||_F / ||A*||_F, tolerance {tolerance:g}",
        "reproduced" if dist.median() <= tolerance else "not reproduced",
    )


def trace_table(traces: pd.DataFrame) -> pd.DataFrame:
    out = []
    for rec in traces.itertuples():
        seqs = Counter("-".join(map(str, q)) or "none" for q in rec.plateau_ranks)
        out.append({
            "part": "trace", "depth": rec.depth, "init": rec.init, "scale": rec.scale,
            "variance": rec.variance, "width": rec.width, "n_runs": len(rec.saddle_to_saddle),
            "n_saddle_to_saddle": int(sum(rec.saddle_to_saddle)),
            "plateau_ranks": seqs.most_common(1)[0][0],
            "n_plateaus": float(np.mean([len(p) for p in rec.plateaus])),
            "end_rank": float(np.median(rec.end_rank)),
            "stable_rank": float(np.median(rec.end_stable_rank)),
            "test_error": float(np.median(rec.end_test_error)),
            "steps": rec.n_steps, "sc_distance_max": rec.sc_distance_max,
        })  # fmt: skip
    return pd.DataFrame(out)


def cell_table(cells: pd.DataFrame, margin: float) -> pd.DataFrame:
    if cells.empty:
        return pd.DataFrame()
    lazy, active = regions(cells, margin)
    region = np.where(lazy, "lazy", np.where(active, "active", "between"))
    cols = ["min_test_error", "stable_rank", "numerical_rank", "best_step", "sc_distance_max"]
    table = cells.assign(region=region).groupby(["gamma_sigma2", "gamma_w", "region"])[cols]
    table = (
        table.median()
        .reset_index()
        .rename(
            columns={
                "min_test_error": "test_error",
                "numerical_rank": "end_rank",
                "best_step": "steps",
            }
        )
    )
    return table.assign(part="cell")


def summarize(rows: pd.DataFrame, spec) -> Summary:  # noqa: ANN001 - SaddleToSaddleSpec
    """Per-trace and per-cell table, the five claims and their rendering."""
    traces, cells = _traces(rows), _cells(rows)
    k = spec.rank
    claims = [saddle_claim(traces, k), lazy_trace_claim(traces)]
    if not cells.empty:
        claims += [
            lazy_corner_claim(cells, k, spec.active_margin),
            active_claim(cells, k, spec.active_margin),
            self_consistent_claim(cells, spec.sc_tolerance),
        ]
    table = pd.concat(
        [trace_table(traces), cell_table(cells, spec.active_margin)], ignore_index=True
    )
    setting = (
        f"d = {spec.dim}, target rank k = {k}. Traces ({spec.trace_dtype}): depths {spec.trace_depths}, "
        f"width d^{spec.trace_width_exponent:g}, completion of {spec.trace_observed:g} of the "
        f"entries of a target with s_i ∝ {spec.trace_spectrum_ratio:g}^(i-1), "
        f"{spec.trace_seeds} inits each; plateau = loss within {100 * spec.flat_fraction:g}% per "
        f"decade for >= {spec.min_decades:g} decades at a constant rank #{{s_i > "
        f"{spec.rank_threshold:g} s_k(A*)}}. Phase diagram ({spec.dtype}): {spec.gamma_sigma2_points} x "
        f"{spec.gamma_w_points} cells over γ_σ² in {list(spec.gamma_sigma2)}, γ_w in "
        f"{list(spec.gamma_w)}, noise {spec.noise:g}, {spec.phase_seeds} init(s) per cell."
    )
    verdict = setting + " " + " ".join(c.sentence() for c in claims)
    extras = {"claims": [asdict(c) for c in claims]}
    return Summary(table=table, verdict=verdict, extras=extras)
