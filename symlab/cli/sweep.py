"""``symlab run``: run a study's jobs into a run directory, with progress on stderr."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path
from typing import Annotated

import typer

from symlab.cli.progress import progress_for
from symlab.cli.typer_app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    DebugOption,
    err,
    fail,
    guard,
    out,
    print_outputs,
)


def _terminate_as_interrupt(signum, frame) -> None:
    """SIGTERM (``kill``, a batch scheduler's time limit) stops the sweep like Ctrl-C: running
    workers are stopped, stored jobs stay, and the same command resumes."""
    raise KeyboardInterrupt


def run(
    study: Annotated[str, typer.Argument(metavar="STUDY", help="Study name (see `symlab list`).")],
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            "-p",
            help="Preset: quick (small, CPU-sized) or paper (the paper's sweep); "
            "see `symlab list`.",
            show_default="quick",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="TOML file whose top-level keys are fields of the study's spec "
            "(instead of --preset).",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Run directory for results, figures and report; running into it again resumes.",
            show_default="runs/STUDY",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            help="Worker processes; 1 runs the jobs in this process (easiest to debug).",
        ),
    ] = 1,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            "-e",
            help="Where jobs run: local (worker processes on this machine) or ray (Ray tasks; "
            "a local Ray instance of --workers CPUs unless --address is given).",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="With --executor ray: the Ray cluster to run on (auto, host:6379 or "
            "ray://host:10001).",
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(
            "--retries",
            help="With --executor ray: re-runs of a job whose worker process died.",
            show_default="3",
        ),
    ] = None,
    chunk: Annotated[
        int | None,
        typer.Option(
            "--chunk",
            help="With --executor ray: jobs per Ray task (default: sized from the jobs' "
            "measured run time, about half a second of work per task).",
            show_default="auto",
        ),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress bar or progress lines (the summary is still printed).",
        ),
    ] = False,
    new_code: Annotated[
        bool,
        typer.Option(
            "--new-code",
            help="Resume into a directory whose rows other code computed: run this code's jobs "
            "beside them (show, report and export then use the new rows).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Run a grid of more jobs than the limit (SYMLAB_MAX_JOBS, default 10^7).",
        ),
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Run a study's jobs, then write its summary, verdict, figures and report.

    Running again into the same --out directory runs only the jobs not stored yet (resume).
    Progress goes to stderr: a bar on a terminal, else a plain line every ~10% of the jobs, at
    most one per SYMLAB_PROGRESS_SECONDS (default 10 s).
    """
    from symlab.engine import get_experiment, load_spec, run_study
    from symlab.engine.job_limit import check_job_limit

    if preset is not None and config is not None:
        fail("--preset and --config: expected one of them, got both.")
    if workers < 1:
        fail(f"--workers: expected an integer >= 1, got {workers}.")
    if executor not in ("local", "ray"):
        fail(f"--executor: expected local or ray, got {executor!r}.")
    if executor == "local":
        for name, value in (("address", address), ("retries", retries), ("chunk", chunk)):
            if value is not None:
                fail(f"--{name}: needs --executor ray.")
    if retries is not None and retries < 0:
        fail(f"--retries: expected an integer >= 0, got {retries}.")
    if chunk is not None and chunk < 1:
        fail(f"--chunk: expected an integer >= 1, got {chunk}.")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        from symlab.engine.ray_executor import RAY_MISSING

        fail(RAY_MISSING)
    with guard(debug):
        experiment = get_experiment(study)
        spec = load_spec(experiment, preset=preset, config=config)
        if not force:
            check_job_limit(experiment, spec)
    target = out_dir if out_dir is not None else Path("runs") / study
    progress = progress_for(study, err, quiet=quiet)

    def on_start(n_stored: int, n_total: int) -> None:
        if n_stored:
            out.print(f"resuming: {n_stored} of {n_total} jobs already stored in {target}")
        progress.start(n_stored, n_total)

    from symlab.engine.executors import reuse_large_allocations

    reuse_large_allocations()  # inline jobs run in this process (see its docstring)
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # kill: stop like Ctrl-C
    # Ctrl-C / kill -INT raise KeyboardInterrupt even when SIGINT was inherited as ignored (a
    # `symlab run ... &` from a script without job control starts with SIG_IGN)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with guard(debug):
            result = run_study(
                experiment,
                spec,
                target,
                workers=workers,
                executor=executor,
                address=address,
                retries=retries,
                chunk=chunk,
                on_start=on_start,
                on_progress=progress.update,
                on_failure=progress.failed,
                new_code=new_code,
            )
    except KeyboardInterrupt:
        progress.stop()
        fail(
            f"interrupted: the finished jobs are stored in {target}; run the same command "
            "again to resume.",
            EXIT_INTERRUPTED,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        progress.stop()

    out.print(
        f"{study}: {result.n_new} jobs run, {result.n_done_before} already stored, "
        f"{result.n_stored} of {result.n_total} stored; took {result.seconds:.1f} s"
    )
    print_outputs(
        result, f"results: {target / 'results.sqlite'} (as a table: symlab export {target})"
    )
    if result.n_failed:
        fail(
            f"{result.n_failed} of {result.n_total} jobs failed; tracebacks: "
            f"symlab show {target} --failures",
            EXIT_FAILED,
        )
