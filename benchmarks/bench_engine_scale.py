"""The sweep engine at scale: memory for any grid size, overhead per job, and study throughput.

1. Memory: a trivial study of 10^6 jobs (row = {"square": i * i}; its grid is a generator, never
   a list) run inline by ``run_study`` to the end, summary and report included: the sweep
   process's peak RSS (``getrusage``), after the imports, at the last job and at the end, and
   whether torch was imported (it must not be: the study does not use it). The rows are checked
   (count, sum of squares).
2. Overhead per job: the same study with N jobs (a job takes about a microsecond, so the wall
   time per job is the engine's overhead, start-up included) inline, with 2 local worker
   processes, and on a local Ray instance of 2 CPUs with one job per task (``chunk=1``) and with
   adaptive chunks (the default).
3. The hidden-symmetries paper grid's throughput (networks per second): N networks spread evenly
   over the 14,400 jobs (samplers, input dimensions, widths, depths), with 1 and 2 local workers
   and on Ray (2 CPUs, adaptive chunks); rows checked equal across the three (bit for bit, the
   ``fd_seconds`` wall time aside).

Each measurement runs in a fresh subprocess (peak RSS is per process; pool workers' and Ray's
processes are not included). Run::

    PYTHONPATH=. python benchmarks/bench_engine_scale.py [--million N] [--overhead N]
        [--unchunked N] [--networks N] [--only memory|overhead|networks]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, conint

from symlab.engine import Experiment, Summary, get_experiment, load_spec, run_study

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PAPER_GRID = 14_400  # jobs of the hidden-symmetries paper preset


class TrivialSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: conint(ge=1) = Field(description="number of jobs")


def trivial_jobs(spec: TrivialSpec):
    return ({"i": i} for i in range(spec.n))  # lazy: the engine never holds the grid


def trivial_job(params: dict[str, Any]) -> dict[str, Any]:
    return {"square": params["i"] ** 2}


def trivial_summary(rows: pd.DataFrame, spec: TrivialSpec) -> Summary:
    return Summary(table=rows.head(0), verdict=f"{len(rows)} rows")


def no_plots(rows: pd.DataFrame, spec: Any, out_dir: Path) -> list[Path]:
    return []


TRIVIAL = Experiment(
    name="engine-scale-trivial",
    description="trivial jobs (engine benchmark)",
    spec_model=TrivialSpec,
    expand=trivial_jobs,
    run_job=trivial_job,
    summarize=trivial_summary,
    plot=no_plots,
    count_jobs=lambda spec: spec.n,
)


def _networks_study(n: int) -> Experiment:
    """The hidden-symmetries study restricted to ``n`` jobs spread evenly over its paper grid."""
    study = get_experiment("hidden-symmetries")
    stride = PAPER_GRID // n
    return Experiment(
        name="hidden-symmetries",  # same name, run_job and version: the same job keys and rows
        description=study.description,
        spec_model=study.spec_model,
        expand=lambda spec: itertools.islice(study.expand(spec), 0, n * stride, stride),
        run_job=study.run_job,
        summarize=lambda rows, spec: Summary(table=rows.head(0), verdict=f"{len(rows)} rows"),
        plot=no_plots,
        version=study.version,
    )


def measure(
    kind: str, n: int, executor: str, workers: int, options: dict[str, Any]
) -> dict[str, Any]:
    """One run in this process: wall seconds, peak RSS (MB) and a digest of the rows."""
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO)])  # for Ray's workers
    if kind == "trivial":
        study, spec = TRIVIAL, {"n": n}
    else:
        study, spec = _networks_study(n), load_spec("hidden-symmetries", preset="paper")
        assert sum(1 for _ in get_experiment("hidden-symmetries").expand(spec)) == PAPER_GRID
    out = Path(tempfile.mkdtemp(prefix="symlab-scale-"))
    try:
        start = time.perf_counter()
        base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sweep = {"peak_mb": base_mb, "seconds": 0.0}
        marks: list[tuple[float, int]] = []  # (time, jobs done) at the first and last result

        def log(n_done: int, n_total: int) -> None:  # progress and RSS, every 10% (stderr)
            marks[1:] = [(time.perf_counter(), n_done)]
            if len(marks) == 1:
                marks.append(marks[0])
            if n_done % max(1, n_total // 10) == 0:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                elapsed = time.perf_counter() - start
                sweep.update(peak_mb=peak, seconds=elapsed)  # the last: the sweep's own peak
                print(f"{n_done}/{n_total} {elapsed:.0f} s peak {peak:.0f} MB", file=sys.stderr)

        run = run_study(
            study, spec, out, workers=workers, executor=executor, on_progress=log, **options
        )
        seconds = time.perf_counter() - start
        (t0, n0), (t1, n1) = marks
        steady = (t1 - t0) / max(n1 - n0, 1)  # per job from the first result to the last
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        rows = run.rows
        assert run.n_new == run.n_total == len(rows) == n and run.n_failed == 0
        if kind == "trivial":
            digest = int(rows["square"].sum())
            assert digest == sum(i * i for i in range(n))
        else:
            rows = rows.sort_values("key").reset_index(drop=True)
            timing = [c for c in rows.columns if c.endswith("seconds")]
            rows.drop(columns=timing).to_pickle(out.parent / f"{out.name}.pkl")
            digest = str(out.parent / f"{out.name}.pkl")
    finally:
        shutil.rmtree(out)
    return {
        "seconds": seconds,
        "sweep_seconds": sweep["seconds"],
        "steady_ms": steady * 1e3,
        "peak_mb": peak_mb,
        "sweep_peak_mb": sweep["peak_mb"],
        "base_mb": base_mb,
        "torch_imported": "torch" in sys.modules,
        "digest": digest,
    }


def child(kind: str, n: int, executor: str, workers: int, chunk: str = "auto") -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__)), "--child", kind, str(n), executor, str(workers)]
    argv.append(chunk)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(REPO)]))
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=5)
    parser.add_argument("--million", type=int, default=1_000_000, help="jobs inline (memory)")
    parser.add_argument("--overhead", type=int, default=20_000, help="jobs per overhead run")
    parser.add_argument("--unchunked", type=int, default=2_000, help="jobs on Ray, chunk 1")
    parser.add_argument("--networks", type=int, default=30)
    parser.add_argument("--only", choices=["memory", "overhead", "networks"])
    parser.add_argument(
        "--memory-ray", action="store_true", help="also run the 10^6 jobs on Ray (2 CPUs)"
    )
    args = parser.parse_args()
    if args.child:
        kind, n, executor, workers, chunk = args.child
        if kind != "trivial":  # the trivial study must not load torch (its memory is measured)
            import torch

            torch.set_num_threads(1)
        options = {} if chunk == "auto" else {"chunk": int(chunk)}
        print(json.dumps(measure(kind, int(n), executor, int(workers), options)))
        return

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, one thread per job")
    print(f"load average {os.getloadavg()[0]:.1f} at the start")
    memory_runs = [("inline", "local", 1)] + [("on Ray, 2 CPUs", "ray", 2)] * args.memory_ray
    for label, executor, workers in memory_runs if args.only in (None, "memory") else []:
        r = child("trivial", args.million, executor, workers)
        print(
            f"{args.million} trivial jobs {label}: {r['seconds']:.0f} s "
            f"({r['seconds'] / args.million * 1e3:.3f} ms per job, summary and report included); "
            f"peak RSS of the sweep's process {r['peak_mb']:.0f} MB: {r['base_mb']:.0f} MB "
            f"after imports, {r['sweep_peak_mb']:.0f} MB at the last job, "
            f"torch imported: {r['torch_imported']}",
            flush=True,
        )
    if args.only in (None, "overhead"):
        for label, n, executor, workers, chunk in (
            ("local, inline", args.overhead, "local", 1, "auto"),
            ("local, 2 workers", args.overhead, "local", 2, "auto"),
            ("ray, 2 CPUs, one job per task", args.unchunked, "ray", 2, "1"),
            ("ray, 2 CPUs, adaptive chunks", args.overhead, "ray", 2, "auto"),
        ):
            r = child("trivial", n, executor, workers, chunk)
            print(
                f"trivial jobs, {label}: {n} jobs in {r['seconds']:.1f} s -> "
                f"{r['steady_ms']:.3f} ms per job from the first result to the last "
                f"({r['seconds'] / n * 1e3:.3f} with start-up, summary and report); "
                f"peak RSS {r['peak_mb']:.0f} MB",
                flush=True,
            )
    if args.only in (None, "networks"):
        n, frames = args.networks, []
        for label, executor, workers in (
            ("local, inline", "local", 1),
            ("local, 2 workers", "local", 2),
            ("ray, 2 CPUs, adaptive chunks", "ray", 2),
        ):
            r = child("networks", n, executor, workers)
            frames.append(pd.read_pickle(r["digest"]))
            os.remove(r["digest"])
            print(
                f"hidden-symmetries paper grid, {n} networks (every {PAPER_GRID // n}th job), {label}: "
                f"{r['seconds']:.1f} s -> {n / r['seconds']:.2f} networks/s "
                f"({1e3 / r['steady_ms']:.2f} from the first result to the last)",
                flush=True,
            )
        assert all(frame.equals(frames[0]) for frame in frames[1:]), "rows differ"
        print("rows equal across the three executors (bit for bit, wall times aside)")


if __name__ == "__main__":
    main()
