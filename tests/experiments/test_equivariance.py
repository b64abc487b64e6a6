"""The equivariance study: coupled runs equal to rounding when the learner is equivariant and far
apart when it is not; the orbit test accepts f vs f∘g and rejects two different targets; degree
profiles from the Walsh expansion; the pipeline at tiny size; the presets."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import symlab
from symlab.boolean.targets import monomial_target
from symlab.engine.experiment import get_experiment
from symlab.experiments.equivariance import (
    EquivarianceSpec,
    coupled_runs,
    degree_profile,
    orbit_target,
)
from symlab.experiments.equivariance_report import cell_tests, lowest_degree, orbit_checks

EXACT = dict(
    exact_dim=6, exact_width=8, exact_samples=40, exact_steps=25, exact_batch=8, exact_lr=0.05,
    noise_std=0.02, sigmoid_shift=1.5, exact_seeds=1,
)  # fmt: skip


@pytest.mark.parametrize(
    "method, group, architecture, equivariant",
    [
        ("sgd", "signed_permutation", "fc", True),
        ("adam", "signed_permutation", "fc", True),
        ("noisy_gd", "rotation", "fc", True),
        ("sgd", "rotation", "fc", True),
        ("adam", "rotation", "fc", False),  # an elementwise update does not commute with rotations
        ("sgd", "signed_permutation", "masked", False),
    ],
)
def test_coupled_runs_agree_to_rounding_exactly_when_training_is_equivariant(
    method, group, architecture, equivariant
):
    params = {"method": method, "group": group, "architecture": architecture, **EXACT}
    out = coupled_runs(params, seed=0)
    assert out["moved"] > 0.05  # the runs did train
    if equivariant:
        assert out["discrepancy"] < 1e-12 and out["function_discrepancy"] < 1e-10
    else:
        assert out["discrepancy"] > 1e-3
    if method == "noisy_gd":  # the same draws, not moved by g: equal in law only
        assert out["discrepancy_independent_noise"] > 1e-3


def test_degree_profile_and_weak_degree():
    mixed = monomial_target([[1, 2, 3], [4]], [1.0, 0.5])
    assert degree_profile(mixed) == {"1": 0.25, "3": 1.0}
    assert lowest_degree(degree_profile(mixed)) == 1
    f, fg = orbit_target("parity3", 10, "f∘g")
    assert f.supports == (frozenset({1, 2, 3}),) and len(fg.supports[0]) == 3
    assert abs(fg.coefficients[0]) == 1.0


def _spec(**changes):
    values = dict(
        methods=["sgd"], groups=["signed_permutation"], architectures=["fc", "masked"],
        orbit_dims=[6, 9], orbit_targets=["parity2", "mixed"], orbit_seeds=5, width=32,
        batch=16, n_records=25, test_size=1024, **EXACT,
    )  # fmt: skip
    return EquivarianceSpec(**{**values, **changes})


def test_pipeline_tiny_and_the_orbit_check_can_fail(tmp_path):
    spec = _spec()
    study = get_experiment("equivariance")
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    summary = study.summarize(rows, spec)
    outcomes = {c["name"]: c["outcome"] for c in summary.extras["claims"]}
    assert outcomes["exact:signed_permutation"] == "reproduced"
    assert outcomes["exact:masked"] == "reproduced"
    assert outcomes["orbit:equal_in_law"] in {"reproduced", "inconclusive"}
    assert {"weak:parity2", "weak:mixed", "orbit_size:parity2"} <= set(outcomes)
    paths = study.plot(rows, spec, tmp_path)
    assert {p.name for p in paths} >= {"equivariance_exact.png", "equivariance_orbits.png"}
    # relabel: "f∘g" of parity2 replaced by the runs of another target → the test must reject
    orbit = rows[rows["part"] == "orbit"].astype({"d": int}).copy()
    swapped = orbit[(orbit["target"] == "parity2") & (orbit["member"] == "f")].copy()
    other = orbit[(orbit["target"] == "mixed") & (orbit["member"] == "f")]
    fake = other.assign(target="parity2", member="f∘g", degree_profile=list(swapped["degree_profile"]),
                        orbit_size=list(swapped["orbit_size"]))  # fmt: skip
    wrong = pd.concat([swapped, fake], ignore_index=True)
    checks = orbit_checks(wrong, cell_tests(wrong), spec)
    assert checks[0].outcome == "not reproduced"


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "equivariance"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(EquivarianceSpec.model_fields)
    EquivarianceSpec(**values)
    with pytest.raises(ValueError, match="orbit_dims"):
        EquivarianceSpec(**{**values, "orbit_dims": [4, 8]})
    assert np.isfinite(values["rounding"])
