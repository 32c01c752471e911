"""Search the space of architectures with a score function, under the cost budget.

When the evaluation budget covers every architecture that fits the cost budget, all of them are
scored (exhaustive: with the seed's 6^4 = 1296 architectures, and 3^4 = 81 under a FLOPs/params budget
equal to the base model, this is often affordable). Otherwise an evolutionary search: a random feasible
population, then generations of children by mutation and crossover of the best half scored before the
generation, every child feasible and new. The feasible architectures are counted and drawn without being
listed (cost.FeasibleSet), so the extended space's millions cost nothing.

Scores come a batch at a time (score_many: the whole population, then one generation), so the
candidates of a batch can be scored side by side (under torchrun every rank scores its share, see
final.Evaluator.score_many) while the search itself, which only sees the scores, is the same for any
number of ranks. A steady-state search (each child breeds as soon as it is scored) would be a little
greedier but is sequential by nature: the next child depends on the last score.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from autonn_nas.search.arch import Architecture, base_architecture
from autonn_nas.search.cost import Budget, CostTable, FeasibleSet, feasible_architectures

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


Score = tuple[tuple, dict[str, Any]]  # (sort key, higher is better; details for the report)
ScoreManyFn = Callable[[list[Architecture]], list[Score]]  # the scores of a batch, in its order


def _mutate(parent: Architecture, names: Sequence[str], rng: random.Random) -> Architecture:
    choices = dict(parent)
    labels = list(choices)
    changed = False
    for label in labels:
        if rng.random() < MUTATION_PROBABILITY:
            choices[label] = rng.choice([c for c in names if c != choices[label]])
            changed = True
    if not changed:  # a mutation that changes nothing would only waste a try
        label = rng.choice(labels)
        choices[label] = rng.choice([c for c in names if c != choices[label]])
    return Architecture(choices)


def _crossover(a: Architecture, b: Architecture, rng: random.Random) -> Architecture:
    return Architecture({label: (a if rng.random() < 0.5 else b)[label] for label in a})


def search(
    table: CostTable,
    budget: Budget,
    score_many: ScoreManyFn,
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
    done: dict[Architecture, Evaluated] = {}

    def evaluate(batch: list[Architecture], generation: int) -> None:
        scores = score_many(batch)
        if len(scores) != len(batch):
            raise RuntimeError(f"score_many returned {len(scores)} scores for {len(batch)} architectures")
        for arch, (key, details) in zip(batch, scores):
            done[arch] = Evaluated(arch, key, table.cost(arch), details, generation)

    def ranked() -> list[Evaluated]:
        return sorted(done.values(), key=lambda e: e.key, reverse=True)

    if len(feasible) <= max_evaluations:
        evaluate(list(feasible), 0)
        if on_generation:
            on_generation(0, ranked())
        return ranked(), "exhaustive"

    size = population or max(4, min(16, max_evaluations // 4))
    # the base architecture is always scored: it is what the search ships unless something beats it
    base = base_architecture(table.labels)
    first = [base] if base in feasible else []
    wanted = min(size, max_evaluations) - len(first)
    drawn = (feasible[k] for k in rng.sample(range(len(feasible)), wanted + 1))  # one spare, in case it is the base
    first += [arch for arch in drawn if arch != base][:wanted]
    evaluate(first, 0)
    generation = 0
    if on_generation:
        on_generation(generation, ranked())
    while len(done) < max_evaluations:
        generation += 1
        parents: Sequence[Evaluated] = ranked()[: max(2, size // 2)]
        children: list[Architecture] = []
        for _ in range(min(size, max_evaluations - len(done))):
            children.append(_breed(parents, feasible, lambda arch: arch in done or arch in children, rng))
        evaluate(children, generation)
        if on_generation:
            on_generation(generation, ranked())
    return ranked(), "evolution"


def _breed(parents: Sequence[Evaluated], feasible: FeasibleSet, taken: Callable[[Architecture], bool],
           rng: random.Random) -> Architecture:
    """A feasible child not `taken` (scored, or already in this generation), bred from `parents`, else drawn at
    random (the search only gets here while fewer architectures are taken than fit the budget)."""
    for _ in range(MAX_TRIES):
        if rng.random() < 0.5 or len(parents) < 2:
            candidate = _mutate(rng.choice(parents).arch, feasible.names, rng)
        else:
            a, b = rng.sample(list(parents), 2)
            candidate = _crossover(a.arch, b.arch, rng)
        if candidate in feasible and not taken(candidate):
            return candidate
    for _ in range(MAX_TRIES):
        candidate = feasible.draw(rng)
        if not taken(candidate):
            return candidate
    return next(arch for arch in feasible if not taken(arch))
