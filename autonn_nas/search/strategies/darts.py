"""DARTS-style search: every block runs the softmax-weighted sum of its admissible candidates.

Weight steps train the mixture with the logits frozen (detached). Architecture steps do not follow the
first-order gradient of the mixture's held-out loss: measured on a trained toy supernet with one
candidate's output replaced by noise (tests/test_search_decides.py), that gradient raised the noise
candidate's probability above every other with BatchNorm on running statistics (0.21-0.23 against
0.13-0.16) and ranked the teacher's own candidate last in two of four blocks with batch statistics: a
mixture can lower its loss by rescaling, which a deployed discrete network cannot do. They compare the
held-out losses of discrete paths instead (base.path_comparison_gradient), so the logits say which
candidate works on its own, which is what the derived network runs. Memory and time of the weight steps
grow with the number of candidates in the neck; the benchmark reports how much.
"""
from __future__ import annotations

import torch

from autonn_nas.search.strategies.base import SearchStrategy
from autonn_nas.search.strategies.registry import register_strategy


@register_strategy
class DartsStrategy(SearchStrategy):
    name = "darts"
    has_arch_weights = True

    def _set_mixture(self, probabilities: torch.Tensor) -> None:
        for row, block in enumerate(self.blocks.values()):
            block.gate = None
            block.mixture = probabilities[row]

    def prepare_weight_step(self) -> None:
        self._set_mixture(self.masked_softmax(self.alpha.detach()))

    def _arch_gradient(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        return self.path_comparison_gradient(images, targets)

    def prepare_memory_probe(self) -> None:
        self.prepare_weight_step()  # the mixture runs every admissible candidate
