"""Paired differences over seeds: Student's t quantiles and the interval of the mean difference."""

from __future__ import annotations

import math

import pytest

from adamae_rl.ablation.paired import central_t_probability, mean_interval, paired_difference, t_quantile


@pytest.mark.parametrize(("df", "expected"), [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622),
                                              (29, 2.0452), (120, 1.9799)])
def test_t_quantile_matches_the_tables(df: int, expected: float) -> None:
    assert t_quantile(0.95, df) == pytest.approx(expected, abs=1e-4)


def test_t_probability_tends_to_the_normal() -> None:
    # P(|Z| <= 1.96) = 0.9500 for the normal; t with many degrees of freedom approaches it
    assert central_t_probability(1.959964, 2000) == pytest.approx(0.95, abs=2e-4)
    assert t_quantile(0.99, 5) == pytest.approx(4.0321, abs=1e-4)


def test_differences_are_paired_by_seed() -> None:
    # seed 2 is missing from the baseline: only seeds 0 and 1 pair up
    cell = {0: 52.0, 1: 55.0, 2: 90.0}
    base = {0: 50.0, 1: 50.0, 3: 10.0}
    d = paired_difference(cell, base)
    assert d.n == 2 and d.seeds == (0, 1)
    assert d.mean == pytest.approx(3.5)
    # differences 2 and 5: sd = 2.1213, se = 1.5, t(0.975, 1) = 12.706 -> half-width 19.06
    assert d.half_width == pytest.approx(12.7062 * 1.5, abs=1e-3)
    assert d.low == pytest.approx(3.5 - d.half_width) and d.high == pytest.approx(3.5 + d.half_width)


def test_pairing_removes_the_shared_seed_effect() -> None:
    # the seed moves both cells by the same amount: the paired interval is narrow, the unpaired wide
    base = {0: 40.0, 1: 60.0, 2: 50.0}
    cell = {0: 41.0, 1: 61.2, 2: 50.9}
    d = paired_difference(cell, base)
    assert d.mean == pytest.approx(1.0333, abs=1e-4)
    assert d.half_width < 1.0 < mean_interval(list(cell.values()))


def test_one_seed_leaves_the_interval_undefined() -> None:
    d = paired_difference({0: 3.0}, {0: 1.0})
    assert d.mean == 2.0 and d.n == 1 and d.half_width is None and d.low is None
    none = paired_difference({0: 3.0}, {1: 1.0})
    assert none.mean is None and none.n == 0
    assert paired_difference({0: math.nan, 1: 2.0}, {0: 1.0, 1: 1.0}).n == 1  # non-finite values do not pair
    assert mean_interval([1.0]) is None
