"""The cnn-bottleneck study: its verdicts decide (and can fail) on synthetic rows, the task and
network against hand computations, and the pipeline at tiny size."""

import json
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
from symlab.bias import conv_frequency_spectra
from symlab.bias.conv_tasks import (
    balance_layers,
    circular_cnn,
    digits_task,
    frequency_set,
    frequency_task,
)
from symlab.engine.experiment import get_experiment
from symlab.experiments.cnn_bottleneck import CnnBottleneckSpec, middle_layers
from symlab.experiments.cnn_bottleneck_plots import converged
from symlab.ntk.data import DIGITS_SIZE

TINY = dict(depths=[3, 4], channels=2, image_size=6, n_train=8, n_test=8, steps=30, seeds=1,
            fit_min_depth=3, lr=1e-3, optimizer="adam", warmup=5, lr_final=0.1)  # fmt: skip


def _synthetic(slope_times_n2: float, rank: float, subset: bool, n: int = 8, seeds: int = 3):
    rng = np.random.default_rng(0)
    rows = []
    for task in ("frequencies", "digits"):
        for depth in (6, 8, 10, 12):
            for seed in range(seeds):
                first = 64 if task == "digits" else 4
                middle = 10.0 if subset else 64.0
                rows.append({
                    "task": task, "depth": depth, "seed": seed, "diverged": False,
                    "param_norm_sq": slope_times_n2 / n**2 * depth + 1 + 0.1 * seed + rng.normal(0, 1e-4),
                    "middle_cbn_rank": rank, "middle_n_surviving": middle if task == "digits" else 4.0,
                    "n_surviving": [first] + [int(middle)] * (depth - 1),
                    "middle_subset_of_task": subset, "middle_energy_on_task": 0.9 if subset else 0.1,
                    "train_error": 0.01, "test_error": 0.02, "seconds": 1.0, "last_fifth_drop": 1e-4,
                    "imbalance": 0.01, "middle_keeps_task": subset, "objective": 0.1,
                })  # fmt: skip
    return pd.DataFrame(rows)


def _outcomes(summary):
    return {c["name"]: c["outcome"] for c in summary.extras["claims"]}


def test_verdicts_reproduce_and_fail_on_synthetic_rows():
    study = get_experiment("cnn-bottleneck")
    spec = CnnBottleneckSpec(depths=[6, 8, 10, 12], fit_min_depth=6, seeds=3)
    good = study.summarize(_synthetic(4.0, 4.0, True), spec)
    assert _outcomes(good) == {"kept_frequencies": "reproduced", "norm_slope": "reproduced",
                               "digits_bottleneck": "reproduced"}  # fmt: skip
    bad = study.summarize(_synthetic(12.0, 4.0, False), spec)
    assert _outcomes(bad) == {"kept_frequencies": "not reproduced", "norm_slope": "not reproduced",
                              "digits_bottleneck": "not reproduced"}  # fmt: skip
    falling = _synthetic(-4.0, 4.0, True)
    falling.loc[falling["task"] == "digits", "n_surviving"] = pd.Series(
        [[2] + [10] * (d - 1) for d in falling.loc[falling["task"] == "digits", "depth"]],
        index=falling.index[falling["task"] == "digits"],
    )
    opposite = _outcomes(study.summarize(falling, spec))
    assert opposite["norm_slope"] == "opposite" and opposite["digits_bottleneck"] == "opposite"
    unfinished = _synthetic(4.0, 4.0, True)
    unfinished["last_fifth_drop"] = 0.3  # still falling: nothing is claimed from it
    gated = study.summarize(unfinished, spec)
    assert set(_outcomes(gated).values()) == {"inconclusive"} and "did not reach" in gated.verdict
    unbalanced = _synthetic(4.0, 4.0, True)
    unbalanced["imbalance"] = 0.5  # layer norms unequal: not a stationary point of the L2 objective
    assert set(_outcomes(study.summarize(unbalanced, spec)).values()) == {"inconclusive"}
    shallow = study.summarize(
        _synthetic(4.0, 4.0, True), spec.model_copy(update={"fit_min_depth": 20})
    )
    assert set(_outcomes(shallow).values()) == {"inconclusive"}


def test_task_depends_only_on_its_frequencies():
    task = frequency_task(5, 3, 6, [[1, 0], [0, 2]], seed=0)
    assert task.frequencies == [(0, 2), (0, 4), (1, 0), (5, 0)]
    spectrum = torch.fft.fft2(task.y_train)[:, 0].abs().sum(0)
    kept = torch.zeros(6, 6, dtype=torch.bool)
    for m in task.frequencies:
        kept[m] = True
    assert float(spectrum[~kept].max()) < 1e-10 and float(spectrum[kept].min()) > 1e-3
    assert float(task.y_train.square().sum(dim=(1, 2, 3)).mean()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="^frequencies"):
        frequency_set([[6, 0]], 6)


def test_circular_cnn_layers_are_circulant():
    net = circular_cnn(3, 2, seed=0, dtype=torch.float64)
    x = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    shifted = torch.roll(x, shifts=(1, 2), dims=(2, 3))
    assert torch.allclose(net(shifted), torch.roll(net(x), shifts=(1, 2), dims=(2, 3)))
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    assert all(conv_frequency_spectra(c, 5).route == "dft" for c in convs)
    assert middle_layers(8) == [1, 2, 3, 4, 5] and middle_layers(2) == [0]
    with pytest.raises(ValueError, match="^depth"):
        circular_cnn(1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_balance_layers_keeps_the_function_at_the_least_norm_of_its_rescalings(dtype):
    net = circular_cnn(4, 3, 1, 2, pool=True, seed=3, dtype=dtype)
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for c, scale in zip(convs, [3.0, 0.2, 1.0, 2.5]):
            c.weight.mul_(scale)
    x = torch.randn(5, 1, 6, 6, dtype=dtype, generator=torch.Generator().manual_seed(0))
    before_out = net(x).detach()
    norms = torch.tensor(
        [float(c.weight.detach().double().norm()) for c in convs], dtype=torch.float64
    )
    factor = balance_layers(net)
    after = torch.tensor(
        [float(c.weight.detach().double().norm()) for c in convs], dtype=torch.float64
    )
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(net(x).detach(), before_out, rtol=rtol, atol=rtol)
    # every layer at the geometric mean; no other rescaling with product 1 has a smaller norm
    torch.testing.assert_close(after, norms.log().mean().exp().expand(4), rtol=rtol, atol=0)
    assert factor == pytest.approx(float(norms.square().sum() / after.square().sum()), rel=rtol)
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        logs = torch.randn(4, dtype=torch.float64, generator=generator)
        other = after * (logs - logs.mean()).exp()
        assert float(other.square().sum()) >= float(after.square().sum()) * (1 - 1e-12)
    with pytest.raises(ValueError, match="^net"):
        balance_layers(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))


def test_balance_layers_on_a_bias_free_relu_mlp_and_bad_networks():
    torch.manual_seed(0)
    linear = [torch.nn.Linear(3, 5, bias=False), torch.nn.Linear(5, 4, bias=False),
              torch.nn.Linear(4, 2, bias=False)]  # fmt: skip
    net = torch.nn.Sequential(linear[0], torch.nn.ReLU(), linear[1], torch.nn.ReLU(), linear[2])
    with torch.no_grad():
        linear[0].weight.mul_(10.0)
    x = torch.randn(7, 3)
    before = net(x).detach()
    assert balance_layers(net) > 1.5
    torch.testing.assert_close(net(x).detach(), before, rtol=1e-5, atol=1e-5)
    norms = [float(m.weight.detach().norm()) for m in linear]
    assert max(norms) / min(norms) == pytest.approx(1.0, abs=1e-6)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    for bad in (
        torch.nn.Sequential(conv, torch.nn.Tanh(), torch.nn.Conv2d(1, 1, 3, bias=False)),
        torch.nn.Sequential(conv, torch.nn.BatchNorm2d(1)),
        torch.nn.Sequential(torch.nn.ReLU()),
        conv,
    ):
        with pytest.raises(ValueError, match="^net: expected"):
            balance_layers(bad)


def test_polish_lowers_the_l2_objective_from_the_rebalanced_warm_start():
    study = get_experiment("cnn-bottleneck")
    spec = CnnBottleneckSpec(**{**TINY, "tasks": ["digits"], "depths": [3], "image_size": 8,
                                "n_train": 16, "lam": 1e-2, "warm_lam": 0.0, "polish_iters": 40})  # fmt: skip
    job = study.expand(spec)[0]
    row = study.run_job(job)
    assert 0 < row["polish_iterations"] <= 40 and not row["diverged"]
    # L-BFGS with a Wolfe line search never raises the objective it starts from
    assert row["objective"] <= row["polish_start_objective"]
    assert row["objective"] < 0.99 * row["polish_start_objective"]
    norms = row["layer_norms_sq"]
    assert row["objective"] == pytest.approx(row["train_error"] + 1e-2 * sum(norms), rel=1e-9)
    # far from rounding level the polish uses all its iterations (a starved line search stalled)
    assert row["polish_iterations"] == 40 and row["polish_stop_reason"] == "steps"
    assert 0 < row["polish_grad_norm"] < np.inf
    # the polish starts from the first-order end point at λ = warm_lam (= 0: the same run as a
    # plain job at lam = 0), rebalanced: data loss + λ L g², g² the geometric mean of ‖K_ℓ‖²
    warm = study.run_job({**job, "polish_iters": 0, "lam": 0.0})
    norms_sq = np.array(warm["layer_norms_sq"])
    geometric = float(np.exp(np.log(norms_sq).mean()))
    start = warm["train_error"] + 1e-2 * len(norms_sq) * geometric
    assert row["polish_start_objective"] == pytest.approx(start, rel=1e-5)
    assert row["polish_rebalance_factor"] == pytest.approx(norms_sq.mean() / geometric, rel=1e-5)
    assert row["polish_rebalance_factor"] > 1.01  # the check above can tell the two apart
    plain = study.run_job({**job, "polish_iters": 0})
    assert plain["polish_iterations"] == 0 and np.isnan(plain["polish_start_objective"])
    assert plain["polish_stop_reason"] == "" and np.isnan(plain["polish_rebalance_factor"])


def test_polish_ladder_runs_each_lambda_from_polish_from_up_to_lam():
    """polish_stages L-BFGS stages at geometric λ from polish_from to lam, each starting where
    the last ended; the row's objective is the last stage's (at lam)."""
    study = get_experiment("cnn-bottleneck")
    spec = CnnBottleneckSpec(**{**TINY, "tasks": ["frequencies"], "depths": [3], "lam": 1e-2,
                                "polish_iters": 15, "polish_from": 1e-4, "polish_stages": 3})  # fmt: skip
    row = study.run_job(study.expand(spec)[0])
    ladder = row["polish_ladder"]
    assert [stage[0] for stage in ladder] == pytest.approx([1e-4, 1e-3, 1e-2], rel=1e-12)
    assert all(0 < stage[3] <= 15 for stage in ladder)
    for before, after in zip(ladder, ladder[1:]):  # the same θ scored at a larger λ
        assert after[1] >= before[2]
    assert row["objective"] == pytest.approx(ladder[-1][2], rel=1e-12)
    assert row["polish_start_objective"] == pytest.approx(ladder[-1][1], rel=1e-12)
    assert row["polish_iterations"] == ladder[-1][3]
    norms = row["layer_norms_sq"]
    assert row["objective"] == pytest.approx(row["train_error"] + 1e-2 * sum(norms), rel=1e-9)
    assert json.loads(json.dumps(row["polish_ladder"])) == row["polish_ladder"]  # storable
    verdict = study.summarize(pd.DataFrame([{**study.expand(spec)[0], **row}]), spec).verdict
    assert "3 L-BFGS stages of up to 15 iterations" in verdict and "from 0.0001 to 0.01" in verdict
    assert "(last stage: 1 used every iteration" in verdict
    single = study.run_job({**study.expand(spec)[0], "polish_from": 0.0, "polish_stages": 1})
    assert len(single["polish_ladder"]) == 1 and single["polish_ladder"][0][0] == 1e-2
    plain = CnnBottleneckSpec(**{**spec.model_dump(), "polish_from": 0.0, "polish_stages": 1})
    words = study.summarize(pd.DataFrame([{**study.expand(plain)[0], **single}]), plain).verdict
    assert "up to 15 L-BFGS iterations" in words and "stages" not in words


@pytest.mark.parametrize(
    "fields",
    [
        {"polish_from": 1e-3},  # no stages
        {"polish_stages": 3},  # no polish_from
        {"polish_from": 1e-3, "polish_stages": 3},  # no polish_iters
        {"polish_from": 0.5, "polish_stages": 3, "polish_iters": 5},  # above lam
    ],
)
def test_an_incomplete_polish_ladder_is_refused(fields):
    with pytest.raises(ValueError, match="polish_from: expected"):
        CnnBottleneckSpec(**{**TINY, "lam": 0.1, **fields})


def test_pipeline_tiny(tmp_path):
    study = get_experiment("cnn-bottleneck")
    spec = CnnBottleneckSpec(**TINY)
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    assert len(rows) == 4 and not rows["diverged"].any()
    row = rows[(rows["task"] == "frequencies") & (rows["depth"] == 4)].iloc[0]
    assert len(row["cbn_rank"]) == 4 and np.array(row["top_singular_map"]).shape == (4, 6, 6)
    assert sum(row["layer_norms_sq"]) == pytest.approx(row["param_norm_sq"], rel=1e-9)
    norms = np.array(row["layer_norms_sq"])
    assert row["imbalance"] == pytest.approx(norms.max() / norms.min() - 1, rel=1e-12)
    summary = study.summarize(rows, spec)
    outcomes = _outcomes(summary)
    assert set(outcomes) == {"kept_frequencies", "norm_slope", "digits_bottleneck"}
    # 30 steps from He init: unbalanced layers, so the gate keeps every claim open
    assert set(outcomes.values()) == {"inconclusive"} and "did not reach" in summary.verdict
    paths = study.plot(rows, spec, tmp_path)
    assert {p.name for p in paths} >= {"cnn_bottleneck_profile.png", "cnn_bottleneck_maps_frequencies.png",
                                       "cnn_bottleneck_maps_digits.png"}  # fmt: skip


def test_a_diverged_run_is_flagged_not_measured():
    study = get_experiment("cnn-bottleneck")
    spec = CnnBottleneckSpec(
        **{
            **TINY,
            "lr": 1e4,
            "steps": 5,
            "warmup": 0,
            "optimizer": "gd",
            "tasks": ["frequencies"],
            "depths": [3],
        }
    )
    row = study.run_job(study.expand(spec)[0])
    assert row["diverged"] is True and np.isnan(row["train_error"])


@pytest.mark.parametrize("preset", ["quick", "paper", "digits"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "cnn-bottleneck"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(CnnBottleneckSpec.model_fields)
    CnnBottleneckSpec(**values)


@pytest.mark.parametrize(
    "field, value",
    [
        ("depths", [4, 4]),
        ("frequencies", [[9, 0]]),
        ("lam", 0.0),
        ("kernel_size", 4),
        ("kernel_size", 7),
        ("warmup", 30),
        ("lr_final", 1.5),
        ("optimizer", "lbfgs"),
        ("n_test", 1790),  # 8 + 1790 > 1797 digits
        ("polish_iters", -1),
        ("warm_lam", -1e-3),
    ],
)
def test_bad_spec_fields_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        CnnBottleneckSpec(**{**TINY, field: value})


def test_warm_lam_without_a_polish_and_too_many_digits_are_refused():
    with pytest.raises(ValueError, match="polish_iters"):
        CnnBottleneckSpec(**{**TINY, "warm_lam": 1e-3})
    CnnBottleneckSpec(**{**TINY, "warm_lam": 1e-3, "polish_iters": 5})
    CnnBottleneckSpec(**{**TINY, "tasks": ["frequencies"], "n_test": 1790})  # no digits: fine
    with pytest.raises(ValueError, match="^n_train"):
        digits_task(1000, 800, 0)
    # the scaling uses the training images only: more test images leave the training set as is
    small, large = digits_task(20, 5, 0), digits_task(20, 500, 0)
    torch.testing.assert_close(small.x_train, large.x_train, rtol=0, atol=0)
    assert abs(float(small.x_train.mean())) < 1e-12 and float(small.x_train.std()) == pytest.approx(
        1
    )
    from sklearn.datasets import load_digits

    assert len(load_digits().target) == DIGITS_SIZE


@pytest.mark.slow
def test_quick_preset_network_reaches_the_bottleneck():
    """The quick preset's depth-4 network (6000 Adam steps, ~50 CPU-seconds) passes the fit gate
    and keeps S ∪ (−S) ∪ {0} in its middle layers, each layer's ‖K‖² near R / n²."""
    root = Path(symlab.__file__).parent / "configs" / "cnn-bottleneck"
    values = tomllib.loads((root / "quick.toml").read_text())
    spec = CnnBottleneckSpec(**{**values, "depths": [4]})
    study = get_experiment("cnn-bottleneck")
    row = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    assert bool(converged(row, spec).iloc[0])
    rec = row.iloc[0]
    assert rec["middle_subset_of_task"] and rec["middle_keeps_task"]
    assert rec["middle_cbn_rank"] == 5
    rank_over_n2 = 5 / spec.image_size**2
    assert all(abs(v - rank_over_n2) < 0.1 * rank_over_n2 for v in rec["layer_norms_sq"])


def test_gate_rejects_a_polish_that_stalls_early():
    """With a polish, a row passes only if L-BFGS reached its tolerance or used >= 1/5 of its
    iterations; the rebalanced start has imbalance 0, so the other checks cannot tell."""
    spec = CnnBottleneckSpec(tasks=["digits"], image_size=8, polish_iters=1000)
    base = {"train_error": 0.1, "last_fifth_drop": 1e-4, "imbalance": 0.0, "task": "digits",
            "depth": 6, "objective": 0.2}  # fmt: skip
    rows = pd.DataFrame([
        {**base, "polish_iterations": 12, "polish_stop_reason": "stalled"},
        {**base, "polish_iterations": 199, "polish_stop_reason": "stalled"},
        {**base, "polish_iterations": 200, "polish_stop_reason": "stalled"},
        {**base, "polish_iterations": 3, "polish_stop_reason": "tol"},
        {**base, "polish_iterations": 1000, "polish_stop_reason": "steps"},
    ])  # fmt: skip
    assert converged(rows, spec).tolist() == [False, False, True, True, True]
    plain = CnnBottleneckSpec(tasks=["digits"], image_size=8)
    assert converged(rows.drop(columns=["polish_iterations"]), plain).all()


def test_gate_counts_the_iterations_of_every_stage_of_a_ladder():
    """A ladder's last stage that stalls early after the earlier stages moved has left the
    rebalanced start: the fifth of polish_iters is counted over all stages; a ladder whose
    stages all stall at once is still rejected, and a row without a ladder (a diverged run,
    or one stored before the ladder) falls back to polish_iterations."""
    spec = CnnBottleneckSpec(tasks=["digits"], image_size=8, lam=0.1, polish_iters=1000,
                             polish_from=1e-3, polish_stages=3)  # fmt: skip
    base = {"train_error": 0.1, "last_fifth_drop": 1e-4, "imbalance": 0.0, "task": "digits",
            "depth": 6, "objective": 0.2,
            "polish_stop_reason": "stalled"}  # fmt: skip
    moved = [[1e-3, 2.0, 1.0, 1000, "steps"], [1e-2, 1.1, 1.0, 400, "stalled"]]
    rows = pd.DataFrame([
        {**base, "polish_iterations": 12, "polish_ladder": moved + [[0.1, 1.2, 1.1, 12, "stalled"]]},
        {**base, "polish_iterations": 2,
         "polish_ladder": [[1e-3, 2.0, 2.0, 1, "stalled"], [1e-2, 2.0, 2.0, 0, "stalled"],
                           [0.1, 2.1, 2.1, 2, "stalled"]]},
        {**base, "polish_iterations": 12, "polish_ladder": float("nan")},
        {**base, "polish_iterations": 300, "polish_ladder": []},
    ])  # fmt: skip
    assert converged(rows, spec).tolist() == [True, False, False, True]


def test_gate_keeps_only_near_optimal_runs_of_each_depth():
    """A fitted, balanced run at a worse critical point (objective 1.8x the best seed's at its
    depth, as measured at depth 16) is left out; depths and tasks are compared separately, the
    margin is the spec's, and a collapsed run (f = 0) that is the best sets the bar for all."""
    spec = CnnBottleneckSpec(tasks=["frequencies"], lam=0.1)
    good = {"task": "frequencies", "train_error": 6e-4, "last_fifth_drop": 1e-4, "imbalance": 1e-3}
    rows = pd.DataFrame([
        {**good, "depth": 16, "objective": 0.3197},
        {**good, "depth": 16, "objective": 0.3238},  # 1.3 % above the best: near-optimal
        {**good, "depth": 16, "objective": 0.5822},  # a worse critical point
        {**good, "depth": 8, "objective": 0.5822},  # alone at its depth: the best there
        {**good, "depth": 4, "objective": 0.30, "train_error": 1.0},  # collapsed, yet the best
        {**good, "depth": 4, "objective": 0.45},  # fitted, 50 % above it
    ])  # fmt: skip
    assert converged(rows, spec).tolist() == [True, True, False, True, False, False]
    loose = CnnBottleneckSpec(tasks=["frequencies"], lam=0.1, max_excess_objective=1.0)
    assert converged(rows, loose).tolist() == [True, True, True, True, False, True]
    with pytest.raises(ValueError, match="max_excess_objective"):
        CnnBottleneckSpec(tasks=["frequencies"], max_excess_objective=0.0)


def test_jobs_without_a_ladder_keep_the_keys_of_stores_written_before_it():
    """The ladder's fields enter a job's params (its store key) only when a ladder is asked for."""
    study = get_experiment("cnn-bottleneck")
    plain = study.expand(CnnBottleneckSpec(**TINY))[0]
    assert "polish_from" not in plain and "polish_stages" not in plain
    ladder = CnnBottleneckSpec(**{**TINY, "lam": 0.1, "polish_iters": 5, "polish_from": 1e-3,
                                  "polish_stages": 3})  # fmt: skip
    job = study.expand(ladder)[0]
    assert job["polish_from"] == 1e-3 and job["polish_stages"] == 3
