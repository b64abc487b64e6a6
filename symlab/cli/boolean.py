"""``symlab boolean``: the leap of a Fourier support and the Walsh transform of a function.

    symlab boolean leap "1 1,2 1,2,3"            # x1 + x1x2 + x1x2x3: leap 1, MSP yes
    symlab boolean leap --gaussian "1^2 1,2"     # He_2(z1) + z1z2: leap 2
    symlab boolean walsh MODULE:FUNC --dim 10 [--top 10] [--supports "1 1,2"]
    symlab boolean walsh MODULE:FUNC --dim 100 --estimate --supports "1 1,2" [--samples N]

SUPPORTS: supports separated by spaces, coordinates (1-based) by commas; a Gaussian coordinate
may carry its Hermite degree as ``c^k`` (``1^2,3`` is He_2(z1)·z3, degree 1 when omitted).
MODULE:FUNC names a function or an ``nn.Module`` instance taking an (n, d) tensor of ±1 and
returning (n,) or (n, 1); MODULE is imported with the current directory on the path.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from symlab.cli.typer_app import EXIT_FAILED, DebugOption, err, fail, guard, out

boolean_app = typer.Typer(
    name="boolean",
    help="Functions on the Boolean cube: the leap of a Fourier support, Walsh transforms.",
    no_args_is_help=True,
)

SUPPORTS_HELP = (
    "Supports separated by spaces, coordinates by commas (1-based), e.g. '1 1,2 1,2,3'; "
    "with --gaussian a coordinate may carry its degree, e.g. '1^2 1,2'."
)


def parse_supports(words: list[str], gaussian: bool) -> list[Any]:
    """Supports from the command line: lists of coordinates, or {coordinate: degree} dicts."""
    tokens = [token for word in words for token in word.split()]
    if not tokens:
        fail("SUPPORTS: expected at least one support such as '1 1,2', got none.")
    supports: list[Any] = []
    for token in tokens:
        try:
            parts = [part.split("^") for part in token.split(",")]
            if gaussian:
                pairs = [(int(p[0]), int(p[1]) if len(p) == 2 else 1) for p in parts]
                if any(len(p) > 2 for p in parts) or len({c for c, _ in pairs}) < len(pairs):
                    raise ValueError
                supports.append(dict(pairs))
            else:
                if any(len(p) != 1 for p in parts):
                    fail(f"SUPPORTS: degrees such as {token!r} need --gaussian.")
                supports.append([int(p[0]) for p in parts])
        except ValueError:
            example = "'1^2,3'" if gaussian else "'1,3'"
            fail(
                f"SUPPORTS: expected comma-separated distinct coordinates such as {example}, "
                f"got {token!r}."
            )
    return supports


def format_support(support: Any) -> str:
    """{1,3} for a set, {1^2,3} for a Gaussian multi-index, {} for the constant."""
    if isinstance(support, dict):
        parts = [f"{c}^{k}" if k > 1 else str(c) for c, k in sorted(support.items())]
    else:
        parts = [str(c) for c in sorted(support)]
    return "{" + ",".join(parts) + "}"


@boolean_app.command("leap")
def leap_command(
    supports_text: Annotated[
        list[str], typer.Argument(metavar="SUPPORTS", help=SUPPORTS_HELP, show_default=False)
    ],
    gaussian: Annotated[
        bool,
        typer.Option(
            "--gaussian", help="Hermite multi-indices: new coordinates counted with multiplicity."
        ),
    ] = False,
) -> None:
    """The leap of a Fourier support, whether it is a merged staircase, and an optimal order.

    Leap = min over orderings of the largest number of new coordinates one support adds
    (Abbe, Boix-Adserà & Misiakiewicz, COLT 2023); merged staircase = leap <= 1 (COLT 2022).
    """
    from symlab.boolean import leap

    supports = parse_supports(supports_text, gaussian)
    try:
        result = leap(supports)
    except ValueError as error:
        fail(f"{error}.")
    out.print(f"leap: {result.leap}")
    out.print(f"merged staircase: {'yes' if result.merged_staircase else 'no'}")
    steps = [f"{format_support(s)} (+{k})" for s, k in zip(result.ordering, result.new_coordinates)]
    out.print("ordering (new coordinates): " + " -> ".join(steps))


class BlackBoxError(Exception):
    """The user's function raised (exit code 1, not bad input)."""


def load_black_box(target: str) -> Any:
    """The object MODULE:FUNC names, imported with the current directory on sys.path."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        fail(f"MODULE:FUNC: expected a module and a function such as mymod:f, got {target!r}.")
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        obj = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure is the user's input
        fail(f"MODULE:FUNC: cannot import {module_name!r} ({type(error).__name__}: {error}).")
    finally:
        if added:
            sys.path.remove(cwd)
    for name in attribute.split("."):
        if not hasattr(obj, name):
            fail(f"MODULE:FUNC: module {module_name!r} has no attribute {attribute!r}.")
        obj = getattr(obj, name)
    if not callable(obj) or isinstance(obj, type):
        fail(f"MODULE:FUNC: expected a function or an nn.Module instance, got {obj!r}.")
    return obj


def shielded(f: Any, device: Any) -> Any:
    """``f`` with its own exceptions turned into BlackBoxError (inputs moved to ``device``)."""

    def call(x):
        try:
            return f(x.to(device))
        except Exception as error:
            raise BlackBoxError(f"{type(error).__name__}: {error}") from error

    return call


@boolean_app.command("walsh")
def walsh_command(
    target: Annotated[
        str,
        typer.Argument(metavar="MODULE:FUNC", help="The function, e.g. mymod:f or mymod:model."),
    ],
    dim: Annotated[int, typer.Option("--dim", help="Dimension d of the cube {±1}^d.")],
    top: Annotated[int, typer.Option(help="How many of the largest |coefficients| to list.")] = 10,
    supports_text: Annotated[
        str | None, typer.Option("--supports", help="Only these supports: " + SUPPORTS_HELP)
    ] = None,
    estimate: Annotated[
        bool,
        typer.Option("--estimate", help="Monte-Carlo estimates with CLT intervals (any --dim)."),
    ] = False,
    samples: Annotated[int, typer.Option(help="Sample size of --estimate.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Seed of the --estimate sample.")] = 0,
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    debug: DebugOption = False,
) -> None:
    """The Walsh coefficients of a function on {±1}^d and its weight per degree W^k.

    Exact (d <= 24): f on all 2^d points, then the fast Walsh-Hadamard transform; lists the
    largest coefficients (or the --supports asked for) and W^k = sum over |S| = k of f^(S)^2.
    With --estimate: f^(S) = E[f(x) chi_S(x)] for the --supports from --samples uniform points.
    """
    from symlab.boolean import MAX_EXACT_DIM

    if dim < 1 or (dim > MAX_EXACT_DIM and not estimate):
        fail(
            f"--dim: expected an integer between 1 and {MAX_EXACT_DIM} for the exact transform "
            f"(add --estimate --supports ... beyond), got {dim}."
        )
    if top < 1:
        fail(f"--top: expected an integer >= 1, got {top}.")
    if samples < 2:
        fail(f"--samples: expected an integer >= 2, got {samples}.")
    if not 0 < confidence < 1:
        fail(f"--confidence: expected a number strictly between 0 and 1, got {confidence}.")
    if estimate and supports_text is None:
        fail("--estimate: expected --supports to say which coefficients to estimate.")
    supports = None if supports_text is None else parse_supports([supports_text], False)
    largest = max((max(s) for s in supports or [] if s), default=0)
    if largest > dim:
        fail(
            f"--dim: expected an integer >= {largest}, the largest coordinate in --supports, got {dim}."
        )
    f = load_black_box(target)
    with guard(debug):
        try:
            if estimate:
                estimate_table(f, target, dim, supports, samples, seed, confidence)
            else:
                exact_tables(f, target, dim, top, supports)
        except BlackBoxError as error:
            if debug:
                err.print("".join(traceback.format_exception(error.__cause__)), markup=False)
            hint = "" if debug else " (run with --debug for the traceback)"
            fail(f"error: {target} raised {error}{hint}.", EXIT_FAILED)
        except ValueError as error:
            fail(f"{error}.")


def exact_tables(f: Any, target: str, dim: int, top: int, supports: list | None) -> None:
    """The largest (or the asked-for) coefficients and the degree profile, from the exact FWHT."""
    import torch

    from symlab.boolean import support_index, walsh_coefficients
    from symlab.boolean.transform import black_box_input, index_degrees, index_support

    dtype, device = black_box_input(f, None)
    coefficients = walsh_coefficients(shielded(f, device), dim, dtype=dtype).cpu()
    total = float(coefficients.square().sum())
    if supports is None:  # the largest, leaving out rounding-level ones (~1e-16 of ‖f‖)
        floor = 1e-12 * total**0.5
        chosen = torch.argsort(coefficients.abs(), descending=True, stable=True)[:top]
        chosen = chosen[coefficients[chosen].abs() > floor].tolist()
        above = int((coefficients.abs() > floor).sum())
        title = f"the {len(chosen)} largest |f̂(S)| ({above} of {1 << dim} above 1e-12·‖f‖)"
    else:
        chosen = [support_index(s) for s in supports]
        title = "the coefficients asked for"
    out.print(
        f"Walsh transform of {target} on {{±1}}^{dim} ({1 << dim} points): E f² = {total:.6g}"
    )
    table = Table(title=title)
    for column in ("support", "degree", "f̂(S)"):
        table.add_column(column, justify="right")
    for s in chosen:
        support = index_support(s)
        table.add_row(format_support(support), str(len(support)), f"{coefficients[s]:.6g}")
    out.print(table)
    weights = torch.zeros(dim + 1, dtype=torch.float64)
    weights.scatter_add_(0, index_degrees(dim), coefficients.square())
    profile = Table(title="weight by degree W^k = Σ_{|S|=k} f̂(S)², share of E f²")
    for column in ("k", "W^k", "share"):
        profile.add_column(column, justify="right")
    for k, w in enumerate(weights.tolist()):
        profile.add_row(str(k), f"{w:.6g}", f"{w / total:.2%}" if total > 0 else "-")
    out.print(profile)


def estimate_table(
    f: Any, target: str, dim: int, supports: list, samples: int, seed: int, confidence: float
) -> None:
    """Monte-Carlo estimates with standard errors and CLT intervals for the asked-for supports."""
    from symlab.boolean import estimate_coefficients
    from symlab.boolean.transform import black_box_input

    dtype, device = black_box_input(f, None)
    estimates = estimate_coefficients(
        shielded(f, device), dim, supports, samples, seed, confidence, dtype=dtype
    )
    out.print(
        f"Walsh coefficients of {target} on {{±1}}^{dim}, estimated from {samples} uniform "
        f"points (seed {seed})"
    )
    table = Table(title=f"estimates with {confidence:.0%} intervals (CLT)")
    for column in ("support", "estimate", "std. error", "low", "high"):
        table.add_column(column, justify="right")
    for support, e in estimates.items():
        table.add_row(
            format_support(support), f"{e.estimate:.6g}", f"{e.stderr:.3g}", f"{e.low:.6g}",
            f"{e.high:.6g}",
        )  # fmt: skip
    out.print(table)
