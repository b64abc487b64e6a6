"""The beyond-ntk study: each claim decides on synthetic rows (and can fail), the AZLL tasks and
learners, and the pipeline at tiny size."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import symlab
from symlab.engine.experiment import get_experiment
from symlab.experiments.beyond_ntk import BeyondNTKSpec, cells
from symlab.ntk.concept_tasks import azll_network, azll_target, azll_task

TINY = dict(n_values=[60, 120], widths=[16], width=24, n_fixed=120, n_val=60, n_test=80, epochs=2,
            seeds=2, lrs=[0.01], ridges=[1e-3, 1e-1], sign_draws=[1, 4], split_records=4)  # fmt: skip


def synthetic(ratio_two, ratio_ntk, r2_first, seeds=4, noise=0.05, r2_gain=0.1):
    """Validated-run rows: two-layer and NTK errors = ratio × the three-layer error."""
    rng = np.random.default_rng(0)
    rows = []
    for n in (250, 500, 1000):
        for seed in range(seeds):
            base = 0.3 / np.sqrt(n / 250) * np.exp(rng.normal(0, noise))
            for method, factor in (
                ("three_layer", 1.0),
                ("two_layer", ratio_two),
                ("ntk", ratio_ntk),
            ):
                err = base * factor * np.exp(rng.normal(0, noise))
                rows.append({"target": "sin", "method": method, "n_train": n, "width": 200,
                             "seed": seed, "val_error": err, "test_error": err, "train_error": err / 2,
                             "diverged": False, "r2_first": r2_first + rng.normal(0, 0.02),
                             "r2_second": r2_first + r2_gain, "flip_share": 0.3})  # fmt: skip
    return pd.DataFrame(rows)


def outcomes(summary):
    return {c["name"]: c["outcome"] for c in summary.extras["claims"]}


def test_claims_reproduce_fail_and_abstain_on_synthetic_rows():
    study = get_experiment("beyond-ntk")
    spec = BeyondNTKSpec(n_values=[250, 500, 1000], widths=[200], n_fixed=1000, seeds=4)
    good = study.summarize(synthetic(1.8, 2.5, 0.2, r2_gain=0.6), spec)
    assert outcomes(good) == {"three_beats_two": "reproduced", "net_beats_ntk": "reproduced",
                              "beyond_first_order": "reproduced", "second_order": "reproduced"}  # fmt: skip
    bad = study.summarize(synthetic(0.6, 0.5, 0.97, r2_gain=-0.3), spec)
    assert outcomes(bad) == {"three_beats_two": "opposite", "net_beats_ntk": "opposite",
                             "beyond_first_order": "not reproduced", "second_order": "opposite"}  # fmt: skip
    assert "OPPOSITE" in bad.verdict
    tie = study.summarize(synthetic(1.0, 1.0, 0.7, noise=0.3), spec)
    assert outcomes(tie) == {"three_beats_two": "inconclusive", "net_beats_ntk": "inconclusive",
                             "beyond_first_order": "inconclusive", "second_order": "not reproduced"}  # fmt: skip


def test_validation_picks_the_run_and_test_error_is_reported():
    study = get_experiment("beyond-ntk")
    spec = BeyondNTKSpec(n_values=[250], widths=[200], n_fixed=250, seeds=2)
    rows = synthetic(1.8, 2.5, 0.2, seeds=2)
    rows = rows[rows["n_train"] == 250]
    worse = rows[rows["method"] == "three_layer"].assign(val_error=9.0, test_error=0.001)
    summary = study.summarize(pd.concat([rows, worse]), spec)
    three = summary.table[summary.table["method"] == "three_layer"]
    assert (
        float(three["test_error"].iloc[0]) > 0.01
    )  # the run with the better test error lost on validation


def test_azll_targets_tasks_and_learners():
    x = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    s = 3 * np.sin(1.5)
    assert float(azll_target("sin", x)[0, 0]) == pytest.approx((s - 2) ** 2 * np.cos(3.5))
    assert float(azll_target("tanh", x)[1, 0]) == pytest.approx(4 * np.tanh(8.0))
    with pytest.raises(ValueError, match="target: expected one of sin, tanh"):
        azll_target("cos", x)
    task = azll_task("sin", 50, 20, 30, seed=1)
    assert torch.allclose(task.x_train.norm(dim=1), torch.ones(50), atol=1e-6)
    assert torch.equal(azll_task("sin", 80, 20, 30, seed=1).x_test, task.x_test)  # shared test set
    net = azll_network(3, 4, 64, seed=0)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    assert trainable == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert float(net[2].weight.detach().std()) == pytest.approx(1 / 8, rel=0.1)
    with pytest.raises(ValueError, match="depth: expected 2 or 3"):
        azll_network(4, 4, 8, seed=0)


def test_pipeline_tiny(tmp_path):
    study = get_experiment("beyond-ntk")
    spec = BeyondNTKSpec(**TINY)
    jobs = study.expand(spec)
    assert len(jobs) == len(cells(spec)) * 2 * 4
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in jobs])
    assert not rows["diverged"].any()
    nets = rows[rows["method"] == "three_layer"]
    assert all(len(c) >= 2 for c in nets["split_curve"])
    assert all(len(v) == 2 for v in nets["sign_error_frozen"])
    summary = study.summarize(rows, spec)
    assert set(outcomes(summary)) == {"three_beats_two", "net_beats_ntk", "beyond_first_order",
                                      "second_order"}  # fmt: skip
    paths = study.plot(rows, spec, tmp_path)
    assert {p.name for p in paths} >= {"beyond_ntk_errors.png", "beyond_ntk_taylor.png",
                                       "beyond_ntk_signs.png"}  # fmt: skip


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "beyond-ntk"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(BeyondNTKSpec.model_fields)
    BeyondNTKSpec(**values)
    with pytest.raises(ValueError, match="targets"):
        BeyondNTKSpec(**{**values, "targets": ["cos"]})
    with pytest.raises(ValueError, match="lrs"):
        BeyondNTKSpec(**{**values, "lrs": [0.0]})
