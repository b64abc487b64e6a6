"""Run a study: spec -> jobs -> executor -> store -> summary, figures and report.

``run_study`` is what ``symlab run`` calls, and what a notebook calls::

    import symlab.engine as engine
    spec = engine.load_spec("hidden-symmetries", preset="quick")
    run = engine.run_study("hidden-symmetries", spec, "runs/x", workers=2)
    run.summary.verdict, run.rows, run.figures

A job's key is the first 16 hex digits of the SHA-256 of the canonical JSON of (experiment name,
experiment version, params), so re-running a spec into the same directory runs only the jobs whose
keys are not stored yet (resume), and changing a study's ``version`` invalidates its old rows.

Each call that runs jobs records a session in the store (software versions, BLAS, threads,
machine; see :mod:`symlab.engine.provenance`) and every row it stores names that session, so a
sweep resumed elsewhere shows which rows came from which environment.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from symlab.engine.cells import to_json
from symlab.engine.code_fingerprint import CodeFingerprint, changed_modules, code_fingerprint
from symlab.engine.errors import InputError
from symlab.engine.executors import Executor, Job, JobError, make_executor
from symlab.engine.experiment import Experiment, Summary, get_experiment
from symlab.engine.job_stream import (
    PendingJobs,
    SpecResults,
    count_jobs,
    count_stored,
    iter_jobs,
    spec_results,
)
from symlab.engine.job_stream import job_key as job_key  # re-exported (its old home)
from symlab.engine.output_paths import check_writable_dir
from symlab.engine.provenance import environment, provenance_of_counts
from symlab.engine.report import write_report
from symlab.engine.run_lock import RunLock
from symlab.engine.spec import spec_from_mapping, spec_from_toml, spec_to_toml
from symlab.engine.store import STORE_NAME, Store, now

Progress = Callable[[int, int], None]
FailureHook = Callable[[Job, JobError], None]


def expand_jobs(experiment: Experiment, spec: BaseModel, code: str | None = None) -> list[Job]:
    """The jobs of ``spec`` in the study's order as a list (duplicate params are run once), keyed
    under the code fingerprint ``code`` (see :func:`job_key`). For small grids and inspection:
    :func:`run_study` reads the jobs lazily (:mod:`symlab.engine.job_stream`)."""
    jobs: dict[str, Job] = {}
    for job in iter_jobs(experiment, spec, code):
        jobs.setdefault(job.key, job)
    return list(jobs.values())


def _jsonable(value: Any) -> Any:
    """``value`` with numpy/torch scalars and arrays turned into Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays, torch tensors
        return _jsonable(value.tolist())
    return value


def timed_job(run_job: Callable[[dict[str, Any]], Any], params: dict[str, Any]) -> dict[str, Any]:
    """Run one job (in a worker): ``{"row": run_job(params), "seconds": ...}``."""
    start = time.perf_counter()
    row = run_job(params)
    seconds = time.perf_counter() - start
    if not isinstance(row, Mapping):
        raise TypeError(f"run_job must return a dict (a row), got {type(row).__name__}.")
    row = _jsonable(dict(row))
    to_json(row)  # raises TypeError here, in the job, if a value is not JSON-serialisable
    return {"row": row, "seconds": seconds}


@dataclass(frozen=True)
class StudyRun:
    """What a run produced (rows and summary restricted to this spec's jobs)."""

    out_dir: Path
    rows: pd.DataFrame
    summary: Summary | None
    figures: list[Path]
    n_total: int
    n_done_before: int
    n_new: int
    n_failed: int
    seconds: float
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def n_stored(self) -> int:
        """Jobs of this spec that have a stored result."""
        return len(self.rows)


def _resolve(study: str | Experiment) -> Experiment:
    return study if isinstance(study, Experiment) else get_experiment(study)


def _validated(experiment: Experiment, spec: BaseModel | Mapping[str, Any]) -> BaseModel:
    if isinstance(spec, Mapping):
        return spec_from_mapping(experiment, spec)
    if isinstance(spec, experiment.spec_model):
        return spec_from_mapping(experiment, spec.model_dump())  # catches edited fields
    raise InputError(
        f"spec: expected a {experiment.spec_model.__name__} (or a dict of its fields), "
        f"got {type(spec).__name__}."
    )


def _has_store(out_dir: Path) -> bool:
    """``out_dir`` holds a store with content (a 0-byte file is an empty store to SQLite)."""
    path = out_dir / STORE_NAME
    return path.is_file() and path.stat().st_size > 0


def _check_run_dir(out_dir: Path, experiment: Experiment) -> None:
    """InputError if ``out_dir`` is a file, lies below one, cannot be written (read-only file
    system, no permission), or already holds a run of another study."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"out: '{out_dir}' exists and is not a directory.")
    check_writable_dir(out_dir, "out")
    if _has_store(out_dir):
        with Store(out_dir, create=False) as store:
            stored = store.meta().get("study")
        if stored is not None and stored != experiment.name:
            raise InputError(
                f"out: '{out_dir}' holds a run of study {stored}, not {experiment.name} "
                "(choose another directory)."
            )


def _check_code(out_dir: Path, fingerprint: CodeFingerprint, new_code: bool) -> None:
    """InputError if ``out_dir`` holds rows computed by other code, unless ``new_code``."""
    if new_code or not _has_store(out_dir):
        return
    with Store(out_dir, create=False) as store:
        meta, n_rows = store.meta(), len(store)
    recorded = meta.get("code")
    if n_rows == 0 or recorded == fingerprint.digest:
        return
    if recorded is None:
        what = "by a symlab that did not record its code"
    else:
        changed = changed_modules(json.loads(meta.get("code_modules", "{}")), fingerprint.modules)
        shown = ", ".join(changed[:4]) + (
            f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        )
        what = f"by other code (changed since: {shown})"
    raise InputError(
        f"out: the {n_rows} rows in '{out_dir}' were computed {what}; pass --new-code "
        "(new_code=True) to compute this code's jobs beside them, or choose a new directory."
    )


def run_study(
    study: str | Experiment,
    spec: BaseModel | Mapping[str, Any],
    out_dir: str | Path,
    *,
    workers: int = 1,
    executor: Executor | str | None = None,
    address: str | None = None,
    retries: int | None = None,
    chunk: int | None = None,
    on_progress: Progress | None = None,
    on_start: Progress | None = None,
    on_failure: FailureHook | None = None,
    new_code: bool = False,
) -> StudyRun:
    """Run the jobs of ``spec`` not yet stored in ``out_dir``, then summarize, plot and report.

    ``executor``: ``"local"`` (default; ``workers`` processes), ``"ray"`` (Ray tasks on the
    cluster at ``address``, or on a local Ray instance of ``workers`` CPUs when None; ``retries``
    re-runs of a job whose worker died; ``chunk`` jobs per Ray task, None: sized from the jobs'
    measured run time; see :class:`symlab.engine.ray_executor.RayExecutor`), or an
    :class:`Executor` instance.

    Code-aware: job keys include the study's code fingerprint, recorded in the store. Resuming
    into a directory whose rows were computed by other code (or by a symlab that did not record
    code) raises :class:`InputError` naming the changed modules, unless ``new_code=True``: then
    this code's jobs are computed beside the old rows, and the summary, ``show``, ``report`` and
    ``export`` use the new ones (the old rows stay in the store; every row has a ``code``).

    Everything is validated (study, spec, workers, run directory, the first jobs' params) before
    ``out_dir`` is created. The run holds ``out_dir``'s lock (:mod:`symlab.engine.run_lock`)
    throughout: a second run on the same directory stops at once with an :class:`InputError`
    naming the holder. Jobs are expanded lazily and checked against the store in batches
    (:mod:`symlab.engine.job_stream`), so memory does not grow with the grid. Results are
    inserted one transaction each as they arrive, by this process only; a job that raises is
    recorded in the store's ``failures`` table and the sweep goes on. ``on_start(n_stored,
    n_total)`` is called once before the first job, ``on_progress(n_done, n_total)`` after each
    job (n_done counts stored and failed jobs), and ``on_failure(job, error)`` after each job
    that raised, before its ``on_progress``. The summary and figures use only the rows whose
    keys belong to this spec's expansion.

    With ``workers > 1`` jobs run in spawned processes, which re-import the main module: in a
    script, call ``run_study`` under ``if __name__ == "__main__":`` (notebooks need nothing).
    """
    start = time.perf_counter()
    experiment = _resolve(study)
    spec = _validated(experiment, spec)
    executor = make_executor(
        executor, workers, address=address, retries=retries, chunk=chunk, spec=spec
    )
    out_dir = Path(out_dir)
    _check_run_dir(out_dir, experiment)
    fingerprint = code_fingerprint(experiment.run_job.__module__)
    _check_code(out_dir, fingerprint, new_code)
    n_total = count_jobs(experiment, spec)  # also validates the first jobs' params

    spec_text = spec_to_toml(spec, study=experiment.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(out_dir), Store(out_dir) as store:
        meta = store.meta()
        store.set_meta(
            study=experiment.name,
            version=experiment.version,
            spec=spec_text,
            created=meta.get("created", now()),
            updated=now(),
            code=fingerprint.digest,
            code_modules=to_json(fingerprint.modules),
        )
        (out_dir / "spec.toml").write_text(spec_text, encoding="utf-8")
        n_done_before = count_stored(store, iter_jobs(experiment, spec, fingerprint.digest))
        if on_start is not None:
            on_start(n_done_before, n_total)
        pending = PendingJobs(iter_jobs(experiment, spec, fingerprint.digest), store)
        n_new = n_failed = 0
        fn = functools.partial(timed_job, experiment.run_job)
        session = None
        try:
            for job, outcome in executor.submit_all(fn, pending):
                if session is None:  # a session only when jobs ran
                    session = store.begin_session(environment(executor, spec))
                if isinstance(outcome, JobError):
                    store.add_failure(job.key, job.params, str(outcome), outcome.traceback)
                    n_failed += 1
                    if on_failure is not None:
                        on_failure(job, outcome)
                elif store.add(
                    job.key,
                    experiment.name,
                    experiment.version,
                    job.params,
                    outcome["row"],
                    seconds=outcome["seconds"],
                    session=session,
                    code=fingerprint.digest,
                ):
                    n_new += 1  # counts the rows this run inserted
                pending.finished(job.key)
                if on_progress is not None:
                    n_done = n_done_before + pending.n_duplicates + n_new + n_failed
                    on_progress(min(n_done, n_total), n_total)
        finally:
            if session is not None:  # also when interrupted: the session ends where it stopped
                store.end_session(session)
        finished = _finish(experiment, spec, store, fingerprint.digest, out_dir, start)
    return StudyRun(
        out_dir=out_dir,
        rows=finished[0].rows,
        summary=finished[1],
        figures=finished[2],
        n_total=finished[0].n_total,
        n_done_before=n_done_before,
        n_new=n_new,
        n_failed=n_failed,
        seconds=time.perf_counter() - start,
        paths=finished[3],
    )


def _finish(
    experiment: Experiment,
    spec: BaseModel,
    store: Store,
    code: str | None,
    out_dir: Path,
    start: float | None,
) -> tuple[SpecResults, Summary | None, list[Path], dict[str, Path]]:
    """Summarize and plot this spec's stored rows, and write the report files."""
    results = spec_results(store, (job.key for job in iter_jobs(experiment, spec, code)))
    rows = results.rows
    summary: Summary | None = None
    figures: list[Path] = []

    def report() -> dict[str, Path]:
        return write_report(
            out_dir,
            experiment=experiment,
            spec=spec,
            summary=summary,
            figures=figures,
            n_total=results.n_total,
            n_stored=len(rows),
            n_failed=results.n_failed,
            job_seconds=results.job_seconds,
            wall_seconds=None if start is None else time.perf_counter() - start,
            provenance=provenance_of_counts(store, results.session_counts),
        )

    if len(rows):
        summary = experiment.summarize(rows, spec)
        figure_dir = out_dir / "figures"
        figure_dir.mkdir(exist_ok=True)
        import matplotlib  # here, not at import: a torch-free sweep need not load it

        matplotlib.use("Agg")  # figures go to files; no window, no display needed (one place)
        try:
            figures = [Path(p) for p in experiment.plot(rows, spec, figure_dir)]
        except Exception:
            report()  # the table and verdict are written even when plotting fails
            raise
    return results, summary, figures, report()


def open_run(out_dir: str | Path) -> tuple[Experiment, BaseModel, Store]:
    """The study, the resolved spec and the open store of an existing run directory."""
    out_dir = Path(out_dir)
    store = Store(out_dir, create=False)
    meta = store.meta()
    if "study" not in meta or "spec" not in meta:
        store.close()
        raise InputError(f"run directory '{out_dir}' has no study or spec recorded.")
    try:
        experiment = get_experiment(meta["study"])
        spec = spec_from_toml(experiment, meta["spec"], source=f"the spec stored in '{out_dir}'")
    except BaseException:
        store.close()
        raise
    return experiment, spec, store


def report_study(out_dir: str | Path, report_dir: str | Path | None = None) -> StudyRun:
    """Rebuild summary.csv, verdict.md, figures and report.html of ``out_dir`` from its store.

    Runs no jobs; the rows are those of the spec recorded in the store, which is only read (a
    run directory on read-only media works). The files go to ``report_dir`` (default
    ``out_dir``; InputError if it cannot be written).
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    target = out_dir if report_dir is None else Path(report_dir)
    check_writable_dir(target, "out" if report_dir is not None else "DIR")
    experiment, spec, store = open_run(out_dir)
    with store:
        target.mkdir(parents=True, exist_ok=True)
        finished = _finish(experiment, spec, store, store.meta().get("code"), target, None)
    return StudyRun(
        out_dir=out_dir,
        rows=finished[0].rows,
        summary=finished[1],
        figures=finished[2],
        n_total=finished[0].n_total,
        n_done_before=len(finished[0].rows),
        n_new=0,
        n_failed=finished[0].n_failed,
        seconds=time.perf_counter() - start,
        paths=finished[3],
    )
