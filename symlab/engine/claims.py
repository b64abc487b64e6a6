"""A verdict as data: each claim of a paper, what was measured, the statistic that decided, and
the outcome; the verdict's text is rendered from these, so tests check outcomes, not prose."""

from __future__ import annotations

from dataclasses import asdict, dataclass

OUTCOMES = ("reproduced", "not reproduced", "opposite", "inconclusive")


@dataclass(frozen=True)
class Claim:
    """One tested claim. ``outcome`` is one of :data:`OUTCOMES`: "reproduced" (measured as the
    paper says, within the stated tolerance), "not reproduced" (measured otherwise), "opposite"
    (measured with the opposite sign or direction) or "inconclusive" (the statistic cannot decide
    at this size)."""

    name: str
    claim: str
    measurement: str
    statistic: str
    outcome: str

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(
                f"outcome: expected one of {', '.join(OUTCOMES)}, got {self.outcome!r}"
            )

    def sentence(self) -> str:
        return f"{self.claim}: {self.outcome.upper()}. {self.measurement} ({self.statistic})."

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def render(preamble: str, claims: list[Claim]) -> str:
    """The verdict paragraph: the preamble, then one sentence per claim."""
    return " ".join([preamble.strip()] + [claim.sentence() for claim in claims])
