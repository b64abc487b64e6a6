"""``symlab list / show / export / report``: the studies, and the results of a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from symlab.cli.typer_app import DebugOption, check_run_dir, err, fail, guard, out, print_outputs

RunDirArgument = typer.Argument(
    metavar="DIR", help="A run directory: the --out of `symlab run` (default runs/STUDY)."
)

# ------------------------------------------------------------------------------------ list


def list_studies() -> None:
    """List the studies with their descriptions and presets (for `symlab run STUDY`)."""
    from symlab.engine import list_experiments, list_presets

    with guard(False):
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
    from symlab.engine.cells import flatten_cells

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


def show(
    run_dir: Annotated[Path, RunDirArgument],
    failures: Annotated[
        bool, typer.Option("--failures", help="Show the failed jobs and their tracebacks.")
    ] = False,
) -> None:
    """Show a run's summary table and verdict (or its failures), and which software computed
    its rows (a warning when they come from mixed environments)."""
    import pandas as pd

    from symlab.engine.provenance import provenance
    from symlab.engine.store import Store

    check_run_dir(run_dir)
    keys = _spec_keys(run_dir)
    with guard(False), Store(run_dir, create=False) as store:
        meta = store.meta()
        stored = store.keys()
        failed = store.failures()
        origin = provenance(store, keys)
    failed = failed[failed["key"].isin(keys)] if len(failed) else failed
    header = Text(meta.get("study", "?"), style="bold")
    header.append(
        f" in {run_dir}: {len(stored & set(keys))} of {len(keys)} jobs of the stored spec done, "
        f"{len(failed)} failing"
    )
    if stored - set(keys):
        header.append(f" ({len(stored - set(keys))} more rows from earlier specs: export --all)")
    out.print(header)
    out.print(Text(origin.line()))
    warning = origin.warning()
    if warning:
        err.print(Text(f"warning: {warning}", style="yellow"))
    if failures:
        if not len(failed):
            out.print("no failed jobs")
        for _, row in failed.iterrows():
            out.print()
            out.print(Text(f"job {row['key']} {row['params']}", style="bold"))
            out.print(Text(f"{row['error']} (at {row['failed_at']})", style="red"))
            out.print(Text(str(row["traceback"] or "").rstrip()))
        return
    summary = run_dir / "summary.csv"
    verdict = run_dir / "verdict.md"
    if summary.is_file() and summary.stat().st_size > 1:
        try:
            _print_frame(pd.read_csv(summary), title="summary")
        except pd.errors.EmptyDataError:
            pass
    if verdict.is_file():  # its provenance lines may be stale: the store's were printed above
        lines = verdict.read_text(encoding="utf-8").strip().splitlines()
        skip = ("- provenance: ", "- warning: ")
        out.print(Text("\n".join(line for line in lines if not line.startswith(skip))))
    else:
        out.print(f"no summary yet: run `symlab report {run_dir}`")


def _spec_keys(run_dir: Path) -> list[str]:
    """Job keys of the spec stored in ``run_dir``, in expansion order."""
    from symlab.engine import expand_jobs, open_run

    with guard(False):
        experiment, spec, store = open_run(run_dir)
        code = store.meta().get("code")
        store.close()
        return [job.key for job in expand_jobs(experiment, spec, code)]


# ------------------------------------------------------------------------------------ export


def export(
    run_dir: Annotated[Path, RunDirArgument],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="csv or parquet (parquet keeps list results, e.g. curves, as list columns; "
            "csv holds them as JSON text).",
            show_default="from --output's suffix, else csv",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output file.", show_default="DIR/results.FORMAT"),
    ] = None,
    all_rows: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Also export the rows of earlier, different specs run into DIR (by default "
            "only the jobs of the spec run last).",
        ),
    ] = False,
) -> None:
    """Export a run's results (params, results, timing, session) as one tidy table, one row per
    job; ``symlab show DIR`` describes the sessions."""
    from symlab.engine.store import Store

    if format is not None and format not in ("csv", "parquet"):
        fail(f"--format: expected csv or parquet, got {format!r}.")
    if format is None and output is not None:
        suffix = output.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            fail(
                f"--output: cannot tell the format from the suffix {suffix or '(none)'!r}; "
                "expected .csv, .parquet or .pq, or pass --format csv|parquet."
            )
    check_run_dir(run_dir)
    if output is None:
        output = run_dir / f"results.{format or 'csv'}"
    keys = None if all_rows else _spec_keys(run_dir)
    with guard(False), Store(run_dir, create=False) as store:
        path = store.export(output, format=format, keys=keys)
        n = len(store) if keys is None else len(store.keys() & set(keys))
    out.print(f"exported {n} rows to {path}")


# ------------------------------------------------------------------------------------ report


def report(
    run_dir: Annotated[Path, RunDirArgument],
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for the report files (for a run directory on read-only media).",
            show_default="DIR",
        ),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Rebuild summary.csv, verdict.md, figures and report.html from the store (no jobs run;
    the store is only read)."""
    import os

    from symlab.engine import report_study

    check_run_dir(run_dir)
    if report_dir is None and not os.access(run_dir, os.W_OK | os.X_OK):
        fail(f"DIR: '{run_dir}' is read-only; pass --out FOLDER to write the report elsewhere.")
    with guard(debug):
        result = report_study(run_dir, report_dir)
    out.print(f"{result.n_stored} of {result.n_total} jobs of the stored spec summarized")
    print_outputs(result)
