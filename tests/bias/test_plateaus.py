"""The plateau detector on synthetic curves with known plateaus, and on curves where it must find
none (steady exponential and power-law decay, a rank that moves inside every flat stretch, a curve
converged to round-off)."""

import math

import numpy as np
import pytest

from symlab.bias import detect_plateaus, is_saddle_to_saddle, rank_sequence


def _staircase(drop_times, levels, width=0.03, n=400, t_max=1e5):
    """log-time staircase: the loss sits at levels[i] between drops, and falls to levels[i+1] by
    a logistic step in log10 t of width ``width`` decades centred at drop_times[i]; the rank is
    i before the i-th drop's centre and i + 1 after it."""
    t = np.unique(np.round(np.geomspace(1, t_max, n)))
    log_loss = np.full_like(t, math.log(levels[0]), dtype=float)
    for i, centre in enumerate(drop_times):
        step = 1 / (1 + np.exp(-(np.log10(t) - math.log10(centre)) / width))
        log_loss += step * (math.log(levels[i + 1]) - math.log(levels[i]))
    ranks = np.searchsorted(np.asarray(drop_times, dtype=float), t, side="right")
    return t, np.exp(log_loss), ranks


def test_finds_the_known_plateaus_of_a_staircase():
    drops, levels = [1e2, 1e3, 1e4], [1.0, 0.1, 0.01, 1e-3]
    t, loss, ranks = _staircase(drops, levels)
    plateaus = detect_plateaus(t, loss, ranks)
    assert rank_sequence(plateaus) == [0, 1, 2, 3]
    assert is_saddle_to_saddle(plateaus, 3)  # 0, 1, 2 then one at the final rank
    for p, level in zip(plateaus, levels):
        assert p.loss == pytest.approx(level, rel=0.05)
    # the plateaus lie between the drops, each more than half a decade long but not across a drop
    bounds = [1.0, *drops, 1e5]
    for p, lo, hi in zip(plateaus, bounds[:-1], bounds[1:]):
        assert lo <= p.start < p.end <= hi
        assert p.decades > 0.5
        assert p.decades == pytest.approx(math.log10(p.end / p.start))


def test_merged_drops_give_fewer_plateaus():
    # the second and third drops only 0.05 decades apart: no rank-2 plateau between them
    t, loss, ranks = _staircase([1e2, 1e3, 1.12e3], [1.0, 0.1, 0.01, 1e-3])
    plateaus = detect_plateaus(t, loss, ranks)
    assert rank_sequence(plateaus) == [0, 1, 3]
    assert not is_saddle_to_saddle(plateaus, 3)


def test_finds_none_on_steady_decay():
    t = np.unique(np.round(np.geomspace(1, 1e4, 200)))
    lazy = np.exp(-0.08 * t) + 1e-30  # gradient descent in the kernel regime, lr = 1/(50 lambda)
    assert detect_plateaus(t, lazy, np.full(len(t), 40), floor=1e-20) == []
    power = 1.0 / t  # a tenfold drop per decade
    assert detect_plateaus(t, power, np.zeros(len(t), dtype=int)) == []


def test_a_rank_that_moves_breaks_a_flat_stretch():
    t = np.unique(np.round(np.geomspace(1, 1e4, 200)))
    flat = np.ones(len(t))
    rising = (np.log10(t) * 10).astype(int)  # the rank moves every 0.1 decade
    assert detect_plateaus(t, flat, rising) == []
    one = detect_plateaus(t, flat, np.zeros(len(t), dtype=int))
    assert len(one) == 1 and one[0].decades == pytest.approx(4.0) and one[0].rank == 0


def test_round_off_floor_and_minimum_length():
    t = np.unique(np.round(np.geomspace(1, 1e4, 200)))
    converged = np.maximum(np.exp(-0.5 * t), 1e-14)  # flat only at the float round-off floor
    ranks = np.full(len(t), 3)
    assert detect_plateaus(t, converged, ranks, floor=1e-12) == []
    assert len(detect_plateaus(t, converged, ranks)) == 1  # without the floor it is a plateau
    t2, loss, ranks2 = _staircase([1e2, 1e3], [1.0, 0.1, 0.01])
    short = detect_plateaus(t2, loss, ranks2, min_decades=0.9)
    assert rank_sequence(short) == [0, 2]  # the rank-1 plateau spans < 0.9 decade
    early = np.array([0, 0.5, 1, 2, 4, 8, 16, 32])
    assert detect_plateaus(early, np.ones(8), np.zeros(8), min_decades=1.0)[0].start == 1


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(times=[1, 2], losses=[1.0], ranks=[0, 0]), "losses"),
        (dict(times=[1, 2], losses=[1.0, 1.0], ranks=[0]), "ranks"),
        (dict(times=[2, 1], losses=[1.0, 1.0], ranks=[0, 0]), "times"),
        (dict(times=[1, 2], losses=[1.0, 1.0], ranks=[0, 0], flat_fraction=0.0), "flat_fraction"),
        (dict(times=[1, 2], losses=[1.0, 1.0], ranks=[0, 0], min_decades=-1.0), "min_decades"),
    ],
)
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}: expected"):
        detect_plateaus(**kwargs)
