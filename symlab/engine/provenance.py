"""Run provenance: which software and settings computed each stored row.

Some studies' per-job outcomes depend on floating-point rounding (L-BFGS in the critical-points
study amplifies rounding ~10^4 per 50 iterations), so a sweep resumed on another machine, BLAS
or thread count can silently mix environments. Every ``run_study`` call that runs jobs records
one *session* in the store (:meth:`Store.begin_session`): versions of symlab, Python, torch (with
its CUDA/CPU build), numpy and scipy, the BLAS/LAPACK backends, the C library, the executor's
workers and threads per worker, OS, machine architecture, CPU instruction set and the spec's
device; each result row names its session. Hostnames, user names and file paths are never
recorded. Rows written before provenance existed have no session ("unknown").

:func:`provenance` reads this back for a set of keys; :class:`Provenance` gives the one-line
description ``symlab show`` prints and the one-sentence warning for mixed environments.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import platform
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from symlab.engine.store import Store

# the columns of the sessions table after ``session``, ``started_at`` and ``finished_at``
ENVIRONMENT_FIELDS = (
    "symlab",
    "python",
    "torch",
    "numpy",
    "scipy",
    "blas",
    "libc",
    "executor",
    "workers",
    "threads",
    "os",
    "machine",
    "cpu",
    "device",
)
# fields whose difference between sessions can change rounding, hence results: a warning
COMPARED_FIELDS = ("symlab", "python", "torch", "numpy", "scipy", "blas", "libc", "threads")
COMPARED_FIELDS += ("machine", "cpu", "device")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def software_environment() -> dict[str, str | None]:
    """The process's software and machine (cached: it does not change while it runs).

    ``torch`` is its version with the CUDA build (``2.13.0+cpu``, or ``... cuda 12.4``), ``blas``
    torch's BLAS/LAPACK (from ``torch.__config__.show()``'s build settings) and numpy's and
    scipy's BLAS libraries with their kernels (threadpoolctl), ``cpu`` the CPU model when
    ``platform.processor()`` knows it and torch's CPU capability (AVX2, AVX512), ``libc`` the C
    library (its libm rounds too). No hostname, user name or path is read into any value.

    Reading torch's build needs torch imported (180 MB, about a second). A process that has
    imported it (every built-in study) reads it here; one that has not (a study of its own
    without torch, whose sweep must stay small) asks a short-lived child process of the same
    interpreter and ``sys.path``, which reports the same values (:func:`probed_environment`),
    so the parent never loads torch for its provenance.
    """
    if "torch" not in sys.modules:
        probed = probed_environment()
        if probed is not None:
            return probed
    return probe_software()


def probe_software() -> dict[str, str | None]:
    """:func:`software_environment` read in this process (imports torch and scipy.linalg)."""
    import numpy
    import torch

    torch_text = torch.__version__ + (f" cuda {torch.version.cuda}" if torch.version.cuda else "")
    build = torch.__config__.show()
    found = dict(re.findall(r"\b(BLAS_INFO|LAPACK_INFO)=([\w.-]+)", build))
    blas = [f"torch {found.get('BLAS_INFO', '?')} (LAPACK {found.get('LAPACK_INFO', '?')})"]
    if torch.backends.mkl.is_available() and "mkl" not in blas[0]:
        blas[0] += " (MKL available)"
    blas += _loaded_blas()
    libc_name, libc_version = platform.libc_ver()
    capability = torch.backends.cpu.get_cpu_capability()
    return {
        "symlab": _version("symlab"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "torch": torch_text,
        "numpy": numpy.__version__,
        "scipy": _version("scipy"),
        "blas": " + ".join(dict.fromkeys(blas)),
        "libc": f"{libc_name} {libc_version}".strip() or None,
        "os": f"{platform.system()} {platform.release()}".strip() or None,
        "machine": platform.machine() or None,
        "cpu": " ".join(p for p in (platform.processor(), capability) if p) or None,
    }


def probed_environment(timeout: float = 120.0) -> dict[str, str | None] | None:
    """:func:`probe_software` run in a child process (same interpreter and ``sys.path``), or None
    when that fails (no interpreter, a timeout): the caller then reads it in process."""
    code = (
        "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
        "from symlab.engine.provenance import probe_software; "
        "print(json.dumps(probe_software()))"
    )
    if not sys.executable:
        return None
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, json.dumps(sys.path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        values = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    if done.returncode != 0 or not isinstance(values, dict):
        return None
    return {str(k): None if v is None else str(v) for k, v in values.items()}


def _loaded_blas() -> list[str]:
    """numpy's and scipy's BLAS libraries: ``numpy openblas 0.3.31 (Haswell)``.

    scipy.linalg is imported first so the list does not depend on what the process happened to
    import. Each library is named by the package that ships it; its file path is not recorded.
    """
    try:
        import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    found = []
    for info in threadpool_info():
        if info.get("user_api") != "blas":
            continue
        parts = Path(str(info.get("filepath", ""))).parts
        owner = next((p for p in ("numpy", "scipy") if any(q.startswith(p) for q in parts)), "")
        kernel = f" ({info['architecture']})" if info.get("architecture") else ""
        text = f"{owner} {info.get('internal_api')} {info.get('version') or ''}".strip()
        found.append(text + kernel)
    return sorted(found)


def environment(executor: Any = None, spec: Any = None) -> dict[str, Any]:
    """The session fields of a run with ``executor`` on ``spec`` (see :data:`ENVIRONMENT_FIELDS`).

    ``workers`` and ``threads`` are the executor's ``workers`` and ``threads_per_worker``
    attributes (None for an executor without them); ``device`` is the spec's ``device`` field.
    """
    values: dict[str, Any] = dict.fromkeys(ENVIRONMENT_FIELDS)
    values.update(software_environment())
    if executor is not None:
        values["executor"] = type(executor).__name__
        values["workers"] = getattr(executor, "workers", None)
        values["threads"] = getattr(executor, "threads_per_worker", None)
    device = getattr(spec, "device", None)
    values["device"] = None if device is None else str(device)
    return values


@dataclass(frozen=True)
class Provenance:
    """The sessions that computed a set of rows.

    ``sessions``: the sessions table restricted to those sessions, with a ``rows`` column (how
    many of the rows each computed), oldest first; ``n_rows``: the rows; ``n_unknown``: rows
    without a recorded session (stored before provenance existed).
    """

    sessions: pd.DataFrame
    n_rows: int
    n_unknown: int

    def differing(self) -> dict[str, list[Any]]:
        """The compared fields whose values differ between the sessions: field -> values."""
        result: dict[str, list[Any]] = {}
        for name in COMPARED_FIELDS:
            values = list(dict.fromkeys(_plain(v) for v in self.sessions.get(name, [])))
            if len(values) > 1:
                result[name] = values
        return result

    def line(self) -> str:
        """One line: ``computed in 2 sessions: symlab 0.1.0, torch 2.13.0+cpu, CPython 3.11.7,
        threads per worker 1, x86_64 AVX512, BLAS: torch mkl ...; rows: 960 / 0 unknown``
        (values that differ between sessions are joined with `` | ``)."""
        n = len(self.sessions)
        if n == 0:
            where = "computed in no recorded session"
        else:
            parts = [f"{name} {_joined(self.sessions[name])}" for name in ("symlab", "torch")]
            parts.append(_joined(self.sessions["python"]))
            parts.append(f"threads per worker {_joined(self.sessions['threads'])}")
            parts.append(f"{_joined(self.sessions['machine'])} {_joined(self.sessions['cpu'])}")
            parts.append(f"BLAS: {_joined(self.sessions['blas'])}")
            devices = [d for d in self.sessions["device"] if _plain(d) is not None]
            if devices:
                parts.append(f"device {_joined(pd.Series(devices))}")
            where = f"computed in {n} session{'s' if n != 1 else ''}: " + ", ".join(parts)
        return f"{where}; rows: {self.n_rows} / {self.n_unknown} unknown"

    def warning(self) -> str | None:
        """One sentence when the sessions differ in software, threads or machine; else None."""
        differing = self.differing()
        if not differing:
            return None
        details = "; ".join(
            f"{name} {' vs '.join('unknown' if v is None else str(v) for v in values)}"
            for name, values in differing.items()
        )
        return (
            f"these rows were computed in mixed environments ({details}), so results that "
            "depend on floating-point rounding may differ between sessions; see the session "
            "column of `symlab export`."
        )


def _plain(value: Any) -> Any:
    """NaN (a missing value in a DataFrame) as None; numpy numbers as Python numbers; a whole
    float (an integer column that holds a NULL) as int."""
    value = value.item() if hasattr(value, "item") else value
    if value is None or (isinstance(value, float) and value != value):
        return None
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _joined(column: pd.Series) -> str:
    values = list(dict.fromkeys(_plain(v) for v in column))
    return " | ".join("?" if v is None else str(v) for v in values)


def provenance(store: Store, keys: Iterable[str] | None = None) -> Provenance:
    """The sessions that computed the stored rows of ``keys`` (all rows when None)."""
    return provenance_of_counts(store, store.session_counts(keys))


def provenance_of_counts(store: Store, counts: dict[str | None, int]) -> Provenance:
    """The sessions of ``store`` that computed ``counts[session]`` rows each (None: unknown)."""
    counts = dict(counts)
    n_unknown = counts.pop(None, 0)
    sessions = store.sessions(counts)
    sessions = sessions[sessions["session"].isin(list(counts))]
    return Provenance(
        sessions=sessions.reset_index(drop=True),
        n_rows=sum(counts.values()) + n_unknown,
        n_unknown=n_unknown,
    )
