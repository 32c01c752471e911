"""Rank correlations for the ranking-quality study: Kendall's tau-b and Spearman's rho, with ties.

Small and dependency-free on purpose: scipy is not a dependency of autonn-nas, and these two are a few
lines each. Both return None when a correlation is undefined (fewer than two items, or one side constant),
which happens for real here: near-zero mAPs after a short CPU training are often exactly equal.
"""
from __future__ import annotations

import math
from typing import Sequence


def _check(x: Sequence[float], y: Sequence[float]) -> None:
    if len(x) != len(y):
        raise ValueError(f"the two rankings score different numbers of items: {len(x)} and {len(y)}")


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b: (concordant - discordant) / sqrt((pairs - ties in x) * (pairs - ties in y)).
    A pair tied in x or in y is neither concordant nor discordant (the tau-b convention, as scipy's default)."""
    _check(x, y)
    concordant = discordant = ties_x = ties_y = 0
    n = len(x)
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0:
                ties_x += 1
            if dy == 0:
                ties_y += 1
            if dx == 0 or dy == 0:
                continue
            if (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - ties_x) * (pairs - ties_y))
    if denominator == 0:
        return None
    return (concordant - discordant) / denominator


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, tied values sharing the mean of the ranks they span (e.g. [5, 1, 5] -> [2.5, 1, 2.5])."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: the Pearson correlation of the average ranks (exact with ties)."""
    _check(x, y)
    if len(x) < 2:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    mean = (len(x) + 1) / 2  # the mean of average ranks is always this
    cov = sum((a - mean) * (b - mean) for a, b in zip(rx, ry))
    var_x = sum((a - mean) ** 2 for a in rx)
    var_y = sum((b - mean) ** 2 for b in ry)
    if var_x == 0 or var_y == 0:
        return None
    return cov / math.sqrt(var_x * var_y)


def tau_null_sd(n: int) -> float | None:
    """Standard deviation of Kendall's tau over n items when the two rankings are independent (no ties):
    sqrt(2 (2n + 5) / (9 n (n - 1))). About 1.96 of these is the 5 % two-sided chance threshold."""
    if n < 2:
        return None
    return math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))
