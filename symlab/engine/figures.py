"""Saving a study's figures: PNG for reading, SVG for papers, both beside the store."""

from __future__ import annotations

from pathlib import Path


def save_figure(fig, out_dir: Path, stem: str) -> list[Path]:  # noqa: ANN001 - matplotlib Figure
    """Write ``fig`` as ``out_dir/stem.png`` (150 dpi) and ``.svg``, close it, return both paths."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def plain_log_axis(axis, ticks) -> None:  # noqa: ANN001 - a matplotlib Axis
    """Log scale read in plain numbers at ``ticks`` (ranks and norms read better than 2×10⁰)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())
