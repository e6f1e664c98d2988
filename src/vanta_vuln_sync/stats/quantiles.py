"""Quantiles and means as the statistics define them (numpy's defaults, without numpy)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-quantile of ascending `sorted_values` by linear interpolation between closest ranks.

    Identical to `numpy.quantile(values, q)` (method "linear"), including numpy's two-sided lerp that
    keeps the result inside the bracketing values. None for no values.
    """
    n = len(sorted_values)
    if n == 0:
        return None
    position = (n - 1) * q
    below = math.floor(position)
    above = min(below + 1, n - 1)
    fraction = position - below
    low, high = sorted_values[below], sorted_values[above]
    diff = high - low
    # numpy's _lerp: interpolate from the nearer end so the result stays monotone and within [low, high].
    if fraction >= 0.5:
        return high - diff * (1 - fraction)
    return low + diff * fraction


def rounded(value: float | None, digits: int = 2) -> float | None:
    """`value` rounded for stats.json; None stays None."""
    return None if value is None else round(value, digits)


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean, summed exactly (fsum) so the order of the records cannot change it."""
    if not values:
        return None
    return math.fsum(values) / len(values)
