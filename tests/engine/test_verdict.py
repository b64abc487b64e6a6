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


def test_claims_tables_carry_every_outcome():
    from symlab.engine.verdict import claims_html, claims_markdown

    records = as_records([
        Claim("a", "x | y", "m", "s", "reproduced"),
        Claim("b", "z", "m2", "s2", "not reproduced"),
    ])  # fmt: skip
    markdown = claims_markdown(records).splitlines()
    assert markdown[0] == "| claim | outcome | measured | statistic |"
    assert markdown[2] == "| x \\| y | reproduced | m | s |" and "not reproduced" in markdown[3]
    page = claims_html(records)
    assert page.startswith('<table id="claims">') and page.count("<tr") == 3
    assert 'class="outcome-not-reproduced"' in page
    assert claims_markdown([]) == claims_html([]) == ""
