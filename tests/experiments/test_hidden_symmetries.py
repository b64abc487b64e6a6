"""The hidden-symmetries study at a tiny size: jobs, rows, summary, verdict, figures, CLI."""

import itertools
import subprocess
import sys

import pandas as pd
import pytest
import torch

from symlab.engine import get_experiment, load_spec
from symlab.experiments.hidden_symmetries import HiddenSymmetriesSpec, expand, run_job
from symlab.linalg import parameter_jacobian
from symlab.nets import mlp
from symlab.symmetry import fd_bound

TINY = dict(input_dims=[2, 3], widths=[3], depths=[1, 2], seeds=3, max_points=600)


@pytest.fixture(scope="module")
def tiny_rows() -> pd.DataFrame:
    spec = HiddenSymmetriesSpec(**TINY, samplers=["gaussian", "multiscale"])
    jobs = expand(spec)
    return pd.DataFrame([{**job, **run_job(job)} for job in jobs])


def test_expand_covers_the_grid_and_diagonal_only():
    spec = HiddenSymmetriesSpec(**TINY)
    assert len(expand(spec)) == 2 * 1 * 2 * 3
    diagonal = HiddenSymmetriesSpec(**{**TINY, "input_dims": [3, 5], "diagonal_only": True})
    assert {(j["n0"], j["width"]) for j in expand(diagonal)} == {(3, 3)}


def test_rows_respect_the_bound_and_match_an_independent_rank(tiny_rows):
    assert (tiny_rows["rank"] <= tiny_rows["bound"]).all()
    for _, row in tiny_rows.iterrows():
        widths = [row.n0] + [row.width] * row.depth + [1]
        assert row.bound == fd_bound(widths)
    # Re-derive one network's rank with the generic torch.func Jacobian + SVD on fresh points.
    row = tiny_rows[(tiny_rows.depth == 1) & (tiny_rows.n0 == 3)].iloc[0]
    model = mlp([3, 3, 1], bias_std=0.1, seed=int(row.seed))
    x = torch.randn(2000, 3, dtype=torch.float64) * 3
    jac = parameter_jacobian(model, x, method="generic")
    assert int(torch.linalg.matrix_rank(jac)) == row["rank"]


def test_deficit_attribution_never_exceeds_the_deficit(tiny_rows):
    # Every counted mechanism direction lies in ker J, so the prediction is a lower bound.
    assert (tiny_rows["predicted_deficit"] <= tiny_rows["deficit"]).all()
    assert (tiny_rows["unexplained_deficit"] >= 0).all()


def test_summary_verdict_and_figures(tiny_rows, tmp_path):
    experiment = get_experiment("hidden-symmetries")
    spec = HiddenSymmetriesSpec(**TINY, samplers=["gaussian", "multiscale"])
    summary = experiment.summarize(tiny_rows, spec)
    assert len(summary.table) == 2 * 2 * 1 * 2
    assert summary.table["frac_full"].between(0, 1).all()
    assert "decreases with depth" in summary.verdict or "trend with depth" in summary.verdict
    assert "multi-scale sampler" in summary.verdict
    names = [c["name"] for c in summary.extras["claims"]]
    assert names == ["depth", "diagonal", "width_fixed_n0", "n0_fixed_width", "interval"]
    assert "parameters unused on the sample (never-co-active edges) explain" in summary.verdict
    paths = experiment.plot(tiny_rows, spec, tmp_path)
    names = {p.name for p in paths}
    assert {"full_fd_vs_depth.png", "full_fd_vs_input_dim.png", "deficit_attribution.svg"} <= names
    assert all(p.stat().st_size > 1000 for p in paths)


def test_presets_load_and_paper_preset_holds_the_papers_cells():
    quick = load_spec("hidden-symmetries", preset="quick")
    assert len(expand(quick)) <= 1000
    paper = load_spec("hidden-symmetries", preset="paper")
    assert len(paper.input_dims) >= 4 and len(paper.widths) >= 4
    assert len(paper.depths) >= 6 and paper.seeds >= 50
    cells = {(j["n0"], j["width"], j["depth"], j["sampler"]) for j in expand(paper)}
    for n in (5, 10, 15):
        for depth in (4, 5, 6):
            assert (n, n, depth, "gaussian") in cells and (n, n, depth, "multiscale") in cells


def test_cli_runs_a_tiny_config_end_to_end(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(
        "input_dims = [2]\nwidths = [3]\ndepths = [1, 2]\nseeds = 2\nmax_points = 400\n"
    )
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "symlab.cli", "run", "hidden-symmetries", "--config", str(config),
         "--out", str(out)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "results.sqlite").exists() and (out / "report.html").exists()
    assert (out / "figures" / "full_fd_vs_depth.png").exists()
    assert "reach the bound" in (out / "verdict.md").read_text()


def test_three_samplers_with_boundary_compare_pairwise(tmp_path):
    spec = HiddenSymmetriesSpec(
        input_dims=[3], widths=[5], depths=[2], seeds=3, max_points=500,
        samplers=["gaussian", "multiscale", "boundary"],
    )  # fmt: skip
    rows = pd.DataFrame([{**job, **run_job(job)} for job in expand(spec)])
    assert set(rows["sampler"]) == {"gaussian", "multiscale", "boundary"}
    assert (rows["rank"] <= rows["bound"]).all()
    experiment = get_experiment("hidden-symmetries")
    verdict = experiment.summarize(rows, spec).verdict
    for first, second in [("boundary", "multi-scale"), ("boundary", "Gaussian"),
                          ("multi-scale", "Gaussian")]:  # fmt: skip
        assert f"the {first} sampler finds a higher rank than the {second} one" in verdict
    # the boundary sampler's rank is never below the multiscale one on these networks (measured)
    pivot = rows.pivot_table(index="seed", columns="sampler", values="rank")
    assert (pivot["boundary"] >= pivot["multiscale"]).all()
    paths = experiment.plot(rows, spec, tmp_path)
    assert {"full_fd_vs_depth.png", "deficit_attribution.png"} <= {p.name for p in paths}


def _networks(probability, n=20, sampler="multiscale"):
    """Synthetic rows: round(n * probability(n0, width, depth)) of n networks per cell at full FD."""
    rows = []
    for n0, width, depth in itertools.product([3, 5, 8], [3, 5, 8], [1, 2, 3]):
        k = round(n * min(max(probability(n0, width, depth), 0.0), 1.0))
        rows += [{"sampler": sampler, "n0": n0, "width": width, "depth": depth,
                  "full": i < k} for i in range(n)]  # fmt: skip
    return pd.DataFrame(rows)


def _hs_outcomes(rows):
    from symlab.experiments.hidden_symmetries_verdict import hidden_symmetry_claims

    return {c.name: c.outcome for c in hidden_symmetry_claims(rows)}


def test_claims_reproduced_when_the_trends_are_the_papers():
    rows = _networks(lambda n0, w, d: 0.2 + 0.06 * n0 + 0.03 * w - 0.2 * d)
    assert _hs_outcomes(rows) == dict.fromkeys(
        ["depth", "diagonal", "width_fixed_n0", "n0_fixed_width"], "reproduced"
    )


def test_claims_fail_on_flat_or_reversed_trends():
    flat = _hs_outcomes(_networks(lambda n0, w, d: 0.5))
    assert set(flat.values()) == {"not reproduced"}
    reversed_ = _hs_outcomes(_networks(lambda n0, w, d: 0.9 - 0.05 * n0 - 0.04 * w + 0.15 * d))
    assert set(reversed_.values()) == {"opposite"}
    # width falls at fixed n0 while the diagonal still rises: reported apart, with its sign
    mixed = _hs_outcomes(_networks(lambda n0, w, d: 0.1 + 0.12 * n0 - 0.04 * w))
    assert mixed["diagonal"] == "reproduced" and mixed["width_fixed_n0"] == "opposite"
    off_diagonal = _networks(lambda n0, w, d: 0.5)
    off_diagonal = off_diagonal[off_diagonal["n0"] != off_diagonal["width"]]
    assert _hs_outcomes(off_diagonal)["diagonal"] == "not measured"


def test_a_significant_trend_whose_strata_split_is_only_partly_reproduced():
    """Width rises strongly at n0 = 3 and falls gently at n0 = 5 and 8: the Stouffer Z is
    significant and positive, but as many strata go against the claim as along it."""
    from symlab.experiments.hidden_symmetries_verdict import hidden_symmetry_claims

    def probability(n0, w, d):
        return 0.1 + 0.1 * w if n0 == 3 else 0.6 - 0.01 * w

    claims = {c.name: c for c in hidden_symmetry_claims(_networks(probability, n=40))}
    width = claims["width_fixed_n0"]
    assert width.outcome == "partly reproduced", width.measured
    assert "the strata split" in width.measured
    steady = _hs_outcomes(_networks(lambda n0, w, d: 0.1 + 0.05 * w, n=40))
    assert steady["width_fixed_n0"] == "reproduced"


def test_rows_carry_a_proven_interval_and_the_verdict_counts_unproven_networks(tiny_rows):
    from symlab.experiments.hidden_symmetries import summarize

    assert (tiny_rows["rank"] <= tiny_rows["upper"]).all()
    assert (tiny_rows["upper"] <= tiny_rows["bound"]).all()
    assert (tiny_rows["exact"] == (tiny_rows["rank"] == tiny_rows["upper"])).all()
    assert tiny_rows["exact"].sum() > 0  # small cells: the regions are enumerated, values pinned
    spec = HiddenSymmetriesSpec(**TINY, samplers=["gaussian", "multiscale"])
    summary = summarize(tiny_rows, spec)
    table = summary.table
    assert (table["frac_full"] <= table["frac_full_upper"]).all()
    assert table["n_exact"].sum() == tiny_rows["exact"].sum()
    (claim,) = [c for c in summary.extras["claims"] if c["name"] == "interval"]
    n, exact = len(tiny_rows), int(tiny_rows["exact"].sum())
    assert f"{exact} of {n} networks are exact" in claim["measured"]
    expected = "reproduced" if exact == n else "partly reproduced"
    assert claim["outcome"] == expected and claim["measured"] in summary.verdict
    # a sweep where no value is proven, and one where every value is
    unproven = tiny_rows.assign(exact=False, full_possible=True)

    def interval(summary):
        return next(c for c in summary.extras["claims"] if c["name"] == "interval")["outcome"]

    assert interval(summarize(unproven, spec)) == "inconclusive"
    proven = tiny_rows.assign(exact=True)
    assert interval(summarize(proven, spec)) == "reproduced"


def test_uncertified_budget_stops_report_counts_and_the_verdict_says_so():
    # certify_budget_stops = false: networks capped far below their upper bound keep the
    # certified count (a lower bound on their sample's certified rank, same sample); the verdict
    # says how many, and compares samplers only where a higher rank is certain
    shared = dict(input_dims=[3], widths=[8], depths=[4], seeds=2, max_points=1000,
                  samplers=["gaussian", "multiscale"])  # fmt: skip
    counted_spec = HiddenSymmetriesSpec(**shared, certify_budget_stops=False)
    counted = pd.DataFrame([{**job, **run_job(job)} for job in expand(counted_spec)])
    certified = pd.DataFrame(
        [{**job, **run_job(job)} for job in expand(HiddenSymmetriesSpec(**shared))]
    )
    assert (counted["rank_method"] == "gram (count)").all()
    assert (certified["rank_method"] != "gram (count)").all()
    assert (counted["rank"] <= certified["rank"]).all()
    assert (counted["n_points"] == certified["n_points"]).all()
    verdict = get_experiment("hidden-symmetries").summarize(counted, counted_spec).verdict
    assert "4 of them report the certified count" in verdict
    assert "networks with a certified sample rank keep a part" in verdict
    # both sides counted: no comparison is certain, the differences are reported apart
    assert "finds a higher rank than the Gaussian one for 0 of 2 networks" in verdict
    plain = get_experiment("hidden-symmetries").summarize(certified, HiddenSymmetriesSpec(**shared))
    assert "certified count" not in plain.verdict
