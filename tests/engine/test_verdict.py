"""Verdicts as data: a claim refuses an unknown outcome and renders its sentence."""

import pytest

from symlab.engine.verdict import Claim, as_records, render


def test_claim_renders_and_refuses_unknown_outcomes():
    claim = Claim("slope", "slope = k", "slope 2.1 [1.9, 2.3]", "t interval", "reproduced")
    assert claim.sentence() == "slope = k: REPRODUCED — slope 2.1 [1.9, 2.3] (t interval)."
    assert render([claim], "Setup.").startswith("Setup. slope = k: REPRODUCED")
    assert claim.as_dict()["outcome"] == "reproduced" == as_records([claim])[0]["outcome"]
    with pytest.raises(ValueError, match="outcome: expected one of"):
        Claim("x", "x", "y", "z", "maybe")
