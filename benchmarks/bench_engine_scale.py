"""The sweep engine at scale: memory for any grid size, overhead per job, and study throughput.

1. A trivial study of N jobs (row = {"square": i * i}; its grid is a generator, never a list) run
   by ``run_study`` to the end: the sweep process's peak RSS (``getrusage``, the pool workers and
   Ray's processes not included) and the wall time per job, for the local executor inline
   (workers=1), with 2 worker processes, and on a local Ray instance of 2 CPUs. The rows are
   checked (count, sum of squares).
2. The hidden-symmetries paper grid's throughput (networks per second): every 240th job of the
   14,400 (60 networks spread over samplers, input dimensions, widths and depths), with 1 and 2
   local workers and on Ray (2 CPUs); rows checked equal across the three (bit for bit, the
   ``fd_seconds`` wall time aside).

Each measurement runs in a fresh subprocess (peak RSS is per process). Run::

    PYTHONPATH=. python benchmarks/bench_engine_scale.py [--trivial N] [--pool N] [--ray N]
        [--networks N] [--only trivial|networks]
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
STRIDE = 240  # every 240th job of the hidden-symmetries paper grid


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
    """The hidden-symmetries study restricted to ``n`` jobs, every ``STRIDE``-th of its grid."""
    study = get_experiment("hidden-symmetries")
    return Experiment(
        name="hidden-symmetries",  # same name, run_job and version: the same job keys and rows
        description=study.description,
        spec_model=study.spec_model,
        expand=lambda spec: itertools.islice(study.expand(spec), 0, n * STRIDE, STRIDE),
        run_job=study.run_job,
        summarize=lambda rows, spec: Summary(table=rows.head(0), verdict=f"{len(rows)} rows"),
        plot=no_plots,
        version=study.version,
    )


def measure(kind: str, n: int, executor: str, workers: int) -> dict[str, Any]:
    """One run in this process: wall seconds, peak RSS (MB) and a digest of the rows."""
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO)])  # for Ray's workers
    if kind == "trivial":
        study, spec = TRIVIAL, {"n": n}
    else:
        study, spec = _networks_study(n), load_spec("hidden-symmetries", preset="paper")
    out = Path(tempfile.mkdtemp(prefix="symlab-scale-"))
    try:
        start = time.perf_counter()
        base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        def log(n_done: int, n_total: int) -> None:  # progress and RSS, every 10% (stderr)
            if n_done % max(1, n_total // 10) == 0:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                elapsed = time.perf_counter() - start
                print(f"{n_done}/{n_total} {elapsed:.0f} s peak {peak:.0f} MB", file=sys.stderr)

        run = run_study(study, spec, out, workers=workers, executor=executor, on_progress=log)
        seconds = time.perf_counter() - start
        rows = run.rows.sort_values("key").reset_index(drop=True)
        assert run.n_new == run.n_total == len(rows) == n and run.n_failed == 0
        if kind == "trivial":
            digest = int(rows["square"].sum())
            assert digest == sum(i * i for i in range(n))
        else:
            timing = [c for c in rows.columns if c.endswith("seconds")]
            rows.drop(columns=timing).to_pickle(out.parent / f"{out.name}.pkl")
            digest = str(out.parent / f"{out.name}.pkl")
    finally:
        shutil.rmtree(out)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"seconds": seconds, "peak_mb": peak_mb, "base_mb": base_mb, "digest": digest}


def child(kind: str, n: int, executor: str, workers: int) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__)), "--child", kind, str(n), executor, str(workers)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(REPO)]))
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=4)
    parser.add_argument("--trivial", type=int, default=1_000_000, help="jobs inline")
    parser.add_argument("--pool", type=int, default=100_000, help="jobs with 2 workers")
    parser.add_argument("--ray", type=int, default=20_000, help="jobs on Ray")
    parser.add_argument("--networks", type=int, default=60)
    parser.add_argument("--only", choices=["trivial", "networks"])
    args = parser.parse_args()
    if args.child:
        kind, n, executor, workers = args.child
        import torch

        torch.set_num_threads(1)
        print(json.dumps(measure(kind, int(n), executor, int(workers))))
        return

    import torch

    print(f"torch {torch.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, ")
    print(f"load average {os.getloadavg()[0]:.1f} at the start")
    if args.only in (None, "trivial"):
        for label, n, executor, workers in (
            ("local, inline", args.trivial, "local", 1),
            ("local, 2 workers", args.pool, "local", 2),
            ("ray, 2 CPUs", args.ray, "ray", 2),
        ):
            r = child("trivial", n, executor, workers)
            print(
                f"trivial jobs, {label}: {n} jobs in {r['seconds']:.1f} s -> "
                f"{r['seconds'] / n * 1e3:.3f} ms per job; peak RSS {r['peak_mb']:.0f} MB "
                f"({r['base_mb']:.0f} MB before the run, torch imported)",
                flush=True,
            )
    if args.only in (None, "networks"):
        n, frames = args.networks, []
        for label, executor, workers in (
            ("local, inline", "local", 1),
            ("local, 2 workers", "local", 2),
            ("ray, 2 CPUs", "ray", 2),
        ):
            r = child("networks", n, executor, workers)
            frames.append(pd.read_pickle(r["digest"]))
            os.remove(r["digest"])
            print(
                f"hidden-symmetries paper grid, {n} networks (every {STRIDE}th job), {label}: "
                f"{r['seconds']:.1f} s -> {n / r['seconds']:.2f} networks/s",
                flush=True,
            )
        assert all(frame.equals(frames[0]) for frame in frames[1:]), "rows differ"
        print("rows equal across the three executors (bit for bit, wall times aside)")


if __name__ == "__main__":
    main()
