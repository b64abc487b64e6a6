"""A study's verdict as data: each claim with its measurement, statistic and outcome, then text.

Tests read the outcomes (``summary.extras["checks"]``), never the prose; the prose is rendered from
the same records, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from symlab.stats import PowerLawFit

OUTCOMES = ("reproduced", "not reproduced", "opposite", "inconclusive")


@dataclass(frozen=True)
class Check:
    """One claim of the paper, tested: ``claim`` in the paper's terms, what was ``measured``, the
    ``statistic`` behind it (test, interval), and the ``outcome`` (one of :data:`OUTCOMES`)."""

    name: str
    claim: str
    measured: str
    statistic: str
    outcome: str

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(
                f"outcome: expected one of {', '.join(OUTCOMES)}, got {self.outcome!r}"
            )

    def sentence(self) -> str:
        return f"{self.claim}: {self.outcome.upper()} — {self.measured} ({self.statistic})."


def render(checks: list[Check], preamble: str = "") -> str:
    """The verdict paragraph: the preamble, then one sentence per check."""
    return " ".join([preamble.strip()] * bool(preamble.strip()) + [c.sentence() for c in checks])


def as_records(checks: list[Check]) -> list[dict[str, str]]:
    """The checks as JSON-serialisable dicts (for ``Summary.extras``)."""
    return [asdict(c) for c in checks]


def exponent_outcome(fit: PowerLawFit, predicted: float, allowance: float) -> str:
    """Outcome of "the exponent is ``predicted`` up to one log factor": reproduced when the
    interval meets [predicted, predicted + allowance]; not reproduced when it lies wholly outside,
    or when censoring leaves only a lower bound above the band or no estimate at all; inconclusive
    when a lower bound does not exceed the band."""
    if fit.lower_bound or not np.isfinite(fit.exponent):
        above = fit.lower_bound and fit.exponent > predicted + allowance
        return "not reproduced" if above or not fit.lower_bound else "inconclusive"
    if fit.ci_high < predicted or fit.ci_low > predicted + allowance:
        return "not reproduced"
    return "reproduced"
