"""The composition study: each claim decides (and can fail) on synthetic tables, the pipeline at
tiny size, presets and bad spec fields."""

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
from symlab.experiments.composition import CompositionSpec, count_jobs, expand
from symlab.experiments.composition_verdict import harder, predicted_exponent, slope_table

GRID = dict(nu_g=[1.5, 10.5], nu_h=[0.5, 5.5], n_train=[100, 300, 1000, 3000], seeds=3)
TINY = dict(nu_g=[1.5], nu_h=[0.5, 2.5], n_train=[20, 40, 80], n_test=20, accordion_wide=8,
            accordion_narrow=4, accordion_blocks=2, deep_width=8, deep_layers=3,
            shallow_width=16, steps_per_stage=5, seeds=1, lrs=[1e-3], weight_decays=[0.0])  # fmt: skip


def _table(exponent, shallow_factor=2.0, noise=0.02):
    """Synthetic rows: test error = C N^(−exponent(model, ν_g, ν_h)) with seed-level noise."""
    spec = CompositionSpec(**GRID)
    rng = np.random.default_rng(0)
    rows = []
    for job in expand(spec):
        a = exponent(job["model"], job["nu_g"], job["nu_h"])
        scale = shallow_factor if job["model"] == "shallow" else 1.0
        error = scale * 0.5 * job["n"] ** -a * np.exp(rng.normal(0, noise))
        rows.append({**job, "test_error": error, "train_error": error / 2, "diverged": False,
                     "last_fifth_drop": 0.001, "parameters": 1, "seconds": 0.1})  # fmt: skip
    return pd.DataFrame(rows), spec


def _outcomes(summary):
    return {c["name"]: c["outcome"] for c in summary.extras["claims"]}


def _theory(model, nu_g, nu_h):
    return predicted_exponent(nu_g, nu_h, 15, 3) if model != "shallow" else 0.05


def test_prediction_and_phases():
    assert predicted_exponent(1.5, 0.5, 15, 3) == pytest.approx(0.1)
    assert predicted_exponent(10.5, 0.5, 15, 3) == pytest.approx(0.5 / 3)
    assert predicted_exponent(10.5, 5.5, 15, 3) == 0.5
    assert [harder(1.5, 0.5, 15, 3), harder(10.5, 0.5, 15, 3), harder(10.5, 5.5, 15, 3)] == [
        "g", "h", "neither"]  # fmt: skip


def test_claims_reproduce_on_the_predicted_table():
    rows, spec = _table(_theory)
    outcomes = _outcomes(get_experiment("composition").summarize(rows, spec))
    assert set(outcomes.values()) == {"reproduced"} and len(outcomes) == 6


def test_claims_fail_on_tables_that_contradict_them():
    study = get_experiment("composition")
    flat, spec = _table(lambda m, g, h: 0.3, shallow_factor=1.0)  # one rate everywhere
    outcomes = _outcomes(study.summarize(flat, spec))
    assert outcomes["rate_follows_harder_accordion"] == "not reproduced"
    # 0.3 is at least r - 0.1 where r = 1/6, short of r - 0.1 = 0.4 where r = 1/2
    assert outcomes["exponent_accordion"] == "partly reproduced"
    assert outcomes["beats_shallow_accordion"] == "not reproduced"
    slightly, spec = _table(lambda m, g, h: 0.3, shallow_factor=1.1)  # lower, by ~1.1x only
    assert _outcomes(study.summarize(slightly, spec))["beats_shallow_deep"] == "partly reproduced"
    reversed_, spec = _table(lambda m, g, h: 0.6 - _theory(m, g, h), shallow_factor=0.5)
    outcomes = _outcomes(study.summarize(reversed_, spec))
    assert outcomes["rate_follows_harder_deep"] == "opposite"
    assert outcomes["exponent_deep"] == "partly reproduced"  # 0.1 where r = 1/2: too slow
    assert outcomes["beats_shallow_deep"] == "opposite"
    # h's smoothness changes the rate although g is the harder one: a spurious difference
    spurious, spec = _table(lambda m, g, h: _theory(m, g, h) + 0.15 * (g == 1.5 and h == 5.5))
    claims = {c["name"]: c for c in study.summarize(spurious, spec).extras["claims"]}
    assert claims["rate_follows_harder_accordion"]["outcome"] == "partly reproduced"
    assert "1 spurious difference" in claims["rate_follows_harder_accordion"]["measured"]
    noisy, spec = _table(_theory, noise=2.0)  # intervals too wide to decide
    outcomes = _outcomes(study.summarize(noisy, spec))
    assert outcomes["exponent_accordion"] == "inconclusive"
    assert outcomes["rate_follows_harder_accordion"] in ("inconclusive", "partly reproduced")


def test_pipeline_tiny(tmp_path):
    study = get_experiment("composition")
    spec = CompositionSpec(**TINY)
    jobs = list(study.expand(spec))
    assert len(jobs) == count_jobs(spec) == 18
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in jobs])
    assert not rows["diverged"].any() and (rows["test_error"] > 0).all()
    summary = study.summarize(rows, spec)
    assert {"rate_follows_harder_accordion", "exponent_deep", "beats_shallow_accordion"} <= set(
        _outcomes(summary)
    )
    assert len(summary.extras["slopes"]) == 6
    paths = study.plot(rows, spec, tmp_path)
    assert {p.name for p in paths} >= {"composition_scaling.png"}


@pytest.mark.parametrize("preset", ["quick", "paper", "authors"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "composition"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(CompositionSpec.model_fields)
    CompositionSpec(**values)


@pytest.mark.parametrize(
    "field, value",
    [("nu_g", [0.0]), ("nu_h", [-1.0]), ("d_mid", 15), ("weight_decays", [0.0, 0.1]),
     ("n_train", [100, 200, 20000]), ("n_train", [100, 200]), ("models", ["wide"]),
     ("fit_max_error", 0.0)],
)  # fmt: skip
def test_bad_spec_fields_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        CompositionSpec(**{**TINY, field: value})


def test_defaults_are_the_quick_preset():
    root = Path(symlab.__file__).parent / "configs" / "composition"
    values = tomllib.loads((root / "quick.toml").read_text())
    assert CompositionSpec() == CompositionSpec(**values)


def test_float32_and_float64_runs_agree_and_divergence_is_flagged():
    def first_job(**update):
        spec = CompositionSpec(**{**TINY, "models": ["accordion"], **update})
        return get_experiment("composition").run_job(list(expand(spec))[0])

    single, double = first_job(), first_job(dtype="float64")
    assert single["test_error"] == pytest.approx(double["test_error"], rel=1e-3)
    assert single["train_error"] == pytest.approx(double["train_error"], rel=1e-3)
    diverged = first_job(lrs=[1e6], steps_per_stage=20, models=["deep"])
    assert diverged["diverged"] is True and np.isnan(diverged["test_error"])


def test_the_exponent_claim_is_one_sided_and_can_fail_where_it_is_tested():
    """r comes from an upper bound on the error: a faster decay is consistent with it, an error
    that does not decay is not, and cells with r <= exponent_tolerance (where even a flat curve
    would meet r - tol) test nothing."""
    study = get_experiment("composition")
    faster, spec = _table(lambda m, g, h: _theory(m, g, h) + 0.3)
    assert _outcomes(study.summarize(faster, spec))["exponent_deep"] == "reproduced"
    flat, spec = _table(lambda m, g, h: 0.0)
    claims = {c["name"]: c for c in study.summarize(flat, spec).extras["claims"]}
    assert claims["exponent_deep"]["outcome"] == "not reproduced"
    assert "0 of 2 tested cells" in claims["exponent_deep"]["measured"]
    only_g_harder = flat[flat["nu_g"] == 1.5]  # r = 0.1 in every cell: nothing to test
    spec = CompositionSpec(**{**GRID, "nu_g": [1.5]})
    assert _outcomes(study.summarize(only_g_harder, spec))["exponent_deep"] == "not measured"


def test_rate_claims_of_nets_still_learning_are_inconclusive():
    """A model whose training MSE still fell by more than max_last_drop over the last fifth
    of its last stage (median at the largest N) leaves its rate claims undecided; a train error
    close to the test error (a regularized fit at large N) does not."""
    study = get_experiment("composition")
    rows, spec = _table(_theory)
    rows.loc[rows["model"] == "accordion", "last_fifth_drop"] = 0.08
    claims = {c["name"]: c for c in study.summarize(rows, spec).extras["claims"]}
    for name in ("rate_follows_harder_accordion", "exponent_accordion"):
        assert claims[name]["outcome"] == "inconclusive"
        assert "still fell by 8.0%" in claims[name]["measured"]
        assert "would be reproduced" in claims[name]["measured"]
    assert claims["exponent_deep"]["outcome"] == "reproduced"
    assert claims["beats_shallow_accordion"]["outcome"] == "reproduced"  # a comparison, kept
    preamble = study.summarize(rows, spec).verdict
    assert "accordion 8.0%" in preamble and "still fitting" in preamble
    close, spec = _table(_theory)
    close["test_error"] = 3 * close["test_error"]  # errors far from 0 (below Var(y)) ...
    assert close[close["n"] == 3000].groupby("model")["test_error"].median().min() > 0.2
    close["train_error"] = 0.9 * close["test_error"]  # ... train close to test: decided
    assert set(_outcomes(study.summarize(close, spec)).values()) == {"reproduced"}
    unrecorded = close.drop(columns="last_fifth_drop")  # rows stored before the field
    summary = study.summarize(unrecorded, spec)
    assert set(_outcomes(summary).values()) == {"reproduced"}
    assert "was not recorded" in summary.verdict


def test_a_job_records_its_last_fifth_drop():
    spec = CompositionSpec(**{**TINY, "models": ["deep"], "steps_per_stage": 50})
    row = get_experiment("composition").run_job(list(expand(spec))[0])
    assert np.isfinite(row["last_fifth_drop"]) and row["last_fifth_drop"] < 1
    assert np.isfinite(row["objective_last_fifth_drop"])
    # the drop is the fit's: the MSE at 4/5 of the last stage against the reported train error
    spec_short = CompositionSpec(**{**TINY, "models": ["deep"], "steps_per_stage": 40})
    early = get_experiment("composition").run_job(list(expand(spec_short))[0])
    assert row["last_fifth_drop"] == pytest.approx(
        (early["train_error"] - row["train_error"]) / early["train_error"], rel=1e-4
    )


def test_exponents_are_fitted_on_the_learning_regime_only():
    """Errors above Var(y) at small N (over-fitting) are left out of the slope: the exponent is the
    power law's, not the recovery's; a cell left with fewer than 3 sizes is not fitted."""
    study = get_experiment("composition")
    rows, spec = _table(_theory, noise=0.0)
    cell = (rows["model"] == "deep") & (rows["nu_g"] == 10.5) & (rows["nu_h"] == 5.5)
    rows.loc[cell & (rows["n"] == 100), "test_error"] = 1.5  # over-fit: worse than the mean
    slopes = slope_table(rows, spec).set_index(["model", "nu_g", "nu_h"])
    assert slopes.loc[("deep", 10.5, 5.5), "fit_from"] == 300
    assert slopes.loc[("deep", 10.5, 5.5), "exponent"] == pytest.approx(0.5, abs=1e-9)
    assert slopes.loc[("deep", 1.5, 0.5), "fit_from"] == 100
    contaminated = slope_table(rows, spec.model_copy(update={"fit_max_error": 10.0}))
    steep = contaminated.set_index(["model", "nu_g", "nu_h"]).loc[("deep", 10.5, 5.5), "exponent"]
    assert steep > 0.6  # the recovery from 1.5 adds to the slope when it is kept
    rows.loc[cell & (rows["n"] == 300), "test_error"] = 1.2  # only 1000 and 3000 left
    summary = study.summarize(rows, spec)
    slopes = pd.DataFrame(summary.extras["slopes"]).set_index(["model", "nu_g", "nu_h"])
    assert np.isnan(slopes.loc[("deep", 10.5, 5.5), "exponent"])
    claims = {c["name"]: c for c in summary.extras["claims"]}
    assert "(ν_g 10.5, ν_h 5.5): not fitted" in claims["exponent_deep"]["measured"]
    assert "not fitted (2 of 4 sizes)" in summary.verdict
    # the one tested deep cell left (r = 1/6) still decays at its rate
    assert claims["exponent_deep"]["outcome"] == "reproduced"
