"""The rank-jumps study: entry-sampled completion data against the masked loss, the transition
counts by hand, verdicts that reproduce, fail and abstain on synthetic rows, and a tiny pipeline."""

from pathlib import Path

import pandas as pd
import pytest
import torch

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import symlab
from symlab.bias import DeepLinearNetwork, low_rank_task
from symlab.bias.completion import entry_data, entry_loss
from symlab.engine.experiment import get_experiment
from symlab.experiments.rank_jumps import RankJumpsSpec, rank_and_gap, transition_counts

TINY = dict(dim=4, rank=1, width=4, fit_steps=10, settle_steps=10, steps=8, records=4,
            starts=2, anneal_steps=4)  # fmt: skip


def test_entry_data_full_batch_is_the_masked_half_squared_error():
    task = low_rank_task(6, 2, observed=0.5, noise=0.3, seed=1)
    x, y = entry_data(task)
    assert len(x) == int(task.mask.sum())
    net = DeepLinearNetwork(6, 6, 4, 3, variance=0.5, seed=0, dtype=torch.float64)
    loss = entry_loss(len(x))
    value = loss(net(x), y).detach()
    a = net.end_to_end().detach()
    expected = 0.5 * ((a - task.observations) * task.mask).square().sum()
    assert float(value) == pytest.approx(float(expected), rel=1e-12)
    # a minibatch is an unbiased estimate: the mean over a partition into batches is the loss
    halves = [loss(net(x[i::2]), y[i::2]) for i in range(2)] if len(x) % 2 == 0 else None
    if halves is not None:
        assert float(sum(halves).detach() / 2) == pytest.approx(float(expected), rel=1e-12)
    with pytest.raises(ValueError, match="^n_entries: expected a positive integer"):
        entry_loss(0)


def test_transition_counts_and_rank_gap():
    counts = transition_counts([[4, 4, 3, 3, 2], [3, 4, 4]], 6)
    assert counts[4, 3] == 1 and counts[3, 2] == 1 and counts[3, 4] == 1 and counts.sum() == 3
    assert rank_and_gap(torch.tensor([5.0, 2.0, 1e-4, 0.0]), 1e-2) == (2, 2.0 / 1e-4)
    assert rank_and_gap(torch.tensor([float("nan"), 1.0]), 1e-2)[0] == -1


def _row(start, gd, sgd):
    n = len(start)
    return {"task_seed": 0, "start_ranks": start, "gd_ranks": gd, "sgd_ranks": sgd,
            "gd_test_error": [0.1] * n, "sgd_test_error": [0.1] * n, "seconds": 1.0}  # fmt: skip


def _outcomes(summary):
    return {c["name"]: c["outcome"] for c in summary.extras["claims"]}


def test_verdicts_reproduce_fail_and_abstain_on_synthetic_rows():
    study = get_experiment("rank-jumps")
    spec = RankJumpsSpec(rank=2)
    good = pd.DataFrame([_row([4, 3], [[4, 4, 4], [3, 3, 3]], [[4, 3, 3], [3, 3, 2]])])
    assert _outcomes(study.summarize(good, spec)) == {"sgd_one_way": "reproduced",
                                                      "gd_stays": "reproduced"}  # fmt: skip
    bad = pd.DataFrame([_row([4, 3], [[4, 3, 3], [3, 2, 2]], [[4, 3, 4], [3, 3, 2]])])
    summary = study.summarize(bad, spec)
    assert _outcomes(summary) == {"sgd_one_way": "not reproduced", "gd_stays": "not reproduced"}
    assert summary.extras["sgd_transitions"][3][4] == 1
    # SGD jumps only where GD moves too: the positive-probability part is not shown
    moving = pd.DataFrame([_row([4, 4], [[4, 3, 3], [4, 4, 4]], [[4, 3, 3], [4, 4, 4]])])
    assert _outcomes(study.summarize(moving, spec))["sgd_one_way"] == "partly reproduced"
    idle = pd.DataFrame([_row([2, 2], [[2, 2], [2, 2]], [[2, 2], [2, 2]])])
    assert _outcomes(study.summarize(idle, spec)) == {"sgd_one_way": "inconclusive",
                                                      "gd_stays": "not measured"}  # fmt: skip
    diverged = pd.DataFrame([_row([4, 4], [[4, 4], [4, 4]], [[4, 3], [4, -1]])])
    summary = study.summarize(diverged, spec)
    assert "1 diverged" in summary.verdict
    assert "2/2 GD runs" in summary.verdict  # GD's claim keeps the start whose SGD twin diverged


def test_pipeline_tiny(tmp_path):
    study = get_experiment("rank-jumps")
    spec = RankJumpsSpec(**TINY)
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    row = rows.iloc[0]
    assert len(row["gd_ranks"]) == 2 and len(row["gd_ranks"][0]) == len(row["gd_steps"])
    assert row["sgd_steps"][-1] == spec.anneal_steps + spec.steps
    assert row["gd_ranks"][0][0] == row["start_ranks"][0]
    summary = study.summarize(rows, spec)
    assert set(_outcomes(summary)) == {"sgd_one_way", "gd_stays"}
    paths = study.plot(rows, spec, tmp_path)
    assert any(p.name == "rank_jumps.png" for p in paths)


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "rank-jumps"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(RankJumpsSpec.model_fields)
    RankJumpsSpec(**values)
    with pytest.raises(ValueError, match="depth"):
        RankJumpsSpec(**{**values, "depth": 2})
    with pytest.raises(ValueError, match="rank"):
        RankJumpsSpec(**{**values, "rank": values["dim"] + 1})
