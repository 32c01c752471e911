"""What fits the budget: the architectures within it, the candidates any of them uses, and the most
probable one (exact, by enumerating the space)."""
from __future__ import annotations

import itertools
import math
from typing import Mapping

import torch

from autonn_nas.models.search_space import BASE_CANDIDATE, CANDIDATES
from autonn_nas.search.arch import Architecture
from autonn_nas.search.cost.budget import Budget
from autonn_nas.search.cost.table import CostTable


def feasible_architectures(table: CostTable, budget: Budget) -> list[Architecture]:
    """Every architecture of the space within the budget, in enumeration order."""
    labels = table.labels
    result = []
    for names in itertools.product(CANDIDATES, repeat=len(labels)):
        arch = Architecture(zip(labels, names))
        if budget.allows(table.cost(arch)):
            result.append(arch)
    return result


def admissible_candidates(table: CostTable, budget: Budget) -> dict[str, list[str]]:
    """Per block, the candidates that appear in at least one architecture within the budget (in CANDIDATES
    order). The others can never be derived, so the strategies neither sample nor train them."""
    cheapest = {label: min(entries.values()) for label, entries in table.blocks.items()}
    floor = table.fixed + sum(cheapest.values())
    return {
        label: [name for name in CANDIDATES if budget.allows(floor - cheapest[label] + entries[name])]
        for label, entries in table.blocks.items()
    }


def admissible_mask(table: CostTable, budget: Budget, device: torch.device | str = "cpu") -> torch.Tensor:
    """(blocks, candidates) bool tensor of admissible_candidates."""
    allowed = admissible_candidates(table, budget)
    return torch.tensor([[name in allowed[label] for name in CANDIDATES] for label in table.labels], dtype=torch.bool, device=device)


_TIE = 1e-9  # log-probability difference below which two architectures are equally probable


def most_probable_within_budget(probabilities: Mapping[str, Mapping[str, float]], table: CostTable, budget: Budget) -> Architecture:
    """The architecture of highest probability (product over blocks; probabilities: label -> candidate ->
    probability) whose cost is within the budget, found exactly by enumerating the space (6^4 = 1296 for
    the P5 neck). Ties go to the architecture with more base candidates: equal evidence keeps the base."""
    best, best_key = None, (-math.inf, -1)
    for arch in feasible_architectures(table, budget):
        score = sum(math.log(max(float(probabilities[label][name]), 1e-300)) for label, name in arch.items())
        bases = sum(name == BASE_CANDIDATE for name in arch.values())
        if score > best_key[0] + _TIE or (abs(score - best_key[0]) <= _TIE and bases > best_key[1]):
            best, best_key = arch, (max(score, best_key[0]), bases)
    if best is None:  # resolve_budget guarantees the cheapest architecture fits
        raise ValueError(f"no architecture fits the budget {budget.limit:,.6g} {table.unit}")
    return best
