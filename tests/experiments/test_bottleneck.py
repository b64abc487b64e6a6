"""The bottleneck study: its verdicts decide on synthetic rows (and can fail), the convergence
diagnostics against hand computations, and the pipeline at tiny size."""

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
from symlab.experiments.bottleneck import BottleneckSpec, balance_defect, middle_layers
from symlab.nets import mlp

TINY = dict(depths=[3, 4], width=8, n_train=32, n_test=32, steps=60, refine_steps=40,
            plateau_window=20, seeds=2, fit_min_depth=3, teacher_hidden=16)  # fmt: skip


def _synthetic(slope, middle_rank, noise=0.05, seeds=3, depths=(6, 8, 10, 12)):
    rng = np.random.default_rng(0)
    rows = []
    for depth in depths:
        for seed in range(seeds):
            rows.append(
                {
                    "depth": depth, "seed": seed, "diverged": False,
                    "param_norm_sq": slope * depth + 10 + seed + rng.normal(0, noise),
                    "norm_per_layer": 0.0, "middle_rank": middle_rank, "middle_rank_low": middle_rank,
                    "middle_rank_high": middle_rank, "weight_s_k": 1.1, "weight_s_k1": 0.01,
                    "train_error": 0.03, "test_error": 0.2, "balance_defect": 0.01,
                    "last_window_drop": 1e-4, "grad_norm": 1e-3, "steps_total": 100, "seconds": 1.0,
                }
            )  # fmt: skip
    return pd.DataFrame(rows)


def _outcomes(summary):
    return {c["name"]: c["outcome"] for c in summary.extras["claims"]}


def test_verdicts_reproduce_fail_and_abstain_on_synthetic_rows():
    study = get_experiment("bottleneck")
    spec = BottleneckSpec(depths=[6, 8, 10, 12], fit_min_depth=8, seeds=3)
    good = study.summarize(_synthetic(2.0, 2.0), spec)
    assert _outcomes(good) == {"middle_rank": "reproduced", "slope": "reproduced"}
    assert good.extras["slope"] == pytest.approx(2.0, abs=0.05)
    bad = study.summarize(_synthetic(3.0, 3.0), spec)
    assert _outcomes(bad) == {"middle_rank": "not reproduced", "slope": "not reproduced"}
    assert "NOT REPRODUCED" in bad.verdict
    noisy = study.summarize(_synthetic(2.0, 2.0, noise=3.0), spec)
    assert _outcomes(noisy)["slope"] == "inconclusive"
    shallow = study.summarize(_synthetic(2.0, 2.0), spec.model_copy(update={"fit_min_depth": 20}))
    assert set(_outcomes(shallow).values()) == {"inconclusive"}


def test_balance_defect_and_middle_layers():
    net = mlp([3, 4, 4, 2], seed=0)
    layers = [m for m in net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():  # make every ‖W‖² equal and the biases zero: balanced layer norms
        for m in layers:
            m.weight.mul_(1 / m.weight.norm())
            m.bias.zero_()
    assert balance_defect(layers) == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        layers[1].weight.mul_(2.0)  # ‖W_2‖² = 4: |1 − 4| and |4 − 1| over the mean 2
    assert balance_defect(layers) == pytest.approx(3 / 2)
    assert middle_layers(7, 8) == [1, 2, 3, 4, 5]  # ℓ = 2..6 of the hidden ℓ = 1..7
    assert middle_layers(8, 8) == [1, 2, 3, 4, 5]
    assert middle_layers(1, 2) == [0]


def test_pipeline_tiny(tmp_path):
    study = get_experiment("bottleneck")
    spec = BottleneckSpec(**TINY)
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    assert len(rows) == 4 and not rows["diverged"].any()
    row = rows[rows["depth"] == 4].iloc[0]
    assert len(row["rank_profile"]) == 3 and len(row["weight_sv"]) == 4
    assert row["loss_curve"][-1][1] < row["loss_curve"][0][1]
    # the stored norm is that of the trained parameters, layer by layer
    assert sum(row["layer_norms_sq"]) == pytest.approx(row["param_norm_sq"], rel=1e-9)
    summary = study.summarize(rows, spec)
    assert set(summary.table["depth"]) == {3, 4}
    assert set(_outcomes(summary)) == {"middle_rank", "slope"}
    paths = study.plot(rows, spec, tmp_path)
    assert {p.name for p in paths} >= {"bottleneck_rank_and_cost.png", "bottleneck_spectra.png"}
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "bottleneck"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(BottleneckSpec.model_fields)
    BottleneckSpec(**values)
    with pytest.raises(ValueError, match="depths"):
        BottleneckSpec(**{**values, "depths": [4, 4]})


@pytest.mark.slow
def test_quick_preset_finds_the_bottleneck():
    """The quick preset's depths >= 10 (two seeds): the middle layers have rank k and the weights
    one more singular value below a fifth of the k-th."""
    from symlab.engine.spec import load_spec

    study = get_experiment("bottleneck")
    spec = load_spec("bottleneck", preset="quick").model_copy(update={"depths": [10, 12]})
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    assert (rows["middle_rank"] == spec.rank).all()
    assert (rows["weight_s_k1"] < 0.2 * rows["weight_s_k"]).all()
