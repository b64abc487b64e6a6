"""Track the empirical NTK on fixed probe inputs during a user's own training loop.

Records, at every ``every``-th step passed to :meth:`KernelTracker.update`: the distance of the
kernel from the kernel at initialisation and the kernel velocity (Fort et al., NeurIPS 2020), the
centered kernel-target alignment (Cortes et al. 2012) when targets are given, the kernel's
Frobenius norm and trace. Memory is bounded: the init kernel and the previous kernel are kept,
plus at most ``max_records`` kernels of a thinned history (every other one is dropped when full).
Cost per recorded step: one ``empirical_ntk`` on the probe inputs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

from symlab.ntk.empirical import empirical_ntk
from symlab.ntk.metrics import kernel_alignment, kernel_distance


class KernelTracker:
    """Kernel dynamics on ``probe_inputs``: call ``update(step)`` after each optimiser step.

    ``targets`` (N,) or (N, C) enables the alignment column; ``every`` records every k-th step;
    ``max_records`` bounds the kernels kept in ``history`` (0 keeps none beyond init and previous);
    ``method`` / ``chunk_size`` / ``trace`` are passed to :func:`empirical_ntk` (``trace=True``
    tracks the (N, N) kernel Σ_k Θ_kk, as Fort et al. do). As a :mod:`symlab.train` callback:
    ``callback=lambda step, model: tracker.update(step) and None``.
    """

    def __init__(
        self,
        model: nn.Module,
        probe_inputs: torch.Tensor,
        targets: torch.Tensor | None = None,
        every: int = 1,
        max_records: int = 0,
        *,
        method: str = "auto",
        chunk_size: int | None = None,
        trace: bool = False,
    ):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected a positive integer, got {every!r}")
        if not isinstance(max_records, int) or max_records < 0:
            raise ValueError(f"max_records: expected a non-negative integer, got {max_records!r}")
        if targets is not None and targets.shape[0] != probe_inputs.shape[0]:
            raise ValueError(
                f"targets: expected {probe_inputs.shape[0]} rows (one per probe input), "
                f"got {targets.shape[0]}"
            )
        self.model, self.probe_inputs, self.targets = model, probe_inputs, targets
        self.every, self.max_records = every, max_records
        self.method, self.chunk_size, self.trace = method, chunk_size, trace
        self.kernel_init: torch.Tensor | None = None
        self.kernel_last: torch.Tensor | None = None
        self.history: list[tuple[int, torch.Tensor]] = []
        self.records: list[dict[str, Any]] = []
        self._last_step: int | None = None
        self._thin = 1  # history keeps every _thin-th recorded kernel
        self._n_recorded = 0

    def kernel(self) -> torch.Tensor:
        """The current empirical NTK on the probe inputs: (N, N, K, K), or (N, N) traced."""
        return empirical_ntk(
            self.model, self.probe_inputs, method=self.method, chunk_size=self.chunk_size,
            trace=self.trace,
        ).detach()  # fmt: skip

    def update(self, step: int, kernel: torch.Tensor | None = None) -> dict[str, Any] | None:
        """Record the kernel metrics at ``step`` if it is a recording step; returns the record.
        ``kernel``: the current kernel when the caller has already computed it (else computed)."""
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"step: expected a step after {self._last_step}, got {step}")
        if self.kernel_init is not None and step % self.every != 0:
            return None
        k = self.kernel() if kernel is None else kernel
        record: dict[str, Any] = {
            "step": int(step),
            "kernel_norm": float(torch.linalg.vector_norm(k)),
            "kernel_trace": float(
                k.diagonal().sum() if k.ndim == 2 else k.diagonal(dim1=0, dim2=1).diagonal().sum()
            ),
        }
        if self.kernel_init is None:
            self.kernel_init = k
            record["distance_from_init"] = 0.0
            record["velocity"] = float("nan")
        else:
            record["distance_from_init"] = kernel_distance(self.kernel_init, k)
            record["velocity"] = kernel_distance(self.kernel_last, k) / (step - self._last_step)
        if self.targets is not None:
            record["alignment"] = kernel_alignment(k, self.targets)
        self.kernel_last, self._last_step = k, step
        self._keep(step, k)
        self.records.append(record)
        return record

    def _keep(self, step: int, k: torch.Tensor) -> None:
        if self.max_records == 0:
            return
        if self._n_recorded % self._thin == 0:
            self.history.append((step, k))
            if len(self.history) > self.max_records:
                self.history = self.history[::2]
                self._thin *= 2
        self._n_recorded += 1

    def to_frame(self) -> pd.DataFrame:
        """The records as a DataFrame, one row per recorded step."""
        return pd.DataFrame.from_records(self.records)
