"""The shared interval-to-outcome rule of structured verdicts (symlab.engine.verdict)."""

import math

import pytest

from symlab.engine.verdict import interval_outcome


@pytest.mark.parametrize(
    ("low", "high", "band", "above", "expected"),
    [
        (0.3, 0.9, 0.1, 0.0, "reproduced"),
        (0.3, 0.9, 0.1, math.log(1.25), "reproduced"),  # above log 1.25 = 0.223
        (0.1, 0.9, 0.1, math.log(1.25), "partly reproduced"),  # above 0, not above the size
        (-0.9, -0.2, 0.1, 0.0, "opposite"),
        (-0.05, 0.08, 0.1, 0.0, "not reproduced"),  # within the band
        (-0.05, 0.5, 0.1, 0.0, "inconclusive"),  # too wide to tell
        (-0.5, 0.05, 0.1, 0.0, "inconclusive"),
        (0.0, 0.05, 0.1, 0.0, "not reproduced"),  # touching 0 is not above it
        (-0.03, -0.01, 0.05, 0.0, "not reproduced"),  # below 0 for sure, but negligible
        (-0.2, -0.03, 0.05, 0.0, "opposite"),  # reaches below the band
    ],
)
def test_interval_outcome_each_branch(low, high, band, above, expected):
    assert interval_outcome(low, high, band=band, reproduced_above=above) == expected


def test_interval_outcome_refuses_a_negative_band():
    with pytest.raises(ValueError, match="band"):
        interval_outcome(0.1, 0.2, band=-0.1)
