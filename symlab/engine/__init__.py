"""symlab.engine: specs, jobs, executors, the results store and reports.

Run a study from Python (what ``symlab run`` does)::

    from symlab import engine
    spec = engine.load_spec("hidden-symmetries", preset="quick")
    run = engine.run_study("hidden-symmetries", spec, "runs/x", workers=2)
    print(run.summary.verdict)

Register studies of your own with :func:`register`, or name their modules in the environment
variable ``SYMLAB_EXPERIMENTS="pkg.mod,other.mod"`` so that the CLI imports them.
"""

from symlab.engine.errors import InputError, SpecError, StudyNotFoundError
from symlab.engine.executors import Executor, Job, JobError, LocalExecutor
from symlab.engine.experiment import (
    Experiment,
    Summary,
    get_experiment,
    list_experiments,
    register,
)
from symlab.engine.job_stream import job_key
from symlab.engine.runner import (
    StudyRun,
    expand_jobs,
    open_run,
    report_study,
    run_study,
)
from symlab.engine.spec import list_presets, load_spec, spec_from_mapping, spec_to_toml
from symlab.engine.store import Store

__all__ = [
    "Executor",
    "Experiment",
    "InputError",
    "Job",
    "JobError",
    "LocalExecutor",
    "SpecError",
    "Store",
    "StudyNotFoundError",
    "StudyRun",
    "Summary",
    "expand_jobs",
    "get_experiment",
    "job_key",
    "list_experiments",
    "list_presets",
    "load_spec",
    "open_run",
    "register",
    "report_study",
    "run_study",
    "spec_from_mapping",
    "spec_to_toml",
]
