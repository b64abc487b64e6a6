"""The spectral-bias study: verdicts decide (and can fail) on synthetic rows, and the pipeline at
tiny size measures what it says."""

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
from symlab.experiments.spectral_bias import SpectralBiasSpec

TINY = dict(degrees=[1, 2, 3], depth=3, width=16, n_train=24, quadrature_nodes=6, steps=20, seeds=2)


def _synthetic(growth: float, noise: float = 0.02, degrees=(1, 2, 3, 4), seeds=3, depth=3):
    """Rows whose first/last eigenvalue ratio is exp(growth · k) (times lognormal noise)."""
    rng = np.random.default_rng(0)
    rows = []
    for k in degrees:
        for seed in range(seeds):
            lam = []
            for layer in range(depth):
                lam.append([np.exp(-j + (growth * j if layer == 0 else 0.0) + rng.normal(0, noise))
                            for j in degrees])  # fmt: skip
            share = np.array([lam[i][list(degrees).index(k)] for i in range(depth)])
            rows.append({"degree": k, "seed": seed, "lam_init": lam, "lam_final": lam,
                         "share_init": list(share / share.sum()), "share_final": list(share / share.sum()),
                         "train_loss": 0.01, "initial_loss": 1.0, "test_error": 0.02,
                         "diverged": False, "seconds": 1.0, "layers": ["0", "2", "4"]})  # fmt: skip
    return pd.DataFrame(rows)


def _outcomes(summary):
    return {c["name"]: c["outcome"] for c in summary.extras["claims"]}


def test_verdicts_reproduce_fail_and_abstain_on_synthetic_rows():
    study = get_experiment("spectral-bias")
    spec = SpectralBiasSpec(degrees=[1, 2, 3, 4], depth=3, seeds=3)
    assert set(_outcomes(study.summarize(_synthetic(0.5), spec)).values()) == {"reproduced"}
    opposite = study.summarize(_synthetic(-0.5), spec)
    assert set(_outcomes(opposite).values()) == {"opposite"}
    assert "OPPOSITE" in opposite.verdict
    flat = study.summarize(_synthetic(0.0, noise=0.001), spec)
    assert set(_outcomes(flat).values()) == {"not reproduced"}
    noisy = study.summarize(_synthetic(0.1, noise=1.0), spec)
    assert "inconclusive" in set(_outcomes(noisy).values())


def test_a_growth_below_the_resolution_is_not_called_reproduced():
    """A slope of 0.02 per degree, measured tightly, lies inside ±min_log_slope = 0.05 (the
    study's 'no growth at that resolution'): at most partly reproduced, never reproduced."""
    study = get_experiment("spectral-bias")
    spec = SpectralBiasSpec(degrees=[1, 2, 3, 4], depth=3, seeds=3)
    outcomes = set(_outcomes(study.summarize(_synthetic(0.02, noise=0.001), spec)).values())
    assert outcomes == {"partly reproduced"}


def test_pipeline_tiny(tmp_path):
    study = get_experiment("spectral-bias")
    spec = SpectralBiasSpec(**TINY)
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    assert len(rows) == 6 and not rows["diverged"].any()
    row = rows.iloc[0]
    assert np.array(row["lam_init"]).shape == (3, 3)
    assert sum(row["share_init"]) == pytest.approx(1.0) and min(row["share_init"]) > 0
    assert (rows["train_loss"] < rows["initial_loss"]).all()
    summary = study.summarize(rows, spec)
    assert set(_outcomes(summary)) == {
        "eigenvalue_ratio_init",
        "eigenvalue_ratio_trained",
        "share_ratio_trained",
    }
    paths = study.plot(rows, spec, tmp_path)
    assert {p.name for p in paths} >= {"spectral_bias_shares.png", "spectral_bias_eigenvalues.png"}


def test_a_diverged_run_is_flagged():
    study = get_experiment("spectral-bias")
    spec = SpectralBiasSpec(**{**TINY, "lr": 1e150, "steps": 5})
    row = study.run_job(study.expand(spec)[0])
    assert row["diverged"] is True


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "spectral-bias"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(SpectralBiasSpec.model_fields)
    SpectralBiasSpec(**values)


@pytest.mark.parametrize(
    "field, value",
    [("degrees", [1, 1, 2]), ("degrees", [0, 1, 2]), ("degrees", [1, 2]), ("dim", 1)],
)
def test_bad_spec_fields_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        SpectralBiasSpec(**{**TINY, field: value})


def test_jobs_run_seed_by_seed():
    """A sweep stopped part-way has every target degree of its first seeds."""
    study = get_experiment("spectral-bias")
    jobs = study.expand(SpectralBiasSpec(degrees=[1, 2, 3], seeds=2))
    assert [(j["seed"], j["degree"]) for j in jobs] == [
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 1),
        (1, 2),
        (1, 3),
    ]
