"""A tiny real study for the engine's tests: y = x**2 + seed, computed in the job's process.

Registered as study ``toy`` when imported (tests import it directly, or through
``SYMLAB_EXPERIMENTS=toy_study`` with this folder on PYTHONPATH). Presets: toy_configs/*.toml.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field, confloat, conint

from symlab.engine.experiment import Experiment, Summary, register


class ToySpec(BaseModel):
    """Jobs on the grid xs x seeds."""

    model_config = ConfigDict(extra="forbid")

    xs: list[conint(ge=0)] = Field(description="inputs x (integers >= 0)", min_length=1)
    seeds: list[int] = Field(default=[0], description="seeds added to x**2")
    sleep: confloat(ge=0.0) = Field(default=0.0, description="seconds each job sleeps")
    fail_on: list[int] = Field(default=[], description="x values whose job raises")
    mode: Literal["plain", "bad-row", "crash", "bad-summary", "bad-plot"] = Field(
        default="plain",
        description="plain; bad-row: jobs return an object that JSON cannot hold; crash: jobs "
        "in fail_on kill their worker process; bad-summary: summarize raises; bad-plot: plot "
        "raises",
    )


def expand(spec: ToySpec) -> list[dict[str, Any]]:
    jobs = []
    for seed in spec.seeds:
        for x in spec.xs:
            params = {"x": x, "seed": seed, "sleep": spec.sleep, "fail": x in spec.fail_on}
            if spec.mode in ("bad-row", "crash"):
                params["mode"] = spec.mode
            jobs.append(params)
    return jobs


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    time.sleep(params["sleep"])
    mode = params.get("mode", "plain")
    if params["fail"] and mode == "crash":
        os._exit(3)  # a worker dying without a Python exception
    if params["fail"]:
        raise RuntimeError(f"toy failure at x={params['x']}")
    x, seed = params["x"], params["seed"]
    if mode == "bad-row":
        return {"y": x**2 + seed, "obj": object()}
    return {"y": x**2 + seed, "pid": os.getpid(), "pair": [x, x * x], "half": x / 2}


def sleep_then_echo(params: dict[str, Any]) -> dict[str, Any]:
    """A job function for executor tests: sleeps ``params["sleep"]`` seconds."""
    time.sleep(params["sleep"])
    return {"i": params["i"], "pid": os.getpid()}


def summarize(rows: pd.DataFrame, spec: ToySpec) -> Summary:
    if spec.mode == "bad-summary":
        raise ZeroDivisionError("toy summary divides by zero")
    table = rows.groupby("seed", as_index=False).agg(n=("y", "size"), mean_y=("y", "mean"))
    verdict = (
        f"The toy study stored {len(rows)} rows; mean y = {rows['y'].mean():.3f} "
        f"over seeds {sorted(rows['seed'].unique().tolist())}."
    )
    return Summary(table=table, verdict=verdict, extras={"n": len(rows)})


def plot(rows: pd.DataFrame, spec: ToySpec, out_dir: Path) -> list[Path]:
    if spec.mode == "bad-plot":
        raise KeyError("toy plot needs a missing column")
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    for seed, group in rows.groupby("seed"):
        group = group.sort_values("x")
        ax.plot(group["x"], group["y"], marker="o", label=f"seed {seed}")
    ax.set_xlabel("x (dimensionless)")
    ax.set_ylabel("y = x² + seed")
    ax.set_title("toy study")
    ax.legend()
    fig.tight_layout()
    paths = [Path(out_dir) / "toy.png", Path(out_dir) / "toy.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


TOY = register(
    Experiment(
        name="toy",
        description="Engine test study: y = x**2 + seed.",
        spec_model=ToySpec,
        expand=expand,
        run_job=run_job,
        summarize=summarize,
        plot=plot,
        version="1",
        config_dir=Path(__file__).parent / "toy_configs",
    )
)
