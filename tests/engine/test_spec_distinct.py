"""``symlab.engine.spec.distinct``: the list validator the studies share, and its message in a spec."""

import pytest

from symlab.engine.errors import SpecError
from symlab.engine.spec import distinct, spec_from_mapping


def test_distinct_sorts_numbers_keeps_strings_and_names_repeats():
    assert distinct([3, 1, 2]) == [1, 2, 3]
    assert distinct(["shallow", "deep"], "models") == ["shallow", "deep"]
    assert distinct([]) == []
    with pytest.raises(ValueError, match="^expected distinct depths$"):
        distinct([4, 2, 4], "depths")


@pytest.mark.parametrize(
    "study, data, field",
    [
        ("spectral-bias", {"degrees": [1, 2, 2]}, "degrees"),
        ("bottleneck", {"depths": [3, 3]}, "depths"),
        ("composition", {"models": ["deep", "deep"]}, "models"),
    ],
)
def test_a_repeated_value_is_one_sentence_naming_the_field(study, data, field):
    with pytest.raises(SpecError, match=f"^config field '{field}': expected distinct {field}, got"):
        spec_from_mapping(study, data)
