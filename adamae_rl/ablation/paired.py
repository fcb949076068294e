"""Paired comparisons over seeds: a cell against a baseline cell, with a t-based confidence interval.

Two cells of an ablation trained with the same seed share their initialisation, data order and
evaluation clips, so their difference is measured with less noise than either figure alone:
the interval is built on the per-seed differences ``cell - baseline`` (a paired t interval with
``n - 1`` degrees of freedom), not on the two means separately. With a single paired seed there
is no spread to estimate, so the interval is undefined (``None``), never zero.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass


def central_t_probability(x: float, df: int) -> float:
    """``P(|T| <= x)`` for Student's t with ``df`` (integer >= 1) degrees of freedom.

    The closed forms for integer degrees of freedom (sums of powers of cos(atan(x / sqrt(df)))),
    so that no statistics library is needed.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if x <= 0:
        return 0.0
    theta = math.atan(x / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:  # sin(theta) * (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ... up to cos^(df-2))
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        return sin * total
    # odd: 2/pi * (theta + sin(theta) * (cos + 2/3 cos^3 + ... up to cos^(df-2)))
    total, term = 0.0, math.cos(theta)
    for k in range(1, (df - 1) // 2 + 1):
        total += term
        term *= cos2 * (2 * k) / (2 * k + 1)
    return 2 / math.pi * (theta + sin * total)


def t_quantile(confidence: float, df: int) -> float:
    """The two-sided critical value: ``x`` with ``P(|T| <= x) = confidence`` (e.g. 12.706 for 0.95, df 1)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    low, high = 0.0, 1.0
    while central_t_probability(high, df) < confidence:
        high *= 2
    for _ in range(200):  # bisection: the probability increases with x
        mid = (low + high) / 2
        if central_t_probability(mid, df) < confidence:
            low = mid
        else:
            high = mid
        if high - low < 1e-12:
            break
    return (low + high) / 2


@dataclass(frozen=True)
class PairedDifference:
    """``cell - baseline`` over the seeds both have.

    Attributes:
        mean: mean of the per-seed differences (None: no seed in common).
        half_width: half-width of the confidence interval (None with fewer than two seeds).
        n: number of paired seeds.
        seeds: the paired seeds, sorted.
        confidence: the interval's confidence level.
    """

    mean: float | None
    half_width: float | None
    n: int
    seeds: tuple[int, ...]
    confidence: float = 0.95

    @property
    def low(self) -> float | None:
        return None if self.mean is None or self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.mean is None or self.half_width is None else self.mean + self.half_width


def paired_difference(cell: Mapping[int, float], baseline: Mapping[int, float], confidence: float = 0.95) -> PairedDifference:
    """Mean of ``cell[s] - baseline[s]`` over the seeds ``s`` in both, with its t interval.

    Args:
        cell, baseline: seed -> value (non-finite values are left out).
        confidence: level of the interval (two-sided).
    """
    seeds = tuple(sorted(s for s in cell if s in baseline and _finite(cell[s]) and _finite(baseline[s])))
    diffs = [float(cell[s]) - float(baseline[s]) for s in seeds]
    if not diffs:
        return PairedDifference(None, None, 0, (), confidence)
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return PairedDifference(mean, None, 1, seeds, confidence)
    half = t_quantile(confidence, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return PairedDifference(mean, half, len(diffs), seeds, confidence)


def mean_interval(values: list[float], confidence: float = 0.95) -> float | None:
    """Half-width of the t interval of the mean of ``values`` (None with fewer than two)."""
    if len(values) < 2:
        return None
    return t_quantile(confidence, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def _finite(value: object) -> bool:
    return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]
