"""Executors: where a study's jobs run.

The interface is one method, :meth:`Executor.submit_all`, that takes a picklable function and a
list of :class:`Job` and yields ``(job, fn(job.params))`` in completion order; when ``fn`` raises,
it yields ``(job, JobError)`` instead and goes on with the other jobs. The runner owns the store;
executors never write anything.

:class:`LocalExecutor` runs jobs inline (``workers == 1``: easy to debug, breakpoints work) or in
a pool of ``workers`` processes started with the ``spawn`` method (not ``fork``: a forked child of
a process that already ran OpenMP/BLAS threads can deadlock). Each worker runs with one BLAS/torch
thread so that ``workers`` processes share the cores without oversubscription.

:class:`symlab.engine.ray_executor.RayExecutor` runs jobs as Ray tasks (``executor="ray"``).
Adding an executor: subclass :class:`Executor` and implement ``submit_all`` with the same
contract -- call ``fn(job.params)`` remotely through :func:`call_job`, read ``jobs`` lazily with
a bounded number in flight, yield outcomes as they complete, and cancel outstanding work in a
``finally`` block when the consumer stops early. Results must equal the local executor's for the
same spec (the test suite's toy study checks that for Ray).
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import contextlib
import ctypes
import itertools
import multiprocessing
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symlab.engine.errors import InputError

JobFunction = Callable[[dict[str, Any]], Any]
IN_FLIGHT_PER_WORKER = 4  # jobs submitted ahead per worker process (bounded memory, no idling)


@dataclass(frozen=True)
class Job:
    """One unit of work: ``params`` (JSON-serialisable) and its content ``key`` (a hash)."""

    key: str
    params: dict[str, Any]


@dataclass(frozen=True)
class JobError:
    """A job that raised: the exception's type name, message and formatted traceback."""

    error_type: str
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.error_type}: {self.message}"


_FRAME_FILE = re.compile(r'File "([^"]+)"')


def portable_traceback(text: str) -> str:
    """``text`` with every frame's file made relative to the ``sys.path`` entry it was imported
    from ("symlab/linalg/rank.py", "torch/nn/modules/module.py"), or cut to its name when it lies
    under none: a stored traceback names no home folder, user or machine."""
    roots = sorted({str(Path(p).resolve()) for p in sys.path if p}, key=len, reverse=True)

    def relative(match: re.Match) -> str:
        path = match.group(1)
        if not os.path.isabs(path):
            return match.group(0)
        resolved = str(Path(path).resolve())
        for root in roots:
            if resolved.startswith(root.rstrip(os.sep) + os.sep):
                return f'File "{resolved[len(root.rstrip(os.sep)) + 1 :]}"'
        return f'File "{Path(path).name}"'

    return portable_message(_FRAME_FILE.sub(relative, text))


def portable_message(text: str) -> str:
    """``text`` (an error message) with the ``sys.path`` entries and the home folder it names
    replaced by "<python-path>" and "~": "No such file: '~/data/x.npy'" names no user."""
    roots = sorted({str(Path(p).resolve()) for p in sys.path if p}, key=len, reverse=True)
    for root in roots:
        if len(root) > 1:
            text = text.replace(root.rstrip(os.sep) + os.sep, "<python-path>" + os.sep)
    home = os.path.expanduser("~")
    return text.replace(home + os.sep, "~" + os.sep) if len(home) > 1 else text


def call_job(fn: JobFunction, params: dict[str, Any]) -> Any:
    """``fn(params)``, or a :class:`JobError` carrying the traceback if it raises an Exception."""
    try:
        return fn(params)
    except Exception as error:  # a failing job must not kill the sweep
        return JobError(
            type(error).__name__,
            portable_message(str(error)),
            portable_traceback(traceback.format_exc()),
        )


class Executor(abc.ABC):
    """Runs jobs somewhere and yields their outcomes in completion order."""

    @abc.abstractmethod
    def submit_all(
        self, fn: JobFunction, jobs: Iterable[Job]
    ) -> Iterator[tuple[Job, Any | JobError]]:
        """Yield ``(job, fn(job.params))`` or ``(job, JobError)`` for every job, as each ends.

        ``fn`` must be picklable (a module-level function, or a functools.partial of one).
        Closing the iterator early (an exception in the consumer, Ctrl-C) cancels the jobs
        that have not started.
        """


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)


def reuse_large_allocations(threshold: int = 1 << 30) -> bool:
    """Let glibc serve allocations below ``threshold`` bytes from its heap and keep freed memory.

    By default glibc maps every block above its (adaptive, at most 32 MiB) mmap threshold fresh
    from the kernel and unmaps it on free, so a study that allocates and frees large tensors every
    iteration pays one page fault per 4 KiB each time: the kernel time of the ntk-optimizers paper
    preset (width 131072) was twice its user time, and one job ran 3.3x faster with this setting
    (3 min 3 s -> 55 s). The cost: a worker keeps up to twice ``threshold`` of freed memory
    instead of returning it. Applied in pool workers and by the ``symlab run`` command; a
    notebook's own process is left alone. Returns False where there is no glibc ``mallopt``.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * threshold)
    )


_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to send this worker SIGTERM when the process that started it dies.

    A sweep killed with SIGKILL (or SIGTERM before its handler runs) cannot stop its pool; without
    this the workers would go on computing jobs whose results nobody stores. Linux only; a no-op
    elsewhere. If the parent is already gone, exit at once.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _init_worker(threads: int, parent: int | None = None) -> None:
    """Process-pool initializer: limit BLAS/OpenMP/torch threads in this worker.

    The environment variables bound torch (and numpy's BLAS) when a study module imports it
    later in this worker; torch.set_num_threads covers a torch already imported (e.g. by the
    parent's main script, which spawn re-imports). Importing torch here for studies that do not
    use it would cost seconds per worker.
    """
    # Ctrl-C reaches the whole process group; the parent handles it and stops the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        _die_with_parent(parent)
    reuse_large_allocations()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """Run inline jobs with ``threads`` torch and BLAS threads, then restore the caller's setting.

    Studies run many small dense problems; the default of one thread per core made an inline
    sweep ~10x slower on a loaded 2-core machine (OpenMP/BLAS threads oversubscribed), the same
    reason pool workers get one thread each. threadpoolctl limits numpy/scipy's BLAS.
    """
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        if torch is not None and before is not None:
            torch.set_num_threads(before)


class LocalExecutor(Executor):
    """Jobs on this machine: inline when ``workers == 1``, else a spawn process pool.

    ``threads_per_worker`` BLAS/torch threads per worker process (default 1).
    """

    def __init__(self, workers: int = 1, *, threads_per_worker: int = 1) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers: expected an integer >= 1, got {workers!r}.")
        if (
            isinstance(threads_per_worker, bool)
            or not isinstance(threads_per_worker, int)
            or threads_per_worker < 1
        ):
            raise InputError(
                f"threads_per_worker: expected an integer >= 1, got {threads_per_worker!r}."
            )
        self.workers = workers
        self.threads_per_worker = threads_per_worker

    def __repr__(self) -> str:
        return f"LocalExecutor(workers={self.workers})"

    def submit_all(
        self, fn: JobFunction, jobs: Iterable[Job]
    ) -> Iterator[tuple[Job, Any | JobError]]:
        """Outcomes in completion order. Jobs are read from ``jobs`` lazily: at most
        ``IN_FLIGHT_PER_WORKER`` per worker are submitted at a time, so memory does not grow
        with the number of jobs."""
        jobs = iter(jobs)
        first = next(jobs, None)
        if first is None:
            return
        jobs = itertools.chain([first], jobs)
        if self.workers == 1:
            yield from self._inline(fn, jobs)
            return
        yield from self._in_pool(fn, jobs)

    def _inline(self, fn: JobFunction, jobs: Iterator[Job]) -> Iterator[tuple[Job, Any | JobError]]:
        """Jobs in this process under :func:`limited_threads`, applied again only when a job
        imported modules (which may have loaded a BLAS): threadpoolctl reads the process's
        memory map each time, 7 ms per job on a trivial study when applied around every job."""
        with contextlib.ExitStack() as stack:
            n_modules = -1
            for job in jobs:
                if len(sys.modules) != n_modules:
                    stack.close()
                    stack.enter_context(limited_threads(self.threads_per_worker))
                    n_modules = len(sys.modules)
                yield job, call_job(fn, job.params)

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads_per_worker, os.getpid()),
        )

    def _in_pool(
        self, fn: JobFunction, jobs: Iterator[Job]
    ) -> Iterator[tuple[Job, Any | JobError]]:
        """A spawn pool fed from ``jobs`` as slots free up; when a worker dies the jobs in
        flight are reported as BrokenProcessPool failures and a fresh pool takes the rest."""
        pools = [self._new_pool()]
        finished = False
        try:
            futures: dict[cf.Future, Job] = {}

            def top_up() -> None:
                limit = IN_FLIGHT_PER_WORKER * self.workers - len(futures)
                for job in itertools.islice(jobs, max(limit, 0)):
                    try:
                        future = pools[-1].submit(call_job, fn, job.params)
                    except cf.process.BrokenProcessPool:
                        pools[-1].shutdown(wait=False, cancel_futures=True)
                        pools.append(self._new_pool())
                        future = pools[-1].submit(call_job, fn, job.params)
                    futures[future] = job

            top_up()
            while futures:
                done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    yield from self._outcome(future, futures.pop(future))
                top_up()
            finished = True
        finally:
            for pool in pools:
                if not finished:  # Ctrl-C or the consumer stopped: do not wait for running jobs
                    for process in list((getattr(pool, "_processes", None) or {}).values()):
                        process.terminate()
                pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _outcome(future: cf.Future, job: Job) -> Iterator[tuple[Job, Any | JobError]]:
        """The job's outcome, or a :class:`JobError` when its worker died or its result could not
        be sent back."""
        try:
            outcome = future.result()
        except cf.process.BrokenProcessPool as error:
            # a worker died (killed, out of memory, segfault): record, resume retries it
            outcome = JobError(
                "BrokenProcessPool",
                f"a worker process died ({error}); a script that runs jobs with "
                "workers > 1 must start them under `if __name__ == '__main__':`",
                "",
            )
        except Exception as error:  # e.g. the result could not be pickled
            outcome = JobError(
                type(error).__name__,
                str(error),
                portable_traceback("".join(traceback.format_exception(error))),
            )
        yield job, outcome


def make_executor(
    executor: Executor | str | None,
    workers: int = 1,
    *,
    address: str | None = None,
    retries: int | None = None,
    chunk: int | None = None,
    spec: Any = None,
) -> Executor:
    """The executor ``run_study`` was asked for: ``"local"`` (or None) with ``workers``
    processes, ``"ray"`` (a local Ray instance of ``workers`` CPUs, or the cluster at
    ``address``; one GPU per job when ``spec.device`` is a CUDA device; ``chunk`` jobs per Ray
    task, None: adaptive), or an instance."""
    if isinstance(executor, Executor):
        if workers != 1 or address is not None or retries is not None or chunk is not None:
            raise InputError(
                "workers: pass workers (address, retries, chunk) or an executor, not both."
            )
        return executor
    if executor is None or executor == "local":
        for name, value in (("address", address), ("retries", retries), ("chunk", chunk)):
            if value is not None:
                raise InputError(f"{name}: only the ray executor takes it (executor='ray').")
        return LocalExecutor(workers)
    if executor == "ray":
        from symlab.engine.ray_executor import RayExecutor, import_ray

        import_ray()  # InputError now, before anything is written, if ray is missing
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers: expected an integer >= 1, got {workers!r}.")
        cuda = str(getattr(spec, "device", "cpu")).startswith("cuda")
        return RayExecutor(
            address,
            workers=None if address is not None else workers,
            gpus_per_job=1.0 if cuda else 0.0,
            retries=3 if retries is None else retries,
            chunk=chunk,
        )
    raise InputError(f"executor: expected local or ray, got {executor!r}.")
