"""The sparsity study: the tight target, plateau onsets by hand, verdicts that reproduce, fail and
abstain on synthetic rows, and a tiny pipeline."""

from pathlib import Path

import pandas as pd
import pytest
import torch

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import symlab
from symlab.engine.experiment import get_experiment
from symlab.experiments.sparsity import SparsitySpec, bipartite_target, plateau_onsets

TINY = dict(tight_n=[2, 4], tight_steps=30, tasks=["teacher", "digits"], n_train=[6],
            widths=[1, 3], steps=30, seeds=1)  # fmt: skip


def test_bipartite_target_is_the_gram_of_the_edge_vertex_matrix():
    n = 6
    h = n // 2
    edges = [(i, h + j) for i in range(h) for j in range(h)]
    e = torch.zeros(len(edges), n, dtype=torch.float64)
    for k, (i, j) in enumerate(edges):
        e[k, i] = e[k, j] = 1.0
    torch.testing.assert_close(bipartite_target(n), e.T @ e)


def _width_rows(objectives, n=10, task="teacher"):
    return pd.DataFrame([
        {"part": "width", "task": task, "n": n, "width": w, "seed": 0, "objective": v,
         "reduced_width": w, "output_change": 0.0}
        for w, v in objectives.items()
    ])  # fmt: skip


def _tight_rows(reduced):
    return pd.DataFrame([
        {"part": "tight", "task": None, "n": n, "width": None, "seed": 0, "objective": 0.1,
         "reduced_width": r, "alive": [r], "trained_width": 2 * n * n, "tight_bound": n * n // 4,
         "bound": n * (n + 1), "output_change": 0.0}
        for n, r in reduced.items()
    ])  # fmt: skip


def _outcomes(summary):
    return {c["name"]: c["outcome"] for c in summary.extras["claims"]}


def test_plateau_onset_by_hand():
    # fall 1.0 -> 0.1: the onset is the first width at or below 0.1 + 0.1 · 0.9 = 0.19
    onsets = plateau_onsets(_width_rows({1: 1.0, 2: 0.5, 4: 0.185, 8: 0.1, 16: 0.12}), 0.1)
    assert onsets.iloc[0]["onset"] == 4 and not onsets.iloc[0]["lower_bound"]
    onsets = plateau_onsets(_width_rows({1: 1.0, 2: 0.5, 4: 0.3}), 0.1)
    assert onsets.iloc[0]["onset"] == 4 and onsets.iloc[0]["lower_bound"]


def test_verdicts_reproduce_fail_and_abstain_on_synthetic_rows():
    study = get_experiment("sparsity")
    spec = SparsitySpec(far_fraction=0.1)  # N(N+1) = 110 at N = 10: far below means <= 11
    flat = _width_rows({1: 1.0, 2: 0.5, 4: 0.1, 8: 0.1, 16: 0.1})
    good = pd.concat([flat, _tight_rows({4: 4, 6: 10})])
    assert _outcomes(study.summarize(good, spec)) == {
        "plateau": "reproduced",
        "tight": "reproduced",
    }
    late = _width_rows({1: 1.0, 4: 0.5, 16: 0.3, 32: 0.1, 64: 0.1})
    bad = pd.concat([late, _tight_rows({4: 4, 6: 5})])
    assert _outcomes(study.summarize(bad, spec)) == {"plateau": "not reproduced",
                                                     "tight": "not reproduced"}  # fmt: skip
    falling = _width_rows({1: 1.0, 2: 0.5, 4: 0.3})
    assert (
        _outcomes(study.summarize(pd.concat([falling, _tight_rows({4: 4})]), spec))["plateau"]
        == "inconclusive"
    )
    assert _outcomes(study.summarize(_tight_rows({4: 4}), spec))["plateau"] == "not measured"


def test_pipeline_tiny(tmp_path):
    study = get_experiment("sparsity")
    spec = SparsitySpec(**TINY)
    rows = pd.DataFrame([{**job, **study.run_job(job)} for job in study.expand(spec)])
    assert len(rows) == 2 + 4
    assert rows["output_change"].max() < 1e-8
    assert (rows["penalty_after"] <= rows["penalty_before"] * (1 + 1e-9) + 1e-12).all()
    tight = rows[rows["part"] == "tight"]
    assert (tight["reduced_width"] <= tight["bound"]).all()
    summary = study.summarize(rows, spec)
    assert set(_outcomes(summary)) == {"plateau", "tight"}
    paths = study.plot(rows, spec, tmp_path)
    assert any(p.name == "sparsity_width.png" for p in paths)


@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_presets_validate(preset):
    root = Path(symlab.__file__).parent / "configs" / "sparsity"
    values = tomllib.loads((root / f"{preset}.toml").read_text())
    assert set(values) == set(SparsitySpec.model_fields)
    SparsitySpec(**values)
    with pytest.raises(ValueError, match="even N"):
        SparsitySpec(**{**values, "tight_n": [5]})
