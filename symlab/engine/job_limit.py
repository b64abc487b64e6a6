"""The job limit: a spec whose grid has more than ``SYMLAB_MAX_JOBS`` (default 10^7) jobs is
refused before anything is expanded or written, unless forced (``symlab run --force``).

The count is multiplicative in the grid sizes and costs nothing: a study's ``count_jobs(spec)``
(:class:`symlab.engine.experiment.Experiment`), else the product of the lengths of the spec's
non-empty list fields and its integer ``seeds`` field, which is the grid size of a study that crosses
every list (hidden-symmetries, bottleneck, leaky-resnet, the NTK studies).
"""

from __future__ import annotations

import math
import os

from pydantic import BaseModel

from symlab.engine.errors import InputError
from symlab.engine.experiment import Experiment

DEFAULT_MAX_JOBS = 10**7
MAX_JOBS_ENV = "SYMLAB_MAX_JOBS"


def count_jobs(experiment: Experiment, spec: BaseModel) -> int:
    """How many jobs ``spec`` expands to (before duplicates are merged), without expanding."""
    if experiment.count_jobs is not None:
        return int(experiment.count_jobs(spec))
    sizes = [len(v) for v in spec.model_dump().values() if isinstance(v, list) and v]
    seeds = getattr(spec, "seeds", None)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        sizes.append(seeds)
    return math.prod(sizes)


def max_jobs() -> int:
    """The job limit: ``$SYMLAB_MAX_JOBS`` (an integer >= 1), else 10^7."""
    text = os.environ.get(MAX_JOBS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_JOBS
    try:
        limit = int(text.replace("_", ""))
    except ValueError:
        limit = 0
    if limit < 1:
        raise InputError(f"{MAX_JOBS_ENV}: expected an integer >= 1, got {text!r}.")
    return limit


def check_job_limit(experiment: Experiment, spec: BaseModel, limit: int | None = None) -> int:
    """The job count of ``spec``; InputError if it exceeds ``limit`` (default :func:`max_jobs`)."""
    limit = max_jobs() if limit is None else limit
    n = count_jobs(experiment, spec)
    if n > limit:
        raise InputError(
            f"spec: the grid has {n:,} jobs, over the limit of {limit:,}; expected at most "
            f"{limit:,} (shrink the grid, raise {MAX_JOBS_ENV}, or pass --force)."
        )
    return n
