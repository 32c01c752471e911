"""The rank correlations of benchmarks/rank_stats.py (the ranking-quality study), against hand-computed
values and published reference values (scipy's documented examples), ties included."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/ lives beside the package, not in it

from benchmarks.rank_stats import average_ranks, kendall_tau_b, spearman_rho, tau_null_sd  # noqa: E402


def test_identical_and_reversed_orders():
    x = [0.1, 0.4, 0.2, 0.9, 0.3]
    assert kendall_tau_b(x, x) == pytest.approx(1.0)
    assert spearman_rho(x, x) == pytest.approx(1.0)
    reversed_y = [-v for v in x]
    assert kendall_tau_b(x, reversed_y) == pytest.approx(-1.0)
    assert spearman_rho(x, reversed_y) == pytest.approx(-1.0)


def test_only_the_order_matters():
    x = [1, 2, 3, 4, 5]
    y = [10, 20, 30, 50, 40]
    assert kendall_tau_b(x, y) == pytest.approx(kendall_tau_b([v**3 for v in x], [v / 7 for v in y]))
    assert spearman_rho(x, y) == pytest.approx(spearman_rho([v**3 for v in x], [v / 7 for v in y]))


def test_without_ties_matches_the_textbook_formulas():
    x = [1, 2, 3, 4, 5, 6]
    y = [2, 1, 4, 3, 6, 5]  # three adjacent swaps: 3 discordant of 15 pairs
    assert kendall_tau_b(x, y) == pytest.approx((12 - 3) / 15)
    d2 = sum((a - b) ** 2 for a, b in zip(x, y))
    assert spearman_rho(x, y) == pytest.approx(1 - 6 * d2 / (6 * (36 - 1)))


def test_published_values_with_ties():
    # scipy.stats.kendalltau's documented example (tau-b with ties in both variables)
    assert kendall_tau_b([12, 2, 1, 12, 2], [1, 4, 7, 1, 0]) == pytest.approx(-0.47140452079103173)
    # scipy.stats.spearmanr's documented example (a tie in y)
    assert spearman_rho([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)


def test_tau_b_counts_ties_by_brute_force():
    x = [0.0, 0.0, 0.1, 0.3, 0.3, 0.2]
    y = [0.5, 0.4, 0.4, 0.9, 0.1, 0.2]
    concordant = discordant = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = (x[i] > x[j]) - (x[i] < x[j]), (y[i] > y[j]) - (y[i] < y[j])
        tx += sx == 0
        ty += sy == 0
        concordant += sx * sy > 0
        discordant += sx * sy < 0
    pairs = 15
    expected = (concordant - discordant) / ((pairs - tx) * (pairs - ty)) ** 0.5
    assert kendall_tau_b(x, y) == pytest.approx(expected)
    assert abs(kendall_tau_b(x, y)) < 1


def test_average_ranks_share_ties():
    assert average_ranks([5, 1, 5]) == [2.5, 1.0, 2.5]
    assert average_ranks([0.0, 0.0, 0.0, 1.0]) == [2.0, 2.0, 2.0, 4.0]


def test_undefined_cases_return_none():
    assert kendall_tau_b([0.0, 0.0, 0.0], [1, 2, 3]) is None  # one side constant: all mAPs exactly 0
    assert spearman_rho([0.0, 0.0, 0.0], [1, 2, 3]) is None
    assert kendall_tau_b([1], [2]) is None
    assert spearman_rho([1], [2]) is None
    with pytest.raises(ValueError):
        kendall_tau_b([1, 2], [1, 2, 3])


def test_tau_null_sd_matches_the_exact_distribution_for_small_n():
    # n = 4: tau over all 24 orders of y against a fixed x; its variance is the formula's square
    x = [0, 1, 2, 3]
    taus = [kendall_tau_b(x, list(order)) for order in itertools.permutations(range(4))]
    variance = sum(t * t for t in taus) / len(taus)  # the mean is 0 by symmetry
    assert tau_null_sd(4) == pytest.approx(variance**0.5)
    assert tau_null_sd(16) == pytest.approx(0.185, abs=0.001)
    assert tau_null_sd(1) is None
