"""Single-path one-shot (SPOS): the supernet is trained with a uniformly sampled path per step, then
architectures within the budget are scored on the held-out data, each after batch-norm recalibration
(exhaustive when the evaluation budget allows, else evolutionary; see search/evolution.py)."""
from __future__ import annotations

import random
from typing import Any, Callable

import torch

from autonn_nas.models.search_space import CANDIDATES
from autonn_nas.search import evolution
from autonn_nas.search.arch import Architecture
from autonn_nas.search.strategies.base import SearchStrategy


class SposStrategy(SearchStrategy):
    name = "spos"
    has_arch_weights = False

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.uniform = torch.full((len(self.labels), len(CANDIDATES)), 1.0 / len(CANDIDATES))
        self.evaluated: list[evolution.Evaluated] = []
        self.search_mode = ""

    def prepare_weight_step(self) -> None:
        self.set_path(self.sample(self.uniform))

    def _prepare_arch_step(self, probabilities: torch.Tensor) -> None:  # pragma: no cover - no arch steps
        raise RuntimeError("spos takes no architecture steps during supernet training")

    def derive(self, score_many: evolution.ScoreManyFn | None = None, max_evaluations: int = 100, seed: int = 0,
               on_generation: Callable[[int, list[evolution.Evaluated]], None] | None = None, **_unused: Any) -> Architecture:
        if score_many is None:
            raise ValueError("spos needs a score function (score_many) to search the trained supernet")
        self.evaluated, self.search_mode = evolution.search(
            self.cost, self.budget, score_many, max_evaluations, random.Random(seed), on_generation=on_generation
        )
        return self.evaluated[0].arch
