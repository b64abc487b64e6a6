"""The job limit: counted without expanding, exact for every built-in study, and --force."""

from __future__ import annotations

import pytest
from cli_in_process import cli

from symlab.engine import list_experiments, list_presets, load_spec
from symlab.engine.job_limit import DEFAULT_MAX_JOBS, check_job_limit, count_jobs

PRESETS = [(e.name, p) for e in list_experiments() for p in list_presets(e)]


@pytest.mark.parametrize(("study", "preset"), PRESETS)
def test_count_jobs_equals_the_expansion_of_every_preset(study, preset):
    experiment = next(e for e in list_experiments() if e.name == study)
    spec = load_spec(experiment, preset=preset)
    assert count_jobs(experiment, spec) == len(experiment.expand(spec))


def test_a_huge_grid_is_counted_multiplicatively_without_expansion():
    experiment = next(e for e in list_experiments() if e.name == "hidden-symmetries")
    spec = load_spec(experiment).model_copy(update={"seeds": 10**12})  # 10^15 jobs, no memory
    cells = len(spec.input_dims) * len(spec.widths) * len(spec.depths) * len(spec.samplers)
    assert count_jobs(experiment, spec) == cells * 10**12
    with pytest.raises(ValueError, match="over the limit of 10,000,000"):
        check_job_limit(experiment, spec)
    assert DEFAULT_MAX_JOBS == 10**7


def test_force_runs_a_grid_over_the_limit(toy, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SYMLAB_MAX_JOBS", "5")
    code, _, err = cli(capsys, "run", "toy", "-o", str(tmp_path / "a"))
    assert code == 2 and "the grid has 8 jobs, over the limit of 5" in err
    assert not (tmp_path / "a").exists()
    code, out, err = cli(capsys, "run", "toy", "-o", str(tmp_path / "a"), "--force", "-q")
    assert code == 0, err
    assert "8 jobs run" in out
