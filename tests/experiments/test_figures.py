"""Figures on synthetic rows (no training): math text in titles and labels, one legend per figure,
the spread over seeds drawn as a band, error bars of different curves offset horizontally."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from symlab.experiments import hidden_symmetries_plots, ntk_dynamics_plots, ntk_optimizers

# the literal, non-math spellings the figures used to carry
OLD_LITERALS = (
    "Θ_{t_(i-1)}",
    "t_(i-1)",
    "S(Θ_0, Θ_t)",
    "Θ_t",
    "‖f_t(X) − y‖²",
    "rank = D − #hidden",
)


@pytest.fixture
def captured(monkeypatch):
    """Replace a plot module's save_figure by a recorder of the figures it is handed."""
    figures = []

    def capture(module):
        def record(fig, out_dir, stem):
            figures.append((stem, fig))
            return []

        monkeypatch.setattr(module, "save_figure", record)
        return figures

    yield capture
    for _, fig in figures:
        plt.close(fig)


def _texts(fig) -> list[str]:
    texts = [fig._suptitle.get_text()] if fig._suptitle else []
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    for legend in fig.legends:
        texts += [t.get_text() for t in legend.get_texts()]
    return texts


def _assert_math_text(fig) -> None:
    texts = _texts(fig)
    assert any("$" in t for t in texts)
    for text in texts:
        assert not any(old in text for old in OLD_LITERALS), text


def _dynamics_rows() -> pd.DataFrame:
    """Two lrs x 3 seeds on one (model, task): at lr 1 one run unstable and one diverged."""
    steps = [0, 1, 3, 10, 30]
    rng = np.random.default_rng(0)
    rows = []
    for lr in (0.1, 1.0):
        for seed in range(3):
            kind = "stable" if lr == 0.1 or seed == 0 else ("unstable" if seed == 1 else "diverged")
            velocity = lr * np.exp(-np.arange(4)) * (1 + 0.2 * rng.random(4))
            distance = np.concatenate([[0.0], np.cumsum(velocity)])
            acc = np.linspace(0.5, 0.8, 5) + 0.02 * rng.random(5)
            if kind == "diverged":
                velocity[2:], distance[3:], acc[3:] = np.nan, np.nan, np.nan
            rows.append({
                "model": "mlp", "task": "digits", "lr": lr, "seed": seed, "record_steps": steps,
                "velocity": velocity.tolist(), "distance": distance.tolist(),
                "kernel_acc": acc.tolist(), "net_acc": (acc + 0.1).tolist(),
                "kernel_acc_init": 0.5 + 0.01 * seed, "diverged": kind == "diverged",
                "unstable": kind == "unstable", "unstable_step": 10 if kind == "unstable" else None,
                "epoch_steps": 10.0, "kernel_test": 50,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_ntk_dynamics_figures_use_math_text_a_band_and_one_legend(captured, tmp_path):
    figures = captured(ntk_dynamics_plots)
    ntk_dynamics_plots.plot(_dynamics_rows(), None, tmp_path)
    assert [stem for stem, _ in figures] == [
        *(f"ntk_dynamics_{k}" for k in ntk_dynamics_plots.YLABELS),
        "ntk_dynamics_error_ratio",
    ]
    ratio = figures.pop()[1]  # every stable run faint under the medians, one legend, math text
    _assert_math_text(ratio)
    assert len(ratio.legends) == 1 and all(ax.get_legend() is None for ax in ratio.axes)
    assert len(ratio.axes[0].lines) == 4 + 2 + 3  # 4 stable runs, 2 medians, 3x, 1x, epoch
    for stem, fig in figures:
        _assert_math_text(fig)
        assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
        (ax,) = fig.axes
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert bands, f"{stem}: no band for the spread over seeds"
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert any("unstable" in label for label in labels)
    velocity = figures[0][1]
    assert r"\Theta_{t_{i-1}}" in velocity._suptitle.get_text()


def test_ntk_optimizers_figure_uses_math_text_and_one_legend(captured, tmp_path):
    figures = captured(ntk_optimizers)
    spec = ntk_optimizers.NTKOptimizersSpec(iterations=30, seeds=2)
    rows = []
    for name, rate in zip(ntk_optimizers.OPTIMIZERS, (0.9, 0.6, 0.8), strict=True):
        for seed in range(2):
            predicted = rate ** (2 * np.arange(31))
            measured = predicted * (1 + 0.01 * np.arange(31) * (seed + 1))
            rows.append({
                "optimizer": name, "seed": seed, "measured": measured.tolist(),
                "predicted": predicted.tolist(), "compare_end": 30,
            })  # fmt: skip
    ntk_optimizers.plot(pd.DataFrame(rows), spec, tmp_path)
    ((stem, fig),) = figures
    assert stem == "ntk_optimizers_error"
    _assert_math_text(fig)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)


def test_hidden_symmetries_error_bars_of_different_curves_do_not_overlap():
    table = pd.DataFrame([
        {"sampler": "gaussian", "n0": 2, "width": width, "depth": depth, "frac_full": 0.0,
         "frac_full_lo": 0.0, "frac_full_hi": 0.2}
        for width in (4, 8, 16) for depth in (1, 2, 3)
    ])  # fmt: skip
    labels = {"n0": "$n_0$ =", "width": "width", "depth_axis": "depth $L$"}
    fig = hidden_symmetries_plots._fraction_panels(table, "depth", "n0", "width", labels, "title")
    try:
        (ax,) = fig.axes
        xs = [np.asarray(bars.lines[0].get_xdata(), dtype=float) for bars in ax.containers]
        assert len(xs) == 3
        for depth_index in range(3):
            at_depth = sorted(x[depth_index] for x in xs)
            assert np.all(np.diff(at_depth) > 0.05)  # apart, yet near the true depth
            assert abs(np.mean(at_depth) - (depth_index + 1)) < 1e-9
        assert len(fig.legends) == 1 and ax.get_legend() is None
    finally:
        plt.close(fig)
