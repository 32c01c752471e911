"""ProxylessNAS-style search: one sampled candidate per block per weight step (memory of one network).

Architecture steps compare the held-out losses of discrete paths (base.path_comparison_gradient): a
candidate is favoured because its path's loss was lower. The first-order gate gradient <dL/dy, o_c>
that ProxylessNAS and this module used before cannot tell a broken candidate from a good one when
the block's output is followed by BatchNorm, which cancels any rescaling of it.
"""
from __future__ import annotations

import torch

from autonn_nas.search.strategies.base import SearchStrategy
from autonn_nas.search.strategies.registry import register_strategy


@register_strategy
class ProxylessStrategy(SearchStrategy):
    name = "proxyless"
    has_arch_weights = True

    def prepare_weight_step(self) -> None:
        self.set_path(self.sample(self.probabilities()))

    def _arch_gradient(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        return self.path_comparison_gradient(images, targets)
