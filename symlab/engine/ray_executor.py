"""The Ray executor: a study's jobs as Ray tasks, on a local Ray instance or on a cluster.

``symlab run STUDY --executor ray`` starts a local Ray instance with ``--workers`` CPUs and stops
it at the end; ``--address ADDR`` (e.g. ``auto`` on a node of a cluster started with
``ray start --head``, or ``ray://host:10001``) runs the jobs on that cluster instead. Each task runs
a *chunk* of consecutive jobs with a resource hint (``cpus_per_job`` CPUs; ``gpus_per_job`` GPUs,
one when the spec asks for a CUDA device), and at most ``in_flight`` tasks are submitted at a
time (default :data:`IN_FLIGHT_PER_WORKER` per CPU of the cluster), so a grid of any size streams
through. Each chunk's outcomes come back as the chunk finishes (``ray.wait``); the driver alone
writes the store, one row per job.

Chunks: a Ray task costs milliseconds of scheduling and transfer (54 ms per job on a loaded
2-core machine with one task per job), more than a small job itself. With ``chunk=None`` the size
adapts to the measured run time of the jobs (:class:`ChunkSizer`): the first tasks hold one job
each, then each chunk is sized to take about :data:`CHUNK_SECONDS` (at most :data:`MAX_CHUNK`
jobs), so minute-long jobs still run one per task and trivial ones a thousand per task; a chunk
whose jobs turn out slower than measured stops after :data:`CHUNK_BUDGET` seconds and gives its
unrun jobs back for the next tasks. A fixed ``chunk`` (``--chunk N``) overrides both.

A job that raises comes back as a :class:`JobError` with its portable traceback, like the local
executor's, and the rest of its chunk and the sweep go on. A worker process that dies (killed,
out of memory, its node lost) is Ray's to handle: its chunk is re-run up to ``retries`` times
(jobs are pure functions of their params: the same rows), then each of its jobs is recorded as
failed (``symlab run`` again retries them). Ray is imported only here, when the executor runs: symlab
imports without it (``pip install 'symlab[ray]'``).
"""

from __future__ import annotations

import itertools
import time
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


CHUNK_SECONDS = 0.5  # the run time an adaptive chunk aims at (task overhead ~1-5% of it)
MAX_CHUNK = 1000  # jobs per chunk at most (params and rows of a chunk travel together)
CHUNK_BUDGET = 4 * CHUNK_SECONDS  # an adaptive chunk whose jobs got slower returns early


def run_chunk(
    fn: JobFunction, params: list[dict[str, Any]], threads: int, budget: float | None = None
) -> list[tuple[Any, float]]:
    """The task body: ``(fn(p) or its JobError, seconds)`` for each ``p`` of ``params`` in order,
    with ``threads`` BLAS/torch threads (set once per chunk). With a ``budget`` (seconds) it stops
    after the job that exhausts it: the jobs not run come back to the driver, which submits them
    again (a grid whose jobs turn slow along it does not leave one task with minutes of work)."""
    outcomes = []
    begin = time.perf_counter()
    with limited_threads(threads):
        for one in params:
            start = time.perf_counter()
            outcome = call_job(fn, one)
            outcomes.append((outcome, time.perf_counter() - start))
            if budget is not None and time.perf_counter() - begin > budget:
                break
    return outcomes


class ChunkSizer:
    """How many jobs the next task gets: ``fixed`` if given, else adaptive.

    Adaptive: 1 until a job's run time is known, then ``CHUNK_SECONDS / t`` clipped to
    ``[1, MAX_CHUNK]``, where ``t`` is the mean run time per job of the last ~100 jobs
    (an exponential moving average, so a grid whose jobs grow slower along it follows).
    """

    def __init__(
        self, fixed: int | None = None, seconds: float = CHUNK_SECONDS, most: int = MAX_CHUNK
    ) -> None:
        self.fixed = fixed
        self.seconds = seconds
        self.most = most
        self.mean: float | None = None

    def observe(self, seconds: float) -> None:
        """Record one job's run time."""
        seconds = max(float(seconds), 0.0)
        self.mean = seconds if self.mean is None else self.mean + 0.01 * (seconds - self.mean)

    def size(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.mean is None:
            return 1
        if self.mean <= self.seconds / self.most:
            return self.most
        return max(1, min(self.most, int(self.seconds / self.mean)))


def _positive(name: str, value: Any, kind: type = int, allow_zero: bool = False) -> None:
    ok = isinstance(value, kind | int) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0" if kind is float else ">= 1"
        raise InputError(f"{name}: expected a number {bound}, got {value!r}.")


class RayExecutor(Executor):
    """Jobs as Ray tasks (see the module docstring).

    ``address``: the cluster to join (None: start a local instance of ``workers`` CPUs, or use
    the Ray instance this process already started with ``ray.init``); ``retries``: re-runs of a
    task whose worker died; ``in_flight``: tasks submitted at a time (None: 4 per cluster CPU);
    ``chunk``: jobs per task (None: adaptive, see :class:`ChunkSizer`).
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
        chunk: int | None = None,
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
        if chunk is not None:
            _positive("chunk", chunk)
        self.address = address
        self.workers = workers
        self.cpus_per_job = cpus_per_job
        self.gpus_per_job = gpus_per_job
        self.retries = retries
        self.in_flight = in_flight
        self.threads_per_worker = threads_per_worker
        self.chunk = chunk
        self.n_tasks = 0  # tasks the last submit_all submitted (chunks, retries not counted)
        self.n_given_back = 0  # jobs its chunks gave back unrun (budget spent), run again later

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
        refs: dict[Any, list[Job]] = {}
        sizer = ChunkSizer(self.chunk)
        budget = None if self.chunk is not None else CHUNK_BUDGET
        returned: list[Job] = []  # jobs a chunk gave back unrun (its budget ran out)
        self.n_tasks = self.n_given_back = 0
        finished = False
        try:
            task = ray.remote(run_chunk).options(
                num_cpus=self.cpus_per_job,
                num_gpus=self.gpus_per_job,
                max_retries=self.retries,
                retry_exceptions=False,  # call_job turns exceptions into JobErrors
            )
            fn_ref = ray.put(fn)
            cpus = ray.cluster_resources().get("CPU", 1.0)
            limit = self.in_flight or max(1, int(cpus / self.cpus_per_job)) * IN_FLIGHT_PER_WORKER

            def top_up() -> None:
                while len(refs) < limit:
                    size = sizer.size()
                    chunk, returned[:size] = returned[:size], []
                    chunk += itertools.islice(jobs, size - len(chunk))
                    if not chunk:
                        return
                    params = [job.params for job in chunk]
                    refs[task.remote(fn_ref, params, self.threads_per_worker, budget)] = chunk
                    self.n_tasks += 1

            top_up()
            while refs:
                done, waiting = ray.wait(list(refs), num_returns=1)
                if waiting:  # everything else that is ready too, without waiting
                    done += ray.wait(waiting, num_returns=len(waiting), timeout=0)[0]
                for ref in done:
                    chunk = refs.pop(ref)
                    outcomes = self._outcomes(ray, ref, len(chunk))
                    returned.extend(chunk[len(outcomes) :])
                    self.n_given_back += len(chunk) - len(outcomes)
                    for job, (outcome, seconds) in zip(chunk, outcomes, strict=False):
                        if seconds is not None:
                            sizer.observe(seconds)
                        yield job, outcome
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
    def _outcomes(ray: Any, ref: Any, n: int) -> list[tuple[Any | JobError, float | None]]:
        """The chunk's ``(outcome, seconds)`` per job (a row or the JobError it caught), or the
        same JobError for each of its ``n`` jobs when Ray could not complete the task (its
        worker died ``retries + 1`` times, it was cancelled, ...)."""
        try:
            return [(outcome, seconds) for outcome, seconds in ray.get(ref)]
        except ray.exceptions.RayError as error:
            text = str(error).strip()
            failed = JobError(type(error).__name__, text.splitlines()[0] if text else "", "")
        except Exception as error:  # e.g. the result could not be unpickled here
            failed = JobError(type(error).__name__, str(error), portable_traceback(str(error)))
        return [(failed, None)] * n
