"""The Ray executor: a study's jobs as Ray tasks, on a local Ray instance or on a cluster.

``symlab run STUDY --executor ray`` starts a local Ray instance with ``--workers`` CPUs and stops
it at the end; ``--address ADDR`` (e.g. ``auto`` on a node of a cluster started with
``ray start --head``, or ``ray://host:10001``) runs the jobs on that cluster instead. Each job is
one task with a resource hint (``cpus_per_job`` CPUs; ``gpus_per_job`` GPUs, one when the spec
asks for a CUDA device), and at most ``in_flight`` tasks are submitted at a time (default
:data:`IN_FLIGHT_PER_WORKER` per CPU of the cluster), so a grid of any size streams through.
Outcomes come back as they finish (``ray.wait``); the driver alone writes the store.

A job that raises comes back as a :class:`JobError` with its portable traceback, like the local
executor's, and the sweep goes on. A worker process that dies (killed, out of memory, its node
lost) is Ray's to handle: the task is re-run up to ``retries`` times, then recorded as failed
(``symlab run`` again retries it). Ray is imported only here, when the executor runs: symlab
imports without it (``pip install 'symlab[ray]'``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from symlab.engine.errors import InputError
from symlab.engine.executors import (
    IN_FLIGHT_PER_WORKER,
    Executor,
    Job,
    JobError,
    JobFunction,
    call_job,
    limited_threads,
    portable_traceback,
)

RAY_MISSING = (
    "--executor ray: the ray package is not installed; install it with "
    "pip install 'symlab[ray]' (or pip install ray)."
)


def import_ray() -> Any:
    """The ``ray`` module, or an :class:`InputError` saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise InputError(RAY_MISSING) from error
    return ray


def run_in_worker(fn: JobFunction, params: dict[str, Any], threads: int) -> Any:
    """The task body: ``fn(params)`` with ``threads`` BLAS/torch threads, or its JobError."""
    with limited_threads(threads):
        return call_job(fn, params)


def _positive(name: str, value: Any, kind: type = int, allow_zero: bool = False) -> None:
    ok = isinstance(value, kind | int) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0" if kind is float else ">= 1"
        raise InputError(f"{name}: expected a number {bound}, got {value!r}.")


class RayExecutor(Executor):
    """Jobs as Ray tasks (see the module docstring).

    ``address``: the cluster to join (None: start a local instance of ``workers`` CPUs, or use
    the Ray instance this process already started with ``ray.init``); ``retries``: re-runs of a
    task whose worker died; ``in_flight``: tasks submitted at a time (None: 4 per cluster CPU).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        cpus_per_job: float = 1.0,
        gpus_per_job: float = 0.0,
        retries: int = 3,
        in_flight: int | None = None,
        threads_per_worker: int = 1,
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise InputError(f"address: expected a Ray address such as auto, got {address!r}.")
        if workers is not None:
            _positive("workers", workers)
        _positive("cpus_per_job", cpus_per_job, float)
        _positive("gpus_per_job", gpus_per_job, float, allow_zero=True)
        _positive("retries", retries, allow_zero=True)
        if in_flight is not None:
            _positive("in_flight", in_flight)
        _positive("threads_per_worker", threads_per_worker)
        self.address = address
        self.workers = workers
        self.cpus_per_job = cpus_per_job
        self.gpus_per_job = gpus_per_job
        self.retries = retries
        self.in_flight = in_flight
        self.threads_per_worker = threads_per_worker

    def __repr__(self) -> str:
        where = self.address or f"local, {self.workers or 'all'} CPUs"
        return f"RayExecutor({where})"

    def _connect(self, ray: Any) -> bool:
        """Join or start Ray unless this process already has; True when this call started it."""
        if ray.is_initialized():
            return False
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.address is None:
            options["num_cpus"] = self.workers
        try:
            ray.init(address=self.address, **options)
        except (ConnectionError, ValueError, RuntimeError) as error:
            raise InputError(
                f"--address: could not connect to a Ray cluster at {self.address!r} ({error})."
            ) from error
        return True

    def submit_all(
        self, fn: JobFunction, jobs: Iterable[Job]
    ) -> Iterator[tuple[Job, Any | JobError]]:
        """Outcomes in completion order; at most ``in_flight`` tasks outstanding."""
        ray = import_ray()
        jobs = iter(jobs)
        first = next(jobs, None)
        if first is None:
            return
        jobs = itertools.chain([first], jobs)
        started = self._connect(ray)
        refs: dict[Any, Job] = {}
        finished = False
        try:
            task = ray.remote(run_in_worker).options(
                num_cpus=self.cpus_per_job,
                num_gpus=self.gpus_per_job,
                max_retries=self.retries,
                retry_exceptions=False,  # call_job turns exceptions into JobErrors
            )
            fn_ref = ray.put(fn)
            cpus = ray.cluster_resources().get("CPU", 1.0)
            limit = self.in_flight or max(1, int(cpus / self.cpus_per_job)) * IN_FLIGHT_PER_WORKER

            def top_up() -> None:
                for job in itertools.islice(jobs, max(limit - len(refs), 0)):
                    refs[task.remote(fn_ref, job.params, self.threads_per_worker)] = job

            top_up()
            while refs:
                done, waiting = ray.wait(list(refs), num_returns=1)
                if waiting:  # everything else that is ready too, without waiting
                    done += ray.wait(waiting, num_returns=len(waiting), timeout=0)[0]
                for ref in done:
                    yield refs.pop(ref), self._outcome(ray, ref)
                top_up()
            finished = True
        finally:
            if not finished:  # Ctrl-C or the consumer stopped: stop the tasks in flight
                for ref in refs:
                    try:
                        ray.cancel(ref, force=True)
                    except Exception:  # already finished or its worker is gone
                        pass
            if started:
                ray.shutdown()

    @staticmethod
    def _outcome(ray: Any, ref: Any) -> Any | JobError:
        """The task's value (a row or the JobError it caught), or a JobError for a task that Ray
        could not complete (its worker died ``retries + 1`` times, it was cancelled, ...)."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as error:
            text = str(error).strip()
            return JobError(type(error).__name__, text.splitlines()[0] if text else "", "")
        except Exception as error:  # e.g. the result could not be unpickled here
            return JobError(type(error).__name__, str(error), portable_traceback(str(error)))
