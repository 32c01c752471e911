"""DARTS-style search, first order: every block runs the softmax-weighted sum of all six candidates.

Weight steps use the mixture with the logits frozen (detached); architecture steps differentiate the
held-out loss (plus the expected cost term) with respect to the logits only. Memory and time grow with
the number of candidates in the neck; the benchmark reports how much.
"""
from __future__ import annotations

import torch

from autonn_nas.search.strategies.base import SearchStrategy


class DartsStrategy(SearchStrategy):
    name = "darts"
    has_arch_weights = True

    def _set_mixture(self, probabilities: torch.Tensor) -> None:
        for row, block in enumerate(self.blocks.values()):
            block.gate = None
            block.mixture = probabilities[row]

    def prepare_weight_step(self) -> None:
        self._set_mixture(torch.softmax(self.alpha.detach(), dim=-1))

    def _prepare_arch_step(self, probabilities: torch.Tensor) -> None:
        self._set_mixture(probabilities)

    def prepare_memory_probe(self) -> None:
        self.prepare_weight_step()  # the mixture runs every candidate
