"""Exponential moving average of model weights (the YOLOv5 recipe), used for evaluation and checkpoints."""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn as nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DataParallel / DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else model


class ModelEMA:
    """Keeps `ema` = decay * ema + (1 - decay) * model for floating-point parameters and buffers.

    decay ramps from 0 towards `decay` as 1 - exp(-updates / tau): early on the average follows the fast
    changing weights, later it smooths them. BN running statistics (buffers) are averaged too.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0):
        self.ema = copy.deepcopy(unwrap_model(model)).eval()
        self.updates = updates
        self.decay_max, self.tau = decay, tau
        for p in self.ema.parameters():
            p.requires_grad_(False)

    def decay(self) -> float:
        return self.decay_max * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step: a few fused multi-tensor kernels (torch._foreach_*) instead of two per tensor,
        which for the full supernet (thousands of tensors) was a launch-bound pass on a GPU."""
        self.updates += 1
        d = self.decay()
        model_state = unwrap_model(model).state_dict()
        averaged, current = [], []
        for name, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                averaged.append(value)
                current.append(model_state[name].detach())
            else:  # e.g. BN's num_batches_tracked
                value.copy_(model_state[name])
        if averaged:
            torch._foreach_mul_(averaged, d)
            torch._foreach_add_(averaged, current, alpha=1 - d)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "decay": self.decay_max, "tau": self.tau, "state_dict": self.ema.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.decay_max, self.tau = float(state["decay"]), float(state["tau"])
        self.ema.load_state_dict(state["state_dict"])
