"""A study's verdict as data: each claim with its measurement, statistic and outcome, then text.

Tests read the outcomes (``summary.extras["claims"]``, one key for every study), never the prose; the prose is rendered from
the same records, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # scipy (through symlab.stats) stays out of the engine's import
    from symlab.stats import PowerLawFit

OUTCOMES = (
    "reproduced",
    "partly reproduced",
    "not reproduced",
    "opposite",
    "inconclusive",
    "not measured",
)


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, tested: ``claim`` in the paper's terms, what was ``measured``, the
    ``statistic`` behind it (test, interval), and the ``outcome`` (one of :data:`OUTCOMES`):
    "reproduced" (measured as the paper says, within the stated tolerance), "partly reproduced"
    (some of its parts or cells only), "not reproduced"
    (measured otherwise), "opposite" (the opposite sign or direction), "inconclusive" (the
    statistic cannot decide at this size) or "not measured" (the grid has no cell that tests it)."""

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

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def sentence(self) -> str:
        return f"{self.claim}: {self.outcome.upper()} — {self.measured} ({self.statistic})."


def render(claims: list[Claim], preamble: str = "") -> str:
    """The verdict paragraph: the preamble, then one sentence per check."""
    return " ".join([preamble.strip()] * bool(preamble.strip()) + [c.sentence() for c in claims])


def as_records(claims: list[Claim]) -> list[dict[str, str]]:
    """The checks as JSON-serialisable dicts (for ``Summary.extras``)."""
    return [asdict(c) for c in claims]


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


def interval_outcome(low: float, high: float, band: float, reproduced_above: float = 0.0) -> str:
    """Outcome of a claimed positive effect from its confidence interval [low, high].

    Reproduced when the interval lies above ``reproduced_above`` (≥ 0: the effect size the
    paper's claim needs); partly reproduced when it lies above 0 but not above that size; not
    reproduced when it lies within ±``band`` (no effect of any size that matters, a tiny negative
    one included); opposite when it lies below 0 and reaches below −``band``; inconclusive
    otherwise (the interval is too wide to tell).
    """
    if not (0.0 <= reproduced_above and 0.0 <= band):
        raise ValueError(
            f"band and reproduced_above must be >= 0, got {band!r}, {reproduced_above!r}"
        )
    if low > reproduced_above:
        return "reproduced"
    if low > 0:
        return "partly reproduced"
    if -band <= low and high <= band:
        return "not reproduced"
    if high < 0:
        return "opposite"
    return "inconclusive"


CLAIM_COLUMNS = ("claim", "outcome", "measured", "statistic")


def claims_markdown(records: list[dict[str, str]]) -> str:
    """The checks as a Markdown table (one row per claim: claim, outcome, measured, statistic);
    empty for no records. Pipes inside a cell are escaped."""
    if not records:
        return ""

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(CLAIM_COLUMNS) + " |",
        "|" + "---|" * len(CLAIM_COLUMNS),
    ]
    lines += ["| " + " | ".join(cell(r.get(k, "")) for k in CLAIM_COLUMNS) + " |" for r in records]
    return "\n".join(lines)


def claims_html(records: list[dict[str, str]]) -> str:
    """The checks as an HTML table ``<table id="claims">``, each row classed by its outcome
    (``outcome-reproduced``, ``outcome-not-reproduced``, ...); empty for no records."""
    import html

    if not records:
        return ""
    head = "".join(f"<th>{c}</th>" for c in CLAIM_COLUMNS)
    rows = []
    for r in records:
        css = "outcome-" + str(r.get("outcome", "")).replace(" ", "-")
        cells = "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in CLAIM_COLUMNS)
        rows.append(f'<tr class="{css}">{cells}</tr>')
    return (
        f'<table id="claims"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )
