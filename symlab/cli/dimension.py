"""``symlab fdim``: functional dimension of random ReLU MLPs, straight from the shell."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from symlab.cli.typer_app import DebugOption, fail, guard, out

# ------------------------------------------------------------------------------------ fdim


def _parse_widths(text: str) -> list[int]:
    try:
        widths = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        widths = []
    if len(widths) < 2 or any(w < 1 for w in widths):
        fail(
            f"WIDTHS: expected comma-separated positive integers such as 10,30,30,1, got {text!r}."
        )
    return widths


def fdim(
    widths_text: Annotated[
        str, typer.Argument(metavar="WIDTHS", help="Layer widths n0,n1,...,nL, e.g. 10,30,30,1.")
    ],
    seeds: Annotated[int, typer.Option(help="Number of random networks (seeds 0..N-1).")] = 1,
    sampler: Annotated[
        str,
        typer.Option(help="How input points are drawn: multiscale, gaussian, mixture or boundary."),
    ] = "multiscale",
    init: Annotated[
        str,
        typer.Option(
            help="Weights: he (Gaussian, variance 2/fan-in) or pytorch (nn.Linear's default)."
        ),
    ] = "he",
    bias_std: Annotated[
        float | None,
        typer.Option(
            help="Standard deviation of the Gaussian initial biases (--init he only).",
            show_default="0.1",
        ),
    ] = None,
    max_points: Annotated[
        int, typer.Option(help="Most input points drawn per network while the rank grows.")
    ] = 20000,
    debug: DebugOption = False,
) -> None:
    """Functional dimension of random ReLU MLPs with these widths (rank, bound, gap, mechanisms).

    For each seed: the rank of the Jacobian of the network's outputs on sampled inputs with
    respect to its parameters, against the bound D - (number of hidden neurons), and the
    never- or always-active neurons and parameters unused on the sample that explain a deficit.
    """
    widths = _parse_widths(widths_text)
    if len(widths) < 3:
        fail(
            "WIDTHS: expected at least one hidden layer (n0,n1,...,nL with L >= 2), "
            f"got {widths_text!r}."
        )
    if seeds < 1:
        fail(f"--seeds: expected an integer >= 1, got {seeds}.")
    if init not in ("he", "pytorch"):
        fail(f"--init: expected he or pytorch, got {init!r}.")
    if bias_std is not None and init != "he":
        fail(f"--bias-std: applies to --init he only (--init {init} keeps its own biases).")
    if bias_std is None:
        bias_std = 0.1
    if not bias_std >= 0 or bias_std == float("inf"):  # also nan
        fail(f"--bias-std: expected a finite number >= 0, got {bias_std}.")
    if max_points < 1:
        fail(f"--max-points: expected an integer >= 1, got {max_points}.")
    from symlab.symmetry.samplers import SAMPLER_NAMES

    if sampler not in SAMPLER_NAMES:
        fail(f"--sampler: expected one of {', '.join(SAMPLER_NAMES)}, got {sampler!r}.")
    with guard(debug):
        import math

        from symlab.nets import mlp
        from symlab.symmetry import diagnose, functional_dimension

        table = Table(title=f"functional dimension of ReLU MLP {tuple(widths)}")
        for column in ("seed", "rank", "upper", "bound", "deficit", "points", "regions", "gap", "stop",
                       "dead", "on", "unused", "expl."):  # fmt: skip
            table.add_column(column, justify="right", no_wrap=True)
        for seed in range(seeds):
            model = mlp(widths, init=init, bias_std=bias_std if init == "he" else 0.0, seed=seed)
            fd = functional_dimension(model, sampler=sampler, seed=seed, max_points=max_points)
            mech = diagnose(model, fd.points, fd=fd)
            gap = "inf" if math.isinf(fd.gap) else f"{fd.gap:.0e}"
            table.add_row(
                str(seed), str(fd.rank), str(fd.upper), str(fd.bound), str(fd.deficit), str(fd.n_points),
                "-" if fd.regions is None else str(fd.regions), gap, fd.saturated, str(mech.n_never_active), str(mech.n_always_active),
                str(mech.n_unused_beyond_dead), str(mech.predicted_deficit),
            )  # fmt: skip
        wide = Console(highlight=False, markup=False, width=max(out.width, 112))
        wide.print(table)
        out.print(
            "points: inputs sampled; regions: activation patterns among them (n0 + 1 points per "
            "pattern are differentiated: the rank is that of all points); "
            "rank: on the sample (a lower bound); upper: the bound minus kernel directions "
            "proven on all inputs; stop: why the sample stopped growing (bound or exact: rank = "
            "upper, the value is proven; max_points: a lower bound only); "
            "dead / on: never- and always-active hidden neurons on the sample; unused: parameters "
            "whose Jacobian column is zero on every sampled point, beyond a dead neuron's "
            "(never-co-active edges); expl.: the part of the deficit these account for (a proven "
            "lower bound)."
        )
