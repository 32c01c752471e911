"""What fits the budget: the architectures within it, the candidates any of them uses, and the most
probable one.

The cost is additive over blocks, so nothing here enumerates the space (36^4 = 1.7M architectures in the
extended space at depth 1.0):
- the most probable architecture within the budget is a dynamic programme over the blocks that keeps,
  for each partial cost, only the best partial choice (its Pareto front of cost against log-probability);
- the architectures within the budget are counted, indexed and drawn uniformly by meeting in the middle:
  the first half of the blocks' choices against the second half's, sorted by cost.
"""
from __future__ import annotations

import bisect
import itertools
import math
import random
from typing import Iterator, Mapping, Sequence

import torch

from autonn_nas.models.search_space import BASE_CANDIDATE
from autonn_nas.search.arch import Architecture
from autonn_nas.search.cost.budget import Budget
from autonn_nas.search.cost.table import TOLERANCE, CostTable

LOG_SCALE = 2 ** 32  # log-probabilities are compared as integers in these units: sums are exact, so ties are ties
LOG_FLOOR = 1e-300  # probability 0 (a masked candidate) counts as this, so such an architecture is still ranked


class FeasibleSet(Sequence[Architecture]):
    """The architectures within the budget, in the space's enumeration order (the product order of the
    candidates, block by block), as a read-only sequence that is never listed: len(), [k], `draw(rng)`,
    membership (by cost), iteration."""

    def __init__(self, table: CostTable, budget: Budget):
        self.table, self.budget = table, budget
        labels, names = table.labels, table.space.names
        self.labels, self.names = labels, names
        self.split = len(labels) // 2
        left_labels, right_labels = labels[: self.split], labels[self.split:]
        self._left = [(sum(table.blocks[label][names[c]] for label, c in zip(left_labels, combo)), combo)
                      for combo in itertools.product(range(len(names)), repeat=len(left_labels))]
        right = [(sum(table.blocks[label][names[c]] for label, c in zip(right_labels, combo)), combo)
                 for combo in itertools.product(range(len(names)), repeat=len(right_labels))]
        right.sort()
        self._right_costs = [cost for cost, _ in right]
        self._right_combos = [combo for _, combo in right]
        # the most any architecture may cost, with the slack Budget.allows gives float sums of the same entries
        self._room = budget.limit * (1 + TOLERANCE) + TOLERANCE - table.fixed
        self._counts = [self._fitting(left_cost) for left_cost, _ in self._left]
        self._in_order: dict[int, tuple[tuple[int, ...], ...]] = {}
        self._offsets = list(itertools.accumulate(self._counts, initial=0))

    def _fitting(self, left_cost: float) -> int:
        """How many second halves fit with a first half of this cost."""
        return bisect.bisect_right(self._right_costs, self._room - left_cost)

    def _rights_in_order(self, count: int) -> tuple[tuple[int, ...], ...]:
        """The `count` cheapest second halves, in enumeration order."""
        if count not in self._in_order:
            self._in_order[count] = tuple(sorted(self._right_combos[:count]))
        return self._in_order[count]

    def __len__(self) -> int:
        return self._offsets[-1]

    def _arch(self, indices: tuple[int, ...]) -> Architecture:
        return Architecture({label: self.names[c] for label, c in zip(self.labels, indices)})

    def __getitem__(self, k: int) -> Architecture:  # type: ignore[override]  # no slices
        """The k-th architecture within the budget, in enumeration order."""
        if not isinstance(k, int):
            raise TypeError(f"a FeasibleSet is indexed by integers, not {type(k).__name__}")
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"architecture {k} of {len(self)} within the budget")
        i = bisect.bisect_right(self._offsets, k) - 1
        return self._arch(self._left[i][1] + self._rights_in_order(self._counts[i])[k - self._offsets[i]])

    def draw(self, rng: random.Random) -> Architecture:
        """One architecture drawn uniformly from those within the budget."""
        return self[rng.randrange(len(self))]

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, Mapping) and self.budget.allows(self.table.cost(arch))

    def __iter__(self) -> Iterator[Architecture]:
        for i, (_, left) in enumerate(self._left):
            for right in self._rights_in_order(self._counts[i]):
                yield self._arch(left + right)


def feasible_architectures(table: CostTable, budget: Budget) -> FeasibleSet:
    """Every architecture of the space within the budget (a FeasibleSet: counted and indexed, not listed)."""
    return FeasibleSet(table, budget)


def admissible_candidates(table: CostTable, budget: Budget) -> dict[str, list[str]]:
    """Per block, the candidates that appear in at least one architecture within the budget (in the space's
    order). The others can never be derived, so the strategies neither sample nor train them."""
    cheapest = {label: min(entries.values()) for label, entries in table.blocks.items()}
    floor = table.fixed + sum(cheapest.values())
    return {
        label: [name for name in table.space.names if budget.allows(floor - cheapest[label] + entries[name])]
        for label, entries in table.blocks.items()
    }


def admissible_mask(table: CostTable, budget: Budget, device: torch.device | str = "cpu") -> torch.Tensor:
    """(blocks, candidates) bool tensor of admissible_candidates."""
    allowed = admissible_candidates(table, budget)
    return torch.tensor([[name in allowed[label] for name in table.space.names] for label in table.labels], dtype=torch.bool, device=device)


def _log_units(probability: float) -> int:
    return round(math.log(max(float(probability), LOG_FLOOR)) * LOG_SCALE)


def most_probable_within_budget(probabilities: Mapping[str, Mapping[str, float]], table: CostTable, budget: Budget) -> Architecture:
    """The architecture of highest probability (product over blocks; probabilities: label -> candidate ->
    probability) whose cost is within the budget. Ties go to the architecture with more base candidates
    (equal evidence keeps the base), then to the first in enumeration order.

    Exact, by a dynamic programme over the blocks: a partial choice (the first j blocks) is ranked by
    (log-probability, base candidates, earlier in enumeration order), all of which add up over blocks, so a
    partial choice that costs no less than another and ranks no higher can never complete to the answer;
    only the Pareto front of partial cost against rank is carried to the next block, and partial choices
    that even the cheapest completion would take over the budget are dropped."""
    labels, names = table.labels, table.space.names
    room = budget.limit * (1 + TOLERANCE) + TOLERANCE - table.fixed
    cheapest_rest = [sum(min(table.blocks[label].values()) for label in labels[j:]) for j in range(len(labels) + 1)]
    # a partial choice: (cost so far, log units, base count, candidate indices)
    front: list[tuple[float, int, int, tuple[int, ...]]] = [(0.0, 0, 0, ())]
    for j, label in enumerate(labels):
        entries, probs = table.blocks[label], probabilities[label]
        grown = []
        for cost, logp, bases, indices in front:
            for c, name in enumerate(names):
                total = cost + entries[name]
                if total + cheapest_rest[j + 1] <= room * (1 + 1e-12) + 1e-12:  # a hair of slack: the exact check is below
                    grown.append((total, logp + _log_units(probs[name]), bases + (name == BASE_CANDIDATE), indices + (c,)))
        front = _pareto(grown)
    best = None
    for cost, logp, bases, indices in front:
        arch = Architecture({label: names[c] for label, c in zip(labels, indices)})
        if budget.allows(table.cost(arch)):
            key = (logp, bases, tuple(-c for c in indices))
            if best is None or key > best[0]:
                best = (key, arch)
    if best is None:  # resolve_budget guarantees the cheapest architecture fits
        raise ValueError(f"no architecture fits the budget {budget.limit:,.6g} {table.unit}")
    return best[1]


def _pareto(choices: list[tuple[float, int, int, tuple[int, ...]]]) -> list[tuple[float, int, int, tuple[int, ...]]]:
    """The partial choices no other one beats in both cost (lower or equal) and rank (higher), cheapest first."""
    rank = lambda choice: (choice[1], choice[2], tuple(-c for c in choice[3]))  # noqa: E731
    front, best_rank = [], None
    for choice in sorted(sorted(choices, key=rank, reverse=True), key=lambda choice: choice[0]):  # equal cost: best rank first
        if best_rank is None or rank(choice) > best_rank:
            front.append(choice)
            best_rank = rank(choice)
    return front
