"""Search the space of architectures with a score function, under the cost budget.

When the evaluation budget covers every architecture that fits the cost budget, all of them are
scored (exhaustive: with 6^4 = 1296 architectures, and 3^4 = 81 under a FLOPs/params budget equal to the
base model, this is often affordable). Otherwise an evolutionary search: a random feasible population,
then children by mutation and crossover of the best half so far (steady state: each child joins the
pool at once), every child feasible and new.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from autonn_nas.models.search_space import CANDIDATES
from autonn_nas.search.arch import Architecture
from autonn_nas.search.cost import Budget, CostTable, feasible_architectures

MUTATION_PROBABILITY = 0.25  # per block
MAX_TRIES = 50  # attempts to breed a new feasible child before drawing a fresh random one


@dataclass
class Evaluated:
    arch: Architecture
    key: tuple  # sort key, higher is better
    cost: float
    details: dict[str, Any] = field(default_factory=dict)
    generation: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": self.arch.to_dict(), "cost": self.cost, "generation": self.generation, **self.details}


ScoreFn = Callable[[Architecture], tuple[tuple, dict[str, Any]]]


def _mutate(parent: Architecture, rng: random.Random) -> Architecture:
    choices = dict(parent)
    labels = list(choices)
    changed = False
    for label in labels:
        if rng.random() < MUTATION_PROBABILITY:
            choices[label] = rng.choice([c for c in CANDIDATES if c != choices[label]])
            changed = True
    if not changed:  # a mutation that changes nothing would only waste a try
        label = rng.choice(labels)
        choices[label] = rng.choice([c for c in CANDIDATES if c != choices[label]])
    return Architecture(choices)


def _crossover(a: Architecture, b: Architecture, rng: random.Random) -> Architecture:
    return Architecture({label: (a if rng.random() < 0.5 else b)[label] for label in a})


def search(
    table: CostTable,
    budget: Budget,
    score: ScoreFn,
    max_evaluations: int,
    rng: random.Random,
    population: int | None = None,
    on_generation: Callable[[int, list[Evaluated]], None] | None = None,
) -> tuple[list[Evaluated], str]:
    """Score architectures within the budget; returns (every evaluated one, best first) and the mode
    ('exhaustive' or 'evolution')."""
    if max_evaluations < 1:
        raise ValueError(f"the number of architectures to evaluate must be at least 1, got {max_evaluations}")
    feasible = feasible_architectures(table, budget)
    feasible_set = set(feasible)
    done: dict[Architecture, Evaluated] = {}

    def evaluate(arch: Architecture, generation: int) -> None:
        key, details = score(arch)
        done[arch] = Evaluated(arch, key, table.cost(arch), details, generation)

    def ranked() -> list[Evaluated]:
        return sorted(done.values(), key=lambda e: e.key, reverse=True)

    if len(feasible) <= max_evaluations:
        for arch in feasible:
            evaluate(arch, 0)
        if on_generation:
            on_generation(0, ranked())
        return ranked(), "exhaustive"

    size = population or max(4, min(16, max_evaluations // 4))
    for arch in rng.sample(feasible, min(size, max_evaluations)):
        evaluate(arch, 0)
    generation = 0
    if on_generation:
        on_generation(generation, ranked())
    while len(done) < max_evaluations:
        generation += 1
        for _ in range(size):
            if len(done) >= max_evaluations:
                break
            parents: Sequence[Evaluated] = ranked()[: max(2, size // 2)]  # steady state: a good child breeds at once
            child = None
            for _ in range(MAX_TRIES):
                if rng.random() < 0.5 or len(parents) < 2:
                    candidate = _mutate(rng.choice(parents).arch, rng)
                else:
                    a, b = rng.sample(list(parents), 2)
                    candidate = _crossover(a.arch, b.arch, rng)
                if candidate in feasible_set and candidate not in done:
                    child = candidate
                    break
            if child is None:
                unseen = [arch for arch in feasible if arch not in done]
                child = rng.choice(unseen)
            evaluate(child, generation)
        if on_generation:
            on_generation(generation, ranked())
    return ranked(), "evolution"
