"""Study critical-points at a tiny size: expand → run_job → summarize → plot, and the classifier."""

import math
from pathlib import Path

import pandas as pd
import pytest
import tomllib
import torch
from pydantic import ValidationError

import symlab
from symlab.critical.counts import count_global_minima_subspaces, count_symmetry_induced_subspaces
from symlab.critical.criticality import gradient_norm, hessian_inertia, train_to_critical
from symlab.critical.teacher_student import classify, make_teacher, two_layer
from symlab.engine.experiment import get_experiment
from symlab.experiments.critical_points import CriticalPointsSpec

CONFIGS = Path(symlab.__file__).parent / "configs" / "critical-points"
TINY = dict(
    input_dim=2, teacher_width=2, max_overparameterization=1, activations=["g", "relu"],
    teachers=1, seeds=2, n_samples=60, max_iter=300, condensation_width=20,
    condensation_steps=200, condensation_seeds=1,
)  # fmt: skip


def test_presets_validate_and_use_exactly_the_spec_fields():
    for name in ("quick", "paper", "simsek"):
        with open(CONFIGS / f"{name}.toml", "rb") as handle:
            values = tomllib.load(handle)
        assert set(values) == set(CriticalPointsSpec.model_fields)
        CriticalPointsSpec(**values)
    with pytest.raises(ValidationError):
        CriticalPointsSpec(**TINY, unknown=1)
    with pytest.raises(ValidationError):
        CriticalPointsSpec(**{**TINY, "teacher_width": 1})


def test_tiny_study_end_to_end(tmp_path):
    experiment = get_experiment("critical-points")
    spec = CriticalPointsSpec(**TINY)
    jobs = experiment.expand(spec)
    assert len(jobs) == 2 * 3 * 2 + 1  # activations × widths (1, 2, 3) × seeds + condensation
    rows = pd.DataFrame([{**job, **experiment.run_job(job)} for job in jobs])
    runs = rows[rows["kind"] == "teacher_student"]
    assert not runs["zero_loss"][runs["m"] < 2].any()  # m < r* cannot fit the teacher
    zero = runs[runs["zero_loss"]]
    assert (zero["loss"] <= 1e-10 * 10).all()
    assert set(runs["category"]) <= {
        "global minimum", "global minimum (other)", "symmetry-induced saddle",
        "symmetry-induced minimum", "other saddle", "other minimum", "not converged",
    }  # fmt: skip
    converged = runs[runs["converged"]]
    strict = converged["tier"].isin(["critical", "polished"])
    assert (converged.loc[strict, "grad_norm"] <= 1e-10).all()
    assert (converged["grad_norm"] <= 1e-6).all() and len(converged) >= len(runs) // 2
    assert ((runs["n_negative"] + runs["n_zero"] + runs["n_positive"]) == runs["m"] * 3).all()
    summary = experiment.summarize(rows, spec)
    table = summary.table
    assert len(table) == 6 and (table["runs"] == 2).all()
    for _, cell in table.iterrows():
        part = runs[(runs["activation"] == cell["activation"]) & (runs["m"] == cell["m"])]
        assert cell["fraction_zero_loss"] == part["zero_loss"].mean()
        assert cell["ci_low"] <= cell["fraction_zero_loss"] <= cell["ci_high"]
        assert cell["T(r*,m)"] == count_global_minima_subspaces(2, int(cell["m"]))
        assert cell["G(r*-1,m)"] == count_symmetry_induced_subspaces(1, int(cell["m"]))
    assert "Spearman" in summary.verdict and "Condensation" in summary.verdict
    outcomes = {c["name"]: c["outcome"] for c in summary.extras["claims"]}
    assert set(outcomes) == {"zero_loss_fraction", "zero_loss_trend", "symmetry_induced_end_points"}
    assert set(rows.loc[rows["kind"] == "teacher_student", "tier"]) <= {
        "zero loss",
        "critical",
        "polished",
        "near-critical",
        "not converged",
    }
    condensation = rows[rows["kind"] == "condensation"].iloc[0]
    assert condensation["effective_neurons_final"] <= condensation["effective_neurons_tracked"][0]
    paths = experiment.plot(rows, spec, tmp_path)
    names = {p.name for p in paths}
    for stem in ("zero_loss_fraction", "subspace_counts", "condensation"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    assert all(p.stat().st_size > 1000 for p in paths)


def _data(teacher, n=150, d=2, seed=0):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x, teacher(x).detach()


def test_classify_an_explicit_global_minimum():
    """Teacher neurons (1, 2, 3), neuron 1 split in two, one zero-type neuron: labels [1, 2, 3, 1, 0]."""
    teacher = make_teacher(2, 3, "g", seed=4)
    w, a = teacher[0].weight.detach(), teacher[2].weight.detach()[0]
    student = two_layer(
        torch.cat([w, w[:1], torch.tensor([[0.7, -0.2]], dtype=torch.float64)]),
        torch.cat([0.4 * a[:1], a[1:], 0.6 * a[:1], torch.zeros(1, dtype=torch.float64)]),
        "g",
    )
    x, y = _data(teacher)
    assert float(((student(x) - y) ** 2).mean().detach()) < 1e-28
    out = classify(student, teacher, "g", zero_loss=True, converged=True, negative=0, tol=1e-6)
    assert out["category"] == "global minimum" and out["assignment"] == [1, 2, 3, 1, 0]
    assert out["reduced_width"] == 3 and out["zero_type"] == 1 and out["zero_sum_groups"] == 0
    # zero loss is a global minimum whatever the gradient tolerance said (L >= 0)
    slow = classify(student, teacher, "g", zero_loss=True, converged=False, negative=0, tol=1e-6)
    assert slow["category"] == "global minimum"
    assert (
        classify(student, teacher, "g", zero_loss=False, converged=False, negative=0, tol=1e-6)[
            "category"
        ]
        == "not converged"
    )


def test_classify_a_split_narrow_critical_point_as_symmetry_induced():
    """A width-2 critical point of a width-3 teacher, split at α = 0.3: reduced width 2, the
    gradient stays ≤ 1e-10 and the Hessian gains a zero eigenvalue (Fukumizu & Amari 2000)."""
    teacher = make_teacher(2, 3, "g", seed=1)
    data = _data(teacher)
    narrow = two_layer(torch.randn(2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64),
                       torch.tensor([0.5, -0.5], dtype=torch.float64), "g")  # fmt: skip
    assert train_to_critical(narrow, data).converged
    w, a = narrow[0].weight.detach(), narrow[2].weight.detach()[0]
    wide = two_layer(torch.cat([w, w[:1]]), torch.cat([0.3 * a[:1], a[1:], 0.7 * a[:1]]), "g")
    assert gradient_norm(wide, data) <= 1e-10
    inertia = hessian_inertia(wide, data)
    assert inertia.zero >= hessian_inertia(narrow, data).zero + 1
    out = classify(
        wide, teacher, "g", zero_loss=False, converged=True, negative=inertia.negative, tol=1e-6
    )
    expected = "saddle" if inertia.negative > 0 else "minimum"
    assert out["category"] == f"symmetry-induced {expected}" and out["reduced_width"] == 2
    assert out["assignment"] == [-1, -1, -1]


def test_classify_relu_rescaled_duplicates_and_dead_neurons():
    """ReLU: a neuron and a positive multiple of it are duplicates; a neuron inactive on every
    input is dead (label 0), not a mismatch."""
    teacher = make_teacher(2, 2, "relu", seed=2)
    w, a = teacher[0].weight.detach(), teacher[2].weight.detach()[0]
    x, _ = _data(teacher)
    dead_w = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    x = x.clone()
    x[:, 0] = -x[:, 0].abs()  # every input has x_0 ≤ 0, so w = (1, 0) is never active
    student = two_layer(torch.cat([w, 2.0 * w[:1], dead_w]), torch.cat([0.5 * a[:1], a[1:], 0.25 * a[:1], torch.ones(1, dtype=torch.float64)]), "relu")  # fmt: skip
    out = classify(
        student, teacher, "relu", zero_loss=True, converged=True, negative=0, tol=1e-6, inputs=x
    )
    assert out["assignment"] == [1, 2, 1, 0] and out["dead"] == 1
    assert out["category"] == "global minimum"
    assert math.isclose(
        float(student(x).sum().detach()), float(teacher(x).sum().detach()), rel_tol=1e-12
    )


def test_two_layer_rejects_bad_input():
    with pytest.raises(ValueError, match="activation"):
        two_layer(torch.ones(2, 2), torch.ones(2), "sigmoid")
    with pytest.raises(ValueError, match="weights"):
        two_layer(torch.ones(2, 2), torch.ones(3), "g")


def _end_points(zero_by_h, symmetric_by_h, n=40, activation="g"):
    """Synthetic end points: per h, the first zero_by_h[h] of n runs at zero loss, the next
    symmetric_by_h[h] at symmetry-induced saddles, the rest at other saddles."""
    rows = []
    for h, (zero, symmetric) in enumerate(zip(zero_by_h, symmetric_by_h)):
        for i in range(n):
            category = (
                "global minimum" if i < zero
                else "symmetry-induced saddle" if i < zero + symmetric else "other saddle"
            )  # fmt: skip
            rows.append({"activation": activation, "h": h, "zero_loss": i < zero,
                         "category": category, "tier": "zero loss" if i < zero else "critical"})  # fmt: skip
    return pd.DataFrame(rows)


def _outcomes(runs):
    from symlab.experiments.critical_points_report import teacher_student_claims

    spec = CriticalPointsSpec(**TINY)
    return {c.name: c.outcome for c in teacher_student_claims(runs, spec)}


def test_claims_reproduced_on_end_points_that_show_them():
    outcomes = _outcomes(_end_points([10, 20, 30], [20, 15, 8]))
    assert outcomes == {
        "zero_loss_fraction": "reproduced",
        "zero_loss_trend": "reproduced",
        "symmetry_induced_end_points": "reproduced",
    }


def test_claims_not_reproduced_on_end_points_that_do_not_show_them():
    outcomes = _outcomes(_end_points([40, 40, 40], [0, 0, 0]))
    assert outcomes == {
        "zero_loss_fraction": "not reproduced",
        "zero_loss_trend": "not reproduced",
        "symmetry_induced_end_points": "not reproduced",
    }
    assert _outcomes(_end_points([30, 20, 10], [1, 0, 0]))["zero_loss_trend"] == "opposite"
    assert set(_outcomes(_end_points([40], [0], activation="relu")).values()) == {"not measured"}


def test_critical_tier_polishes_a_near_critical_point_and_refuses_a_far_one():
    from symlab.critical.criticality import CriticalPoint
    from symlab.experiments.critical_points import critical_tier
    from symlab.train import loss_and_grad_norm

    torch.manual_seed(0)
    teacher = make_teacher(2, 3, "g", 0)
    x = torch.randn(60, 2, dtype=torch.float64)
    y = teacher(x).detach()
    student = two_layer(torch.randn(2, 2, dtype=torch.float64),
                        torch.randn(2, dtype=torch.float64), "g")  # fmt: skip
    assert train_to_critical(student, (x, y), tol=1e-12).converged  # m = 2 < r*: positive loss
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1e-8 * torch.randn_like(p))
    loss, grad = loss_and_grad_norm(student, (x, y))
    assert 1e-10 < grad <= 1e-6
    near = CriticalPoint(False, loss, grad, 0, 0)
    tier, _, polished, steps = critical_tier(student, (x, y), near, False, 1e-10, 1e-6)
    assert (tier, steps > 0) == ("polished", True) and polished <= 1e-10
    far = CriticalPoint(False, loss, 1e-3, 0, 0)
    assert critical_tier(student, (x, y), far, False, 1e-10, 1e-6)[0] == "not converged"
    assert critical_tier(student, (x, y), far, True, 1e-10, 1e-6)[0] == "zero loss"
