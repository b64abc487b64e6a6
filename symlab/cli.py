"""The ``symlab`` command line: run studies, list them, show, export and report their results.

    symlab run STUDY [--preset NAME | --config FILE.toml] [--out DIR] [--workers N]
    symlab list
    symlab show DIR [--failures]
    symlab export DIR [--format csv|parquet] [-o FILE]
    symlab report DIR

Bad input (unknown study, preset or config, missing directory, bad option) prints one red
sentence on stderr and exits with code 2, writing nothing; an exception raised by a study prints
a short message and exits with code 1 (``--debug`` shows the traceback). Studies of your own:
``SYMLAB_EXPERIMENTS="pkg.mod,other.mod" symlab run my-study ...`` (see symlab.engine.experiment).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

try:  # recent typer vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on top of click
    from click.exceptions import ClickException  # type: ignore[no-redef]

app = typer.Typer(
    name="symlab",
    help="symlab: run deep-learning-theory studies and read their results.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# ``Console()`` resolves sys.stdout at print time, so output capture in tests works.
# markup off: paths and messages may contain [brackets]
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

EXIT_FAILED = 1
EXIT_USAGE = 2

DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the full traceback when a study raises.")
]


class _Fail(Exception):
    """Stop the command with one red sentence on stderr and an exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    raise _Fail(message, code)


def _guard(debug: bool) -> Any:
    """Context manager turning engine errors into exit codes (2: bad input, 1: study error)."""
    from contextlib import contextmanager

    from symlab.engine.errors import InputError

    @contextmanager
    def guard():  # type: ignore[no-untyped-def]
        try:
            yield
        except (_Fail, typer.Exit, KeyboardInterrupt):
            raise
        except InputError as error:
            raise _Fail(str(error), EXIT_USAGE) from error
        except Exception as error:
            if debug or os.environ.get("SYMLAB_DEBUG"):
                err.print(traceback.format_exc(), markup=False)
            hint = "" if debug else " (run with --debug for the traceback)"
            raise _Fail(f"error: {type(error).__name__}: {error}{hint}", EXIT_FAILED) from error

    return guard()


def _print_outputs(result: Any, extra: str | None = None) -> None:
    """Where a run's table, figures and report went, then its verdict."""
    out.print(f"table:   {result.paths['summary']}")
    out.print(f"figures: {result.paths['figures']} ({len(result.figures)} files)")
    out.print(f"report:  {result.paths['report']}")
    if extra:
        out.print(extra)
    if result.summary is not None:
        out.print()
        out.print(Text(result.summary.verdict.strip()))


def _run_dir(path: Path) -> Path:
    from symlab.engine.store import STORE_NAME

    if not path.is_dir():
        _fail(f"DIR: '{path}' is not a directory.")
    if not (path / STORE_NAME).is_file():
        _fail(f"DIR: '{path}' is not a symlab run directory (no {STORE_NAME}).")
    return path


# ------------------------------------------------------------------------------------ run


@app.command()
def run(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name (see `symlab list`).")],
    preset: Annotated[
        str | None, typer.Option("--preset", "-p", help="Preset name.", show_default="quick")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A TOML config of the study's spec.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory.", show_default="runs/STUDY")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", help="Worker processes (1 runs inline).")
    ] = 1,
    debug: DebugOption = False,
) -> None:
    """Run a study (resumes when DIR already holds some of its jobs)."""
    from symlab.engine import get_experiment, load_spec, run_study

    if preset is not None and config is not None:
        _fail("--preset and --config: expected one of them, got both.")
    if workers < 1:
        _fail(f"--workers: expected an integer >= 1, got {workers}.")
    with _guard(debug):
        experiment = get_experiment(study)
        spec = load_spec(experiment, preset=preset, config=config)
    target = out_dir if out_dir is not None else Path("runs") / study

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("jobs"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    task: dict[str, Any] = {}

    def on_start(n_stored: int, n_total: int) -> None:
        if n_stored:
            out.print(f"resuming: {n_stored} of {n_total} jobs already stored in {target}")
        task["id"] = progress.add_task(study, total=n_total, completed=n_stored)
        progress.start()

    def on_progress(n_done: int, n_total: int) -> None:
        progress.update(task["id"], completed=n_done)

    try:
        with _guard(debug):
            result = run_study(
                experiment,
                spec,
                target,
                workers=workers,
                on_start=on_start,
                on_progress=on_progress,
            )
    except KeyboardInterrupt:
        progress.stop()
        _fail(f"interrupted: the stored jobs are kept; re-run to resume into {target}.", 130)
    finally:
        progress.stop()

    out.print(
        f"{study}: {result.n_new} jobs run, {result.n_done_before} already stored, "
        f"{result.n_stored} of {result.n_total} stored in {result.seconds:.1f} s"
    )
    _print_outputs(result, f"results: {target / 'results.sqlite'} (symlab export {target})")
    if result.n_failed:
        _fail(
            f"{result.n_failed} of {result.n_total} jobs failed; tracebacks: "
            f"symlab show {target} --failures",
            EXIT_FAILED,
        )


# ------------------------------------------------------------------------------------ list


@app.command("list")
def list_studies() -> None:
    """List the studies with their descriptions and presets."""
    from symlab.engine import list_experiments, list_presets

    with _guard(False):
        experiments = list_experiments()
        table = Table(title="symlab studies", show_lines=False)
        table.add_column("study", style="bold")
        table.add_column("description")
        table.add_column("presets")
        for experiment in experiments:
            table.add_row(
                experiment.name,
                experiment.description,
                ", ".join(list_presets(experiment)) or "-",
            )
    out.print(table)


# ------------------------------------------------------------------------------------ show


def _print_frame(frame: Any, title: str | None = None) -> None:
    """A summary table printed in full: no column is cut, however narrow the terminal.

    Each column is as wide as its longest cell or header; when the table is wider than the
    terminal, the terminal wraps lines rather than rich truncating numbers.
    """
    from symlab.engine.store import flatten_cells

    cells = [[_cell(v) for v in row] for _, row in flatten_cells(frame).iterrows()]
    table = Table(title=title, title_justify="left")
    widths = []
    for index, column in enumerate(frame.columns):
        width = max([len(str(column))] + [len(row[index]) for row in cells])
        widths.append(width)
        table.add_column(str(column), justify="right", no_wrap=True, min_width=width)
    for row in cells:
        table.add_row(*row)
    needed = sum(widths) + 3 * len(widths) + 1
    Console(highlight=False, markup=False, width=max(out.width, needed)).print(table)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


@app.command()
def show(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run directory.")],
    failures: Annotated[
        bool, typer.Option("--failures", help="Show the failed jobs and their tracebacks.")
    ] = False,
) -> None:
    """Show a run's summary table and verdict (or its failures)."""
    import pandas as pd

    from symlab.engine.store import Store

    _run_dir(run_dir)
    keys = _spec_keys(run_dir)
    with _guard(False), Store(run_dir, create=False) as store:
        meta = store.meta()
        stored = store.keys()
        failed = store.failures()
    failed = failed[failed["key"].isin(keys)] if len(failed) else failed
    header = Text(meta.get("study", "?"), style="bold")
    header.append(
        f" in {run_dir}: {len(stored & set(keys))} of {len(keys)} jobs of the stored spec done, "
        f"{len(failed)} failing"
    )
    if stored - set(keys):
        header.append(f" ({len(stored - set(keys))} more rows from earlier specs: export --all)")
    out.print(header)
    if failures:
        if not len(failed):
            out.print("no failed jobs")
        for _, row in failed.iterrows():
            out.print()
            out.print(Text(f"job {row['key']} {row['params']}", style="bold"))
            out.print(Text(f"{row['error']} (at {row['failed_at']} on {row['host']})", style="red"))
            out.print(Text(str(row["traceback"] or "").rstrip()))
        return
    summary = run_dir / "summary.csv"
    verdict = run_dir / "verdict.md"
    if summary.is_file() and summary.stat().st_size > 1:
        try:
            _print_frame(pd.read_csv(summary), title="summary")
        except pd.errors.EmptyDataError:
            pass
    if verdict.is_file():
        out.print(Text(verdict.read_text(encoding="utf-8").strip()))
    else:
        out.print(f"no summary yet: run `symlab report {run_dir}`")


def _spec_keys(run_dir: Path) -> list[str]:
    """Job keys of the spec stored in ``run_dir``, in expansion order."""
    from symlab.engine import expand_jobs, open_run

    with _guard(False):
        experiment, spec, store = open_run(run_dir)
        store.close()
        return [job.key for job in expand_jobs(experiment, spec)]


# ------------------------------------------------------------------------------------ export


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run directory.")],
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help="csv or parquet.", show_default="from FILE's suffix"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File.", show_default="DIR/results.FORMAT")
    ] = None,
    all_rows: Annotated[
        bool, typer.Option("--all", help="Also rows of earlier, different specs run into DIR.")
    ] = False,
) -> None:
    """Export a run's results (params, results, timing) as one tidy table, one row per job."""
    from symlab.engine.store import Store

    if format is not None and format not in ("csv", "parquet"):
        _fail(f"--format: expected csv or parquet, got {format!r}.")
    _run_dir(run_dir)
    if output is None:
        output = run_dir / f"results.{format or 'csv'}"
    keys = None if all_rows else _spec_keys(run_dir)
    with _guard(False), Store(run_dir, create=False) as store:
        path = store.export(output, format=format, keys=keys)
        n = len(store) if keys is None else len(store.keys() & set(keys))
    out.print(f"exported {n} rows to {path}")


# ------------------------------------------------------------------------------------ report


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run directory.")],
    debug: DebugOption = False,
) -> None:
    """Rebuild summary.csv, verdict.md, figures and report.html from the store (no jobs run)."""
    from symlab.engine import report_study

    _run_dir(run_dir)
    with _guard(debug):
        result = report_study(run_dir)
    out.print(f"{result.n_stored} of {result.n_total} jobs of the stored spec summarized")
    _print_outputs(result)


# ------------------------------------------------------------------------------------ fdim


def _parse_widths(text: str) -> list[int]:
    try:
        widths = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        widths = []
    if len(widths) < 2 or any(w < 1 for w in widths):
        _fail(
            f"WIDTHS: expected comma-separated positive integers such as 10,30,30,1, got {text!r}."
        )
    return widths


@app.command()
def fdim(
    widths_text: Annotated[
        str, typer.Argument(metavar="WIDTHS", help="Layer widths n0,n1,...,nL, e.g. 10,30,30,1.")
    ],
    seeds: Annotated[int, typer.Option(help="Number of random networks (seeds 0..N-1).")] = 1,
    sampler: Annotated[
        str, typer.Option(help="Input sampler: multiscale, gaussian, mixture.")
    ] = "multiscale",
    init: Annotated[str, typer.Option(help="Initialization: he or pytorch.")] = "he",
    bias_std: Annotated[float, typer.Option(help="Bias std for --init he.")] = 0.1,
    max_points: Annotated[int, typer.Option(help="Largest input sample per network.")] = 20000,
    debug: DebugOption = False,
) -> None:
    """Functional dimension of random ReLU MLPs with these widths (rank, bound, gap, mechanisms)."""
    widths = _parse_widths(widths_text)
    if len(widths) < 3:
        _fail(
            f"WIDTHS: expected at least one hidden layer (n0,n1,...,nL with L >= 2), got {widths_text!r}."
        )
    if seeds < 1:
        _fail(f"--seeds: expected an integer >= 1, got {seeds}.")
    if init not in ("he", "pytorch"):
        _fail(f"--init: expected he or pytorch, got {init!r}.")
    if max_points < 1:
        _fail(f"--max-points: expected an integer >= 1, got {max_points}.")
    from symlab.symmetry.samplers import SAMPLERS

    if sampler not in SAMPLERS:
        _fail(f"--sampler: expected one of {', '.join(SAMPLERS)}, got {sampler!r}.")
    with _guard(debug):
        import math

        from symlab.nets import mlp
        from symlab.symmetry import diagnose, functional_dimension

        table = Table(title=f"functional dimension of ReLU MLP {tuple(widths)}")
        for column in ("seed", "rank", "bound", "deficit", "points", "gap", "stop", "dead",
                       "on", "expl."):  # fmt: skip
            table.add_column(column, justify="right", no_wrap=True)
        for seed in range(seeds):
            model = mlp(widths, init=init, bias_std=bias_std if init == "he" else 0.0, seed=seed)
            fd = functional_dimension(model, sampler=sampler, seed=seed, max_points=max_points)
            mech = diagnose(model, fd.points, fd=fd)
            gap = "inf" if math.isinf(fd.gap) else f"{fd.gap:.0e}"
            table.add_row(
                str(seed), str(fd.rank), str(fd.bound), str(fd.deficit), str(fd.n_points), gap,
                fd.saturated, str(mech.n_never_active), str(mech.n_always_active),
                str(mech.predicted_deficit),
            )  # fmt: skip
        wide = Console(highlight=False, markup=False, width=max(out.width, 100))
        wide.print(table)
        out.print(
            "stop: why the sample stopped growing (bound reached, rank plateau, or max_points); "
            "dead / on: never- and always-active hidden neurons on the sample; expl.: the part of "
            "the deficit they account for."
        )


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> NoReturn:
    """The ``symlab`` entry point: run the typer app and exit with its code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="symlab", standalone_mode=False)
    except _Fail as failure:
        err.print(Text(str(failure), style="red"))
        code = failure.code
    except ClickException as error:  # usage errors: unknown option, bad int, missing argument
        message = error.format_message().rstrip(".")
        if message:  # empty after `symlab` alone: the help was printed
            err.print(Text(f"{message} (see symlab --help).", style="red"))
        code = error.exit_code
    except typer.Abort:
        code = EXIT_FAILED
    except KeyboardInterrupt:
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
