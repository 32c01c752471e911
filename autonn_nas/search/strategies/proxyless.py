"""ProxylessNAS-style search: one sampled candidate per block per step (memory of one network).

Weight steps run a path drawn from the current probabilities. Architecture steps draw a path too and
multiply each block's output by a binary gate whose value is 1 but whose gradient reaches the logits
straight through: gate = 1 + p_j - stop_gradient(p_j) for the sampled candidate j. The logits thus
get dL/dgate_j * dp_j/dalpha, the one-path form of ProxylessNAS's binary-gate estimator, plus the
gradient of the expected cost term.
"""
from __future__ import annotations

import torch

from autonn_nas.search.strategies.base import SearchStrategy


class ProxylessStrategy(SearchStrategy):
    name = "proxyless"
    has_arch_weights = True

    def prepare_weight_step(self) -> None:
        self.set_path(self.sample(self.probabilities()))

    def _prepare_arch_step(self, probabilities: torch.Tensor) -> None:
        indices = self.sample(probabilities)
        self.set_path(indices)
        for row, (block, index) in enumerate(zip(self.blocks.values(), indices)):
            p = probabilities[row, index]
            block.gate = 1.0 + p - p.detach()
