"""The staircase study: order and exponent checks on hand-made cases (each can fail), one real tiny
cell of online SGD, censoring reported as lower bounds, and the presets."""

import itertools
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
from symlab.engine.verdict import exponent_outcome
from symlab.experiments.staircase import TARGETS, StaircaseSpec, measured_order, ordering_leap
from symlab.stats import log_allowance, power_law_fit


def _brute_leap(supports):
    sets = [frozenset(s) for s in supports]
    return min(ordering_leap(list(p)) for p in itertools.permutations(sets))


def test_ordering_leap_counts_new_coordinates():
    staircase = [frozenset({1}), frozenset({1, 2}), frozenset({1, 2, 3})]
    assert ordering_leap(staircase) == 1
    assert ordering_leap([staircase[0], staircase[2], staircase[1]]) == 2
    assert ordering_leap([frozenset({1, 2, 3})]) == 3
    assert _brute_leap(TARGETS["leap2_chain"]) == 2 and _brute_leap(TARGETS["staircase4"]) == 1


def test_measured_order_sorts_by_time_and_breaks_ties_in_the_reference_order():
    supports = TARGETS["staircase3"]
    reference = [frozenset(s) for s in supports]
    assert measured_order([1.0, 5.0, 3.0], supports, reference) == [
        reference[0], reference[2], reference[1]
    ]  # fmt: skip
    assert measured_order([1.0, 3.0, 3.0], supports, reference) == reference


def test_target_leaps_agree_with_the_leap_module():
    from symlab.experiments.staircase import target_leap

    for name, supports in TARGETS.items():
        value, ordering = target_leap(supports)
        assert value == _brute_leap(supports), name
        assert ordering_leap(ordering) == value


def test_exponent_check_passes_and_fails_as_it_should():
    x = np.repeat([16.0, 32.0, 64.0, 128.0], 6)
    rng = np.random.default_rng(0)
    noise = np.exp(0.1 * rng.standard_normal(len(x)))
    band = log_allowance(16, 128)
    assert band == pytest.approx(np.log(np.log(128) / np.log(16)) / np.log(8))
    assert exponent_outcome(power_law_fit(x, x**2 * noise), 2, band) == "reproduced"
    assert exponent_outcome(power_law_fit(x, x * np.log(x) * noise), 1, band) == "reproduced"
    assert exponent_outcome(power_law_fit(x, x**1.5 * noise), 2, band) == "not reproduced"
    assert exponent_outcome(power_law_fit(x, x**2 * noise), 1, band) == "not reproduced"
    censored = x == 128.0
    capped = np.where(censored, 50.0**2, x**2)
    fit = power_law_fit(x, capped, censored)
    assert fit.lower_bound and exponent_outcome(fit, 2, band) == "inconclusive"
    assert exponent_outcome(power_law_fit(x, capped, x == 16.0), 2, band) == "not reproduced"


def _tiny_spec(**changes):
    values = dict(
        dims=[6, 10], targets=["staircase3", "parity2"], seeds=3, width=32, batch=16,
        n_records=30, test_size=1024, budget=400.0,
    )  # fmt: skip
    return StaircaseSpec(**{**values, **changes})


def _rows(spec):
    study = get_experiment("staircase")
    return pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])


def test_a_tiny_grid_learns_and_times_every_monomial(tmp_path):
    spec = _tiny_spec()
    rows = _rows(spec)
    assert len(rows) == 4
    for r in rows.itertuples():
        assert not any(r.learned_censored), (r.target, r.d)
        times = np.asarray(r.monomial_times)
        assert times.shape == (3, len(TARGETS[r.target])) and (times > 0).all()
        assert max(r.learned_time) <= r.samples[-1] <= r.budget_samples
        assert r.control_max_z < 5  # monomials outside the support stay at 0
    staircase = rows[rows["target"] == "staircase3"]
    assert (np.asarray(staircase.iloc[0]["escape_times"])[:, 0] > 0).all()
    study = get_experiment("staircase")
    summary = study.summarize(rows, spec)
    outcomes = {c["name"]: c["outcome"] for c in summary.extras["claims"]}
    assert set(outcomes) >= {"exponent:staircase3", "exponent:parity2", "order:leap1"}
    assert set(summary.table["leap"]) == {1, 2}
    paths = study.plot(rows, spec, tmp_path)
    assert {p.name for p in paths} >= {"staircase_scaling.png", "staircase_coefficients.png"}


def test_runs_short_of_the_budget_are_censored_and_not_reproduced():
    spec = _tiny_spec(targets=["parity2"], budget=2.0, seeds=2)  # far too few samples
    rows = _rows(spec)
    assert all(all(r.learned_censored) for r in rows.itertuples())
    assert all(t == r.samples[-1] for r in rows.itertuples() for t in r.learned_time)
    summary = get_experiment("staircase").summarize(rows, spec)
    check = summary.extras["claims"][0]
    assert check["outcome"] != "reproduced"
    assert np.isinf(summary.table["median_samples"]).all()


@pytest.mark.parametrize("preset", ["quick", "paper", "leap3"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "staircase"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(StaircaseSpec.model_fields)
    StaircaseSpec(**values)
    with pytest.raises(ValueError, match="dims"):
        StaircaseSpec(**{**values, "dims": [4, 8]})


def test_the_step_scales_as_lr_over_d_to_the_power_p():
    """lr = 0.1·d0^{p−1} with exponent p gives the step 0.1/d0 at d = d0 (the same run) and a
    smaller step, so less progress on the same samples, at d > d0."""
    study = get_experiment("staircase")
    base = dict(dims=[6, 9], targets=["parity2"], seeds=2, width=16, batch=16, n_records=20,
                test_size=512, budget=40.0)  # fmt: skip
    runs = {}
    for p in (1.0, 1.5):
        spec = StaircaseSpec(**base, lr=0.1 * 6 ** (p - 1), lr_dim_exponent=p)
        runs[p] = {job["d"]: study.run_job(job) for job in study.expand(spec)}
    assert runs[1.0][6]["samples"] == runs[1.5][6]["samples"]
    assert runs[1.0][6]["coefficients"] == runs[1.5][6]["coefficients"]
    slow, fast = runs[1.5][9], runs[1.0][9]  # same budget and records, smaller step: less progress
    assert slow["samples"] == fast["samples"]
    assert np.mean(slow["coefficients"][-1], 0)[0] < np.mean(fast["coefficients"][-1], 0)[0]
