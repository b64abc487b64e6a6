"""Engine overhead: what run_study adds per job, and what a spawn process pool buys.

1. Bookkeeping per job, inline (workers=1): run_study on N trivial jobs (every row inserted and
   committed in its own SQLite transaction, WAL) vs a bare Python loop over run_job. Reports the
   per-job overhead in ms and the ratio.
2. Process pool start-up, and M jobs that sleep S seconds each, workers=2 vs workers=1 (inline). Reports the
   speedup (ideal 2; the spawn start-up of the workers is included).

Both checks assert that the stored rows equal the bare loop's. Run:
``python benchmarks/bench_engine.py`` (about 40 s).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, confloat, conint

from symlab.engine import Experiment, Summary, run_study


class BenchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: conint(ge=1) = Field(description="number of jobs")
    sleep: confloat(ge=0) = Field(default=0.0, description="seconds each job sleeps")


def expand(spec: BenchSpec) -> list[dict[str, Any]]:
    return [{"i": i, "sleep": spec.sleep} for i in range(spec.n)]


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    time.sleep(params["sleep"])
    i = params["i"]
    return {"square": i * i, "parity": i % 2}


def summarize(rows: pd.DataFrame, spec: BenchSpec) -> Summary:
    return Summary(table=rows[["i", "square"]].head(3), verdict=f"{len(rows)} rows.")


def plot(rows: pd.DataFrame, spec: BenchSpec, out_dir: Path) -> list[Path]:
    return []


BENCH = Experiment(
    name="engine-bench",
    description="engine overhead benchmark",
    spec_model=BenchSpec,
    expand=expand,
    run_job=run_job,
    summarize=summarize,
    plot=plot,
)


def timed_run(spec: dict[str, Any], workers: int) -> tuple[float, pd.DataFrame]:
    out = Path(tempfile.mkdtemp(prefix="symlab-bench-"))
    try:
        start = time.perf_counter()
        result = run_study(BENCH, spec, out, workers=workers)
        seconds = time.perf_counter() - start
        return seconds, result.rows
    finally:
        shutil.rmtree(out)


def bare(spec: dict[str, Any]) -> tuple[float, list[dict[str, Any]]]:
    start = time.perf_counter()
    rows = [{**p, **run_job(p)} for p in expand(BenchSpec(**spec))]
    return time.perf_counter() - start, rows


def main() -> None:
    import torch

    print(f"torch {torch.__version__}; engine benchmark (shared, loaded 2-core CPU)")
    spec = {"n": 400}
    t_bare, expected = bare(spec)
    t_engine, rows = timed_run(spec, workers=1)
    assert rows.drop(columns="key").to_dict("records") == expected
    per_job = (t_engine - t_bare) / spec["n"] * 1e3
    print(
        f"inline, {spec['n']} trivial jobs: bare loop {t_bare:.3f} s, run_study {t_engine:.3f} s "
        f"-> {per_job:.2f} ms engine overhead per job (store insert + commit, summary, report)"
    )

    t_start, _ = timed_run({"n": 2}, workers=2)
    print(f"spawn pool start-up (2 workers, 2 trivial jobs): {t_start:.2f} s")

    spec = {"n": 80, "sleep": 0.1}
    t_bare, expected = bare(spec)
    t1, rows1 = timed_run(spec, workers=1)
    t2, rows2 = timed_run(spec, workers=2)
    assert rows1.drop(columns="key").to_dict("records") == expected
    assert rows2.to_dict("records") == rows1.to_dict("records")
    print(
        f"{spec['n']} jobs x {spec['sleep']} s sleep: workers=1 {t1:.2f} s, workers=2 {t2:.2f} s "
        f"-> speedup {t1 / t2:.2f}x (ideal 2; includes spawning 2 workers)"
    )


if __name__ == "__main__":
    main()
