"""The saddle-to-saddle study at tiny size: a real run finds the staircase and the lazy end point;
the rows agree with independent recomputations (plateaus, ranks, the self-consistent distance,
Tu et al.'s stopping rule); every claim of the verdict can fail on synthetic rows; bad specs name
the field; the quick preset's verdict (slow)."""

import math
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
from symlab.bias import (
    DeepLinearNetwork,
    detect_plateaus,
    dln_learning_rate,
    integrate_mixed_dynamics,
    low_rank_task,
    stable_rank,
)
from symlab.engine.errors import SpecError
from symlab.engine.experiment import get_experiment
from symlab.engine.spec import spec_from_mapping
from symlab.experiments.saddle_to_saddle import CellMonitor, SaddleToSaddleSpec
from symlab.experiments.saddle_to_saddle_verdict import summarize
from symlab.train import gradient_descent

TINY = dict(
    dim=12, rank=2, trace_depths=[2, 3], trace_small_scales=[1e-14, 1e-5],
    trace_width_exponent=1.3, trace_steps=6000, trace_records=150, trace_seeds=2,
    gamma_sigma2=(-2.2, -0.8), gamma_sigma2_points=2, gamma_w=(1.75, 2.2), gamma_w_points=2,
    max_steps=200,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run():
    study = get_experiment("saddle-to-saddle")
    spec = study.spec_model(**TINY)
    jobs = study.expand(spec)
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in jobs])
    return study, spec, rows


def test_tiny_run_finds_the_staircase_and_the_lazy_end_point(tiny_run, tmp_path):
    study, spec, rows = tiny_run
    assert len(rows) == 2 * 3 + 4  # (depth, init) traces + 2 x 2 cells
    summary = study.summarize(rows, spec)
    outcomes = {c["name"].split(" (")[0]: c["outcome"] for c in summary.extras["claims"]}
    assert outcomes["Saddle-to-saddle at small init"] == "reproduced"
    assert outcomes["Lazy at large init"] == "reproduced"
    assert len(outcomes) == 5
    traces = rows[rows["part"] == "trace"]
    for rec in traces.itertuples():
        n_records = len(rec.steps)
        assert rec.steps[0] == 0 and rec.steps[-1] == rec.n_steps
        assert np.shape(rec.train_error) == (2, n_records)
        assert np.shape(rec.singular_values) == (2, n_records, spec.rank + 3)
        assert len(rec.plateau_ranks) == 2
    paths = study.plot(rows, spec, tmp_path)
    names = {p.name for p in paths}
    for stem in (
        "saddle_to_saddle_traces_L2",
        "saddle_to_saddle_traces_L3",
        "saddle_to_saddle_phase",
    ):
        assert f"{stem}.png" in names and f"{stem}.svg" in names
    assert all(p.stat().st_size > 1000 for p in paths)


def test_trace_rows_agree_with_independent_recomputation(tiny_run):
    _, spec, rows = tiny_run
    task = low_rank_task(12, 2, spectrum="geometric", ratio=0.25, observed=0.8, seed=0)
    s_star = torch.linalg.svdvals(task.target)
    for rec in rows[rows["part"] == "trace"].itertuples():
        for seed in range(2):
            spectra = np.asarray(rec.singular_values[seed])  # the top k + 3 singular values
            ranks = (spectra > spec.rank_threshold * float(s_star[1])).sum(axis=1)
            assert list(ranks) == list(np.minimum(rec.ranks[seed], spec.rank + 3))
            ranks = np.asarray(rec.ranks[seed])
            train = rec.train_error[seed]
            found = detect_plateaus(
                rec.steps, train, ranks, flat_fraction=spec.flat_fraction,
                min_decades=spec.min_decades, floor=spec.converge_tol * float(s_star[1]) ** 2 / 144,
            )  # fmt: skip
            assert [p.rank for p in found] == rec.plateau_ranks[seed]
        assert rec.target_singular_values[:2] == pytest.approx(s_star[:2].tolist(), rel=1e-12)
    small = rows[(rows["part"] == "trace") & (rows["init"] == "small")]
    for rec in small.itertuples():
        assert rec.plateau_ranks == [[0, 1], [0, 1]]
        for seed in rec.plateaus:  # the levels against the saddles', recomputed from A*
            for p in seed:
                predicted = float(s_star[p["rank"] :].square().sum()) / 144
                assert p["predicted_loss"] == pytest.approx(predicted, rel=1e-12)
                assert 0.5 < p["loss"] / predicted < 2
        assert rec.end_rank == [2, 2]
        assert max(rec.end_test_error) < 1e-2
        # the recovered end point has the target's stable rank
        assert rec.end_stable_rank == pytest.approx([stable_rank(s_star)] * 2, rel=0.05)


def test_cell_monitor_distance_matches_a_separate_integration():
    """The lockstep distance of a cell equals max_t ||A_t - B_t||_F / ||A*||_F with A_t recorded
    from a second GD run and B_t from integrate_mixed_dynamics."""
    d, width, variance = 8, 200, 4e-4
    task = low_rank_task(d, 2, noise=1.0, seed=0, dtype=torch.float64)
    s1 = float(torch.linalg.svdvals(task.target)[0])
    lr = dln_learning_rate(2, width, variance, s1, d)
    steps = 60

    def fresh():
        return DeepLinearNetwork(d, d, width, 2, variance, seed=3, dtype=torch.float64)

    monitor = CellMonitor(task, variance * width, lr)
    monitor.stop = lambda: False  # run all the steps
    options = dict(lr=lr, steps=steps, loss=task.loss(), record_every=[0], record_grad_norm=False)
    gradient_descent(fresh(), task.data(), callback=monitor, **options)
    recorded = []
    model = fresh()
    gradient_descent(
        model, task.data(), callback=lambda step, m: recorded.append(m.end_to_end().detach().clone()),
        **options,
    )  # fmt: skip
    sc = integrate_mixed_dynamics(recorded[0], task.observations, scale=variance * width, lr=lr,
                                  steps=steps)  # fmt: skip
    gaps = (torch.stack(recorded) - sc.matrices).flatten(1).norm(dim=1) / task.target.norm()
    assert len(recorded) == steps + 1 == len(monitor.test)
    assert monitor.sc_distance == pytest.approx(float(gaps.max()), rel=1e-9)
    best = int(np.argmin(monitor.test))
    assert monitor.best[1] == best
    assert monitor.best[0] == pytest.approx(float(task.test_error(recorded[best])), rel=1e-12)


def test_tu_stopping_rule():
    task = low_rank_task(4, 1, seed=0)
    monitor = CellMonitor(task, 1.0, 0.1)
    monitor.train, monitor.test = [1.0, 0.9, 0.8, 0.7, 0.6], [1.0, 0.9, 0.8, 0.85, 0.9]
    assert monitor.stop()  # test error up on two consecutive steps
    monitor.test = [1.0, 0.9, 0.8, 0.85, 0.8]
    assert not monitor.stop()
    monitor.train = [1.0, 0.9, 0.8, 0.7, 0.69999]
    assert monitor.stop()  # train plateau after a drop > 1e-2
    monitor.train = [1.0, 0.99999, 0.99998, 0.99997, 0.99996]
    assert not monitor.stop()  # flat, but it never dropped
    monitor.train = [1.0, 0.5, 0.2, 0.01, 0.0009]
    assert monitor.stop()  # train error < 1e-3


def _trace_row(init, depth, plateau_ranks, end_rank, end_test, end_sr, sr_star=1.1, level=1.0):
    plateaus = [
        [{"rank": r, "loss": level * 10.0**-r, "predicted_loss": 10.0**-r} for r in q]
        for q in plateau_ranks
    ]
    return {
        "part": "trace", "depth": depth, "init": init, "scale": 1.0, "variance": 1.0, "width": 10,
        "plateau_ranks": plateau_ranks, "saddle_to_saddle": [q in ([0, 1], [0, 1, 2]) for q in
                                                             plateau_ranks],
        "plateaus": plateaus, "end_rank": end_rank,
        "end_test_error": end_test, "end_stable_rank": end_sr, "target_stable_rank": sr_star,
        "n_steps": 100, "sc_distance_max": math.nan,
    }  # fmt: skip


def _cell_rows(lazy_sr, active_sr, active_rank, distance=0.01):
    rows = []
    for gs in (-2.2, -2.0, -1.8):
        for gw in (1.8, 2.0, 2.2):  # γ sums -0.4 .. 0.4: active with margin 0.5
            rows.append(dict(part="cell", gamma_sigma2=gs, gamma_w=gw, stable_rank=active_sr,
                             numerical_rank=active_rank, min_test_error=0.2, best_step=10,
                             sc_distance_max=distance, target_stable_rank=2.0))  # fmt: skip
    for gs in (-0.9, -0.8, -0.7):
        for gw in (2.2, 2.5, 2.8):  # γ sums > 1: lazy
            rows.append(dict(part="cell", gamma_sigma2=gs, gamma_w=gw, stable_rank=lazy_sr,
                             numerical_rank=20, min_test_error=0.9, best_step=10,
                             sc_distance_max=distance, target_stable_rank=2.0))  # fmt: skip
    return rows


def _outcomes(rows) -> dict[str, str]:
    spec = SaddleToSaddleSpec(rank=2, dim=12, trace_depths=[2], trace_small_scales=[1e-8])
    claims = summarize(pd.DataFrame(rows), spec).extras["claims"]
    return {c["name"].split(" (")[0]: c["outcome"] for c in claims}


def test_every_claim_can_fail():
    good_traces = [
        _trace_row("small", 2, [[0, 1], [0, 1]], [2, 2], [1e-4, 1e-4], [1.1, 1.1]),
        _trace_row("large", 2, [[], []], [9, 9], [1.0, 1.0], [4.0, 4.0]),
    ]
    good = _outcomes(good_traces + _cell_rows(lazy_sr=4.5, active_sr=2.0, active_rank=2))
    assert set(good.values()) == {"reproduced"}
    # a merged plateau, a lazy run with a plateau and no bias, ranks the other way round
    bad_traces = [
        _trace_row("small", 2, [[0], [0, 1]], [2, 2], [1e-4, 1e-4], [1.1, 1.1]),
        _trace_row("large", 2, [[3], []], [9, 9], [1e-5, 1e-5], [1.2, 1.2]),
    ]
    bad = _outcomes(
        bad_traces + _cell_rows(lazy_sr=2.0, active_sr=4.5, active_rank=9, distance=0.5)
    )
    assert bad["Saddle-to-saddle at small init"] == "partly reproduced"
    assert bad["Lazy at large init"] == "opposite"
    assert bad["Rank over-estimation in the lazy corner"] == "opposite"
    assert bad["Rank recovery in the active/mixed region"] == "not reproduced"
    assert bad["GD follows the self-consistent dynamics"] == "not reproduced"
    worse = [_trace_row("small", 2, [[0], [1]], [1, 1], [1e-4, 1e-4], [1.1, 1.1])]
    assert _outcomes(worse)["Saddle-to-saddle at small init"] == "not reproduced"
    # the right sequence at the wrong loss: plateaus 3x above the saddles' levels
    off = [_trace_row("small", 2, [[0, 1], [0, 1]], [2, 2], [1e-4, 1e-4], [1.1, 1.1], level=3.0)]
    assert _outcomes(off)["Saddle-to-saddle at small init"] == "partly reproduced"
    none = _outcomes(good_traces + _cell_rows(lazy_sr=2.2, active_sr=2.0, active_rank=2))
    assert none["Rank over-estimation in the lazy corner"] == "not reproduced"


@pytest.mark.parametrize(
    "values, field",
    [
        ({"trace_small_scales": [1e-8]}, "trace_small_scales"),
        ({"rank": 50}, "rank"),
        ({"gamma_w": [2.8, 1.75]}, "gamma_w"),
        ({"trace_spectrum_ratio": 1.5}, "trace_spectrum_ratio"),
    ],
)
def test_bad_spec_names_the_field(values, field):
    with pytest.raises(SpecError, match=field):
        spec_from_mapping("saddle-to-saddle", values)


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "saddle-to-saddle"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    SaddleToSaddleSpec(**values)


@pytest.mark.slow
def test_quick_preset_verdict():
    study = get_experiment("saddle-to-saddle")
    root = Path(symlab.__file__).parent / "configs" / "saddle-to-saddle"
    spec = SaddleToSaddleSpec(**tomllib.loads((root / "quick.toml").read_text()))
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    claims = {c["name"].split(" (")[0]: c for c in study.summarize(rows, spec).extras["claims"]}
    assert claims["Saddle-to-saddle at small init"]["outcome"] == "reproduced"
    assert claims["Lazy at large init"]["outcome"] == "reproduced"
    assert claims["Rank over-estimation in the lazy corner"]["outcome"] == "reproduced"
    assert claims["GD follows the self-consistent dynamics"]["outcome"] == "reproduced"
