"""The leap against brute force over all orderings (and a DP over subsets), classic examples."""

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symlab.boolean import WalshExpansion, is_merged_staircase, leap, walsh_transform


def _pairs(support):
    """A support as {coordinate: multiplicity} (a set has every multiplicity 1)."""
    return dict(support) if isinstance(support, dict) else dict.fromkeys(support, 1)


def _new(support, covered):
    return sum(k for c, k in _pairs(support).items() if c not in covered)


def _cost(ordering):
    covered, worst = set(), 0
    for support in ordering:
        worst = max(worst, _new(support, covered))
        covered |= set(_pairs(support))
    return worst


def _brute_force(supports):
    """min over all m! orderings of the largest number of new coordinates."""
    return min(_cost(order) for order in itertools.permutations(supports))


def _subset_dp(supports):
    """best[A] = min over the last support S of A of max(best[A − S], new(S, ∪(A − S)))."""
    m = len(supports)
    union = [
        set().union(*(_pairs(supports[i]) for i in range(m) if a >> i & 1)) for a in range(1 << m)
    ]
    best = [0] + [None] * ((1 << m) - 1)
    for a in range(1, 1 << m):
        best[a] = min(
            max(best[a ^ (1 << i)], _new(supports[i], union[a ^ (1 << i)]))
            for i in range(m)
            if a >> i & 1
        )
    return best[-1]


def _distinct(supports):
    seen = []
    for s in supports:
        if s not in seen:
            seen.append(s)
    return seen


boolean_supports = st.lists(st.frozensets(st.integers(1, 6), max_size=4), min_size=1, max_size=7)
gaussian_supports = st.lists(
    st.dictionaries(st.integers(1, 5), st.integers(1, 3), max_size=3), min_size=1, max_size=7
)


def _check(supports):
    result = leap(supports)
    distinct = _distinct(supports)
    assert result.leap == _brute_force(distinct) == _subset_dp(distinct)
    key = lambda s: sorted(_pairs(s).items())  # noqa: E731
    assert sorted(map(key, result.ordering)) == sorted(map(key, distinct))
    assert _cost(result.ordering) == result.leap == max(result.new_coordinates)
    covered = set()
    for support, count in zip(result.ordering, result.new_coordinates):
        assert count == _new(support, covered)
        covered |= set(_pairs(support))
    assert result.merged_staircase == (result.leap <= 1) == is_merged_staircase(supports)
    shuffled = list(supports)
    random.Random(len(supports)).shuffle(shuffled)
    assert leap(shuffled) == result  # the ordering is canonical: independent of the input order
    return result


@settings(max_examples=60, deadline=None)
@given(boolean_supports)
def test_boolean_leap_is_the_brute_force_minimum_over_orderings(supports):
    assert not _check(supports).gaussian


@settings(max_examples=60, deadline=None)
@given(gaussian_supports)
def test_gaussian_leap_counts_new_coordinates_with_multiplicity(supports):
    assert _check(supports).gaussian


@pytest.mark.parametrize(
    ("supports", "expected"),
    [
        ([[1], [1, 2], [1, 2, 3]], 1),
        ([[1], [1, 2], [1, 2, 3], [1, 2, 3, 4]], 1),
        ([[1], [1, 2, 3]], 2),
        ([[1, 2], [2, 3], [3, 4]], 2),
        ([[1, 2, 3]], 3),
        ([[1], [2], [1, 2, 3]], 1),
        ([[1, 2, 3], [2], [1]], 1),
        ([[]], 0),
        ([{1: 3}], 3),
        ([{1: 2}, {1: 1, 2: 1}], 2),
        ([{1: 1, 2: 1}, {1: 1, 2: 1, 3: 1, 4: 1}], 2),
        ([{1: 1}, {1: 1, 2: 2}], 2),
        ([{1: 1}, {1: 2}, {1: 1, 2: 1}], 1),
    ],
)
def test_classic_examples(supports, expected):
    result = leap(supports)
    assert result.leap == expected
    assert result.merged_staircase == (expected <= 1) == is_merged_staircase(supports)


def test_ordering_and_other_inputs():
    result = leap([[1, 2, 3], [2], [1]])
    assert result.ordering == (frozenset({1}), frozenset({2}), frozenset({1, 2, 3}))
    assert result.new_coordinates == (1, 1, 1)
    assert leap([[1], [1], [1, 2]]).ordering == (frozenset({1}), frozenset({1, 2}))
    assert leap(WalshExpansion.staircase(5)).leap == 1
    assert leap(walsh_transform(lambda x: x[:, 0] * x[:, 1] + x[:, 3], 4)).leap == 2
    gaussian = leap([{2: 1, 1: 2}, {1: 1}])
    assert gaussian.ordering == ({1: 1}, {1: 2, 2: 1}) and gaussian.new_coordinates == (1, 1)


@pytest.mark.parametrize(
    ("supports", "message"),
    [
        ([], "^supports: expected at least one support"),
        ([[0, 1]], "^supports: expected 1-based integer coordinates"),
        ([[1, 1]], "^supports: expected distinct coordinates"),
        ([[1], {2: 1}], "^supports: expected all sets of coordinates .* got a mix"),
        ([3], "^supports: expected each support to be a set of coordinates, got 3"),
        (["12"], "^supports: expected each support to be a set"),
        ([{1: 0}], "^supports: expected 1-based coordinates with degrees >= 1"),
        (5, "^supports: expected a list of supports"),
    ],
)
def test_bad_input_is_one_sentence(supports, message):
    with pytest.raises(ValueError, match=message) as info:
        leap(supports)
    assert "\n" not in str(info.value)
