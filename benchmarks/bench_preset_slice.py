"""One seed of every cell of the hidden-symmetries paper preset: CPU seconds per job and the ranks.

Runs the study's own job (``run_job``: the adaptive functional dimension and ``diagnose``) on
the 288 cells (4 input dims x 4 widths x 6 depths x 3 samplers) of
``symlab/configs/hidden-symmetries/paper.toml`` at one seed, in this one-thread process, and
reports the mean CPU seconds per job (``time.process_time``), which times 14400 is the preset's
CPU cost, by rank method and by sampler. ``--save F`` writes the rows as CSV; ``--compare F``
prints, against such a file from other code, the CPU ratio and every cell whose rank, upper
bound or stop reason changed.

Run: PYTHONPATH=. python benchmarks/bench_preset_slice.py [--seed 7] [--save a.csv] [--compare b.csv]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import pandas as pd
import tomllib
import torch

from symlab.experiments.hidden_symmetries import run_job

PRESET = Path(__file__).resolve().parents[1] / "symlab/configs/hidden-symmetries/paper.toml"


def slice_jobs(seed: int) -> list[dict]:
    spec = tomllib.loads(PRESET.read_text())
    return [
        {
            "sampler": sampler,
            "n0": n0,
            "width": width,
            "depth": depth,
            "seed": seed,
            "output_dim": spec["output_dim"],
            "init": spec["init"],
            "bias_std": spec["bias_std"],
            "max_points": spec["max_points"],
            "certify_budget_stop": spec["certify_budget_stops"],
        }
        for sampler, n0, width, depth in itertools.product(
            spec["samplers"], spec["input_dims"], spec["widths"], spec["depths"]
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="first N cells only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    jobs = slice_jobs(args.seed)[: args.limit]
    for index, params in enumerate(jobs):
        start = time.process_time()
        result = run_job(params)
        cpu = time.process_time() - start
        rows.append({**params, **result, "cpu": cpu})
        if index % 24 == 23:
            print(
                f"{index + 1}/{len(jobs)} jobs, {sum(r['cpu'] for r in rows):.0f} CPU-s", flush=True
            )
    frame = pd.DataFrame(rows)
    print(
        f"mean CPU-s per job: {frame.cpu.mean():.3f} (x 14400 = {frame.cpu.mean() * 14400 / 3600:.2f} CPU-h)"
    )
    print(frame.groupby("rank_method").cpu.agg(["count", "sum", "mean"]).round(2))
    print(frame.groupby("sampler").cpu.agg(["count", "sum", "mean"]).round(2))
    if args.save:
        frame.to_csv(args.save, index=False)
    if args.compare:
        old = pd.read_csv(args.compare)
        key = ["sampler", "n0", "width", "depth", "seed"]
        both = frame.merge(old, on=key, suffixes=("", "_old"))
        print(f"CPU new / old: {both.cpu.sum() / both.cpu_old.sum():.3f} on {len(both)} jobs")
        changed = both[
            (both["rank"] != both.rank_old)
            | (both.upper != both.upper_old)
            | (both.saturated != both.saturated_old)
        ]
        cols = key + [
            "rank_old",
            "rank",
            "upper_old",
            "upper",
            "saturated_old",
            "saturated",
            "rank_method_old",
            "rank_method",
            "cpu_old",
            "cpu",
        ]
        print(f"{len(changed)} cells changed:")
        print(changed[cols].to_string(index=False))


if __name__ == "__main__":
    main()
