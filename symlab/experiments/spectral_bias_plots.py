"""Figures of the ``spectral-bias`` study (:mod:`symlab.experiments.spectral_bias`).

``spectral_bias_shares``: each layer's share of the error reduction ⟨f_k, Θ_ℓ f_k⟩ / ⟨f_k, Θ f_k⟩
on the degree-k target, layer × degree, at init and after training (median over seeds).
``spectral_bias_eigenvalues``: (a) the per-layer eigenvalues λ_{ℓ,k} against k at init (first
seed, log scale), (b) the early/late ratio λ_{1,k}/λ_{L,k} against k at init (every seed) and
after training on degree k (every network).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from symlab.engine.figures import save_figure


def _share_maps(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    degrees = list(spec.degrees)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.55 * spec.depth + 2.4), constrained_layout=True)
    for ax, column, title in zip(
        axes, ["share_init", "share_final"], ["(a) at init", "(b) after training"]
    ):
        grid = np.full((spec.depth, len(degrees)), np.nan)
        for j, k in enumerate(degrees):
            group = rows[rows["degree"] == k]
            if len(group):
                grid[:, j] = np.median(np.array(group[column].tolist(), dtype=float), axis=0)
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if grid[i, j] < 0.6 else "black")  # fmt: skip
        ax.set_xticks(range(len(degrees)), [str(k) for k in degrees])
        ax.set_yticks(range(spec.depth), [str(i + 1) for i in range(spec.depth)])
        ax.set_xlabel("target degree $k$")
        ax.set_ylabel(r"weight layer $\ell$ (1 = first)")
        ax.set_title(rf"{title}: share of $\langle f_k, \Theta f_k\rangle$", fontsize=10)
    fig.colorbar(image, ax=axes, shrink=0.9,
                 label=r"$\langle f_k, \Theta_\ell f_k\rangle / \langle f_k, \Theta f_k\rangle$")  # fmt: skip
    fig.suptitle(f"Layer-wise share of the error reduction on the target f_k (residual = f_k), "
                 f"d = {spec.dim}, width {spec.width}")  # fmt: skip
    return save_figure(fig, out_dir, "spectral_bias_shares")


def _eigenvalues(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    import matplotlib.pyplot as plt

    degrees = np.array(spec.degrees)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), constrained_layout=True)
    first = rows.sort_values(["seed", "degree"]).iloc[0]
    lam = np.array(first["lam_init"], dtype=float)
    cmap = plt.get_cmap("plasma")
    for i, values in enumerate(lam):
        shown = np.where(values > 0, values, np.nan)
        axes[0].plot(degrees, shown, "o-", color=cmap(0.85 * i / max(len(lam) - 1, 1)),
                     label=f"layer {i + 1}")  # fmt: skip
    axes[0].set_yscale("log")
    axes[0].set_xlabel("harmonic degree $k$")
    axes[0].set_ylabel(r"$\lambda_{\ell,k}$ = mean eigenvalue of $\Theta_\ell$ on degree $k$")
    axes[0].set_title(f"(a) per-layer eigenvalues at init (seed {int(first['seed'])})", fontsize=10)
    axes[0].legend(fontsize=8, frameon=False)
    ax = axes[1]
    for seed, group in rows.drop_duplicates("seed").groupby("seed"):
        lam = np.array(group.iloc[0]["lam_init"], dtype=float)
        ratio = np.where(
            (lam[0] > 0) & (lam[-1] > 0), lam[0] / np.where(lam[-1] > 0, lam[-1], 1), np.nan
        )
        ax.plot(degrees, ratio, "o-", color="tab:blue", alpha=0.7,
                label="init" if seed == rows["seed"].min() else None)  # fmt: skip
    values = []
    for _, row in rows.iterrows():
        lam = np.array(row["lam_final"], dtype=float)
        j = list(spec.degrees).index(int(row["degree"]))
        values.append(lam[0, j] / lam[-1, j] if lam[0, j] > 0 and lam[-1, j] > 0 else np.nan)
    ax.plot(rows["degree"], values, "s", color="tab:orange", ms=6, label="after training on $k$")
    ax.set_yscale("log")
    ax.set_xticks(degrees)
    ax.set_xlabel("harmonic degree $k$")
    ax.set_ylabel(r"early / late: $\lambda_{1,k} / \lambda_{L,k}$")
    ax.set_title("(b) first over last layer (the claim: grows with $k$)", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    axes[0].set_xticks(degrees)
    for a in axes:
        a.grid(True, which="both", alpha=0.25)
    fig.suptitle(f"Layer NTK eigenvalues on the harmonic degrees, d = {spec.dim}, L = {spec.depth}")
    return save_figure(fig, out_dir, "spectral_bias_eigenvalues")


def plot(rows: pd.DataFrame, spec, out_dir: Path) -> list[Path]:
    """Both figures (module docstring); diverged runs are left out."""
    rows = rows[~rows["diverged"].astype(bool)]
    if rows.empty:
        return []
    out_dir = Path(out_dir)
    return _share_maps(rows, spec, out_dir) + _eigenvalues(rows, spec, out_dir)
