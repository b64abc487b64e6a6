"""The leaky-resnet study: verdicts decide on synthetic rows (and can fail), the pipeline at tiny
size with every step rule, and the presets."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import symlab
from symlab.engine.experiment import get_experiment
from symlab.experiments.leaky_resnet import LeakyResNetSpec

TINY = dict(effective_depths=[1.0, 3.0], depth=5, width=8, n_train=40, n_test=40, steps=60,
            refine_steps=20, adapt_every=10, seeds=2, teacher_hidden=16,
            claim_min_effective_depth=3.0)  # fmt: skip


def _synthetic(dimension, adaptive_factor, seeds=4, noise=0.01):
    rng = np.random.default_rng(0)
    rows = []
    for lt in (2.0, 6.0):
        for seed in range(seeds):
            base = 0.3 + 0.05 * seed
            for rule, factor in (
                ("equidistant", 1.0),
                ("irregular", 0.99),
                ("adaptive", adaptive_factor),
            ):
                rows.append(
                    {
                        "effective_depth": lt, "step_rule": rule, "seed": seed, "diverged": False,
                        "bottleneck_dim": dimension if lt >= 5 else 20, "bottleneck_dim_low": dimension + 1,
                        "bottleneck_dim_high": dimension, "hamiltonian_rank_median": dimension - 0.3,
                        "hamiltonian_spread": 0.1, "coi_min": dimension + 0.2, "train_error": 0.05,
                        "test_error": base * factor * np.exp(rng.normal(0, noise)), "grad_norm": 1e-3,
                        "seconds": 1.0,
                    }
                )  # fmt: skip
    return pd.DataFrame(rows)


def _outcomes(summary):
    return {c["name"]: c["outcome"] for c in summary.extras["claims"]}


def test_verdicts_reproduce_fail_and_abstain_on_synthetic_rows():
    study = get_experiment("leaky-resnet")
    spec = LeakyResNetSpec(effective_depths=[2.0, 6.0], claim_min_effective_depth=5.0)
    good = _outcomes(study.summarize(_synthetic(3, 0.97), spec))
    assert good == {"bottleneck_dimension": "reproduced", "adaptive_steps": "reproduced",
                    "irregular_steps": "reproduced", "hamiltonian": "reproduced"}  # fmt: skip
    bad = _outcomes(study.summarize(_synthetic(5, 1.3), spec))
    assert bad["bottleneck_dimension"] == "not reproduced"
    assert bad["adaptive_steps"] == "not reproduced"  # 30% worse, beyond the 5% margin
    assert bad["hamiltonian"] == "not reproduced"  # estimate 4.7 against k* = 3
    noisy = _outcomes(study.summarize(_synthetic(3, 1.03, noise=0.2), spec))
    assert noisy["adaptive_steps"] == "inconclusive"


def test_pipeline_tiny(tmp_path):
    study = get_experiment("leaky-resnet")
    spec = LeakyResNetSpec(**TINY)
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    assert len(rows) == 12 and not rows["diverged"].any()
    adaptive = rows[rows["step_rule"] == "adaptive"].iloc[0]
    assert adaptive["steps_history_at"][:2] == [0, 10] and len(adaptive["steps_final"]) == 5
    assert sum(adaptive["steps_final"]) == pytest.approx(1.0)
    assert adaptive["steps_final"] != [0.2] * 5  # the rule moved the steps
    equidistant = rows[rows["step_rule"] == "equidistant"].iloc[0]
    assert equidistant["steps_final"] == pytest.approx([0.2] * 5)
    assert len(equidistant["coi"]) == len(equidistant["hamiltonian_rank"]) == 6  # A_0 … A_5
    assert equidistant["bottleneck_dim"] == min(equidistant["rank_profile"][:4])
    summary = study.summarize(rows, spec)
    assert set(_outcomes(summary)) == {
        "bottleneck_dimension", "adaptive_steps", "irregular_steps", "hamiltonian"
    }  # fmt: skip
    paths = study.plot(rows, spec, tmp_path)
    assert {p.name for p in paths} >= {"leaky_resnet_spectra.png", "leaky_resnet_steps.png"}
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "leaky-resnet"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(LeakyResNetSpec.model_fields)
    LeakyResNetSpec(**values)
    with pytest.raises(ValueError, match="effective_depths: expected every"):
        LeakyResNetSpec(**{**values, "effective_depths": [float(values["depth"])]})


@pytest.mark.slow
def test_quick_preset_finds_a_k_star_dimensional_bottleneck():
    """The quick preset at L̃ = 6 with equidistant steps (three seeds): the median bottleneck
    dimension is k* = 3 and the least cost of identity is near it."""
    from symlab.engine.spec import load_spec

    study = get_experiment("leaky-resnet")
    spec = load_spec("leaky-resnet", preset="quick").model_copy(
        update={"effective_depths": [6.0], "step_rules": ["equidistant"]}
    )
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    assert rows["bottleneck_dim"].median() == spec.rank
    assert 2.5 < rows["coi_min"].median() < 4.0
