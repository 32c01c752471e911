"""Single-path one-shot (SPOS): the supernet is trained on paths within the budget, then architectures
within the budget are scored on the held-out data, each after batch-norm recalibration (exhaustive
when the evaluation budget allows, else evolutionary; see search/evolution.py).

Training paths follow FairNAS's strict fairness: in each group of steps every admissible candidate of
every block runs once (a block with fewer admissible candidates repeats random ones), so no candidate
falls behind by chance; a group's path that the budget does not allow is replaced by an architecture
drawn uniformly from those it allows. Candidates that no architecture within the budget can use are
never trained.
"""
from __future__ import annotations

import random
from typing import Any

import torch

from autonn_nas.search import evolution
from autonn_nas.search.arch import Architecture
from autonn_nas.search.cost import Budget, feasible_architectures
from autonn_nas.search.strategies.base import Scorer, SearchStrategy
from autonn_nas.search.strategies.registry import register_strategy


@register_strategy
class SposStrategy(SearchStrategy):
    name = "spos"
    has_arch_weights = False
    derives_on_every_rank = True  # every rank scores its share of the candidates

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.feasible = feasible_architectures(self.cost, self.budget)
        self.pending: list[list[int]] = []  # the rest of the current fair group
        self.evaluated: list[evolution.Evaluated] = []
        self.search_mode = ""

    def _draw(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.generator))

    def fair_group(self) -> list[list[int]]:
        columns = []
        size = max(len(names) for names in self.allowed.values())
        for label in self.labels:
            indices = [self.names.index(name) for name in self.allowed[label]]
            column = [indices[i] for i in torch.randperm(len(indices), generator=self.generator).tolist()]
            column += [indices[self._draw(len(indices))] for _ in range(size - len(column))]
            columns.append(column)
        group = []
        for k in range(size):
            path = [column[k] for column in columns]
            arch = Architecture({label: self.names[i] for label, i in zip(self.labels, path)})
            if not self.budget.allows(self.cost.cost(arch)):
                drawn = self.feasible[self._draw(len(self.feasible))]
                path = [self.names.index(drawn[label]) for label in self.labels]
            group.append(path)
        return group

    def prepare_weight_step(self) -> None:
        if not self.pending:
            self.pending = self.fair_group()
        self.set_path(self.pending.pop(0))

    def _arch_gradient(self, images: torch.Tensor, targets: torch.Tensor):  # pragma: no cover - no arch steps
        raise RuntimeError("spos takes no architecture steps during supernet training")

    def derive(self, scorer: Scorer | None = None) -> Architecture:
        if scorer is None:
            raise ValueError("spos needs a scorer (held-out score_many) to search the trained supernet")
        self.evaluated, self.search_mode = evolution.search(
            self.cost, self.budget, scorer.score_many, scorer.max_evaluations, random.Random(scorer.seed),
            on_generation=scorer.on_generation,
        )
        return self.evaluated[0].arch

    def scored(self) -> dict[Architecture, float] | None:
        return {e.arch: float(e.details["loss"]) for e in self.evaluated if "loss" in e.details} or None

    def derive_within(self, budget: Budget) -> Architecture | None:
        """The best scored architecture within `budget` (None when none of them fits it)."""
        return next((e.arch for e in self.evaluated if budget.allows(e.cost)), None)

    def write_artifacts(self, out: Any, context: dict[str, Any]) -> dict[str, Any]:
        from autonn_nas.utils.files import atomic_write_json

        # spos has no probabilities to chart: its scores against their cost are the search's pareto.png
        evaluated = [e.to_dict() for e in self.evaluated]
        atomic_write_json(out / "spos_evaluated.json", evaluated)
        return {"report": {"mode": self.search_mode, "evaluated": len(evaluated),
                           "score": "held-out loss per image after BN recalibration (lower is better)", "top": evaluated[:10]}}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pending": [list(path) for path in self.pending]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pending = [list(path) for path in state.get("pending", [])]
