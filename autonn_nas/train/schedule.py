"""Learning-rate and momentum schedule: linear warm-up, then cosine decay from lr0 to lr0 * lrf.

Stepped per iteration with the global iteration index, so the schedule has no state of its own and a
resumed run lands on exactly the same values.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch

from autonn_nas.train.optim import NOMINAL_BATCH

MIN_WARMUP_ITERS = 100  # a few-batch-per-epoch dataset still gets a gentle start...


def warmup_iterations(warmup_epochs: float, iters_per_epoch: int, total_iters: int) -> int:
    """...but warm-up never takes more than a third of a (short) run, or the run would be all warm-up."""
    if warmup_epochs <= 0:
        return 0
    return int(min(max(round(warmup_epochs * iters_per_epoch), MIN_WARMUP_ITERS), total_iters // 3))


class WarmupCosineSchedule:
    """Sets lr and momentum of an optimizer from `build_optimizer` for a global iteration.

    During warm-up the bias group's lr falls from warmup_bias_lr (a large start helps the detection
    biases) while the other groups rise from 0; momentum rises from warmup_momentum; and the number of
    accumulated batches rises from 1 to the nominal batch, so early updates are frequent.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        hyp: Mapping[str, float],
        epochs: int,
        iters_per_epoch: int,
        batch_size: int,
        nominal_batch: int = NOMINAL_BATCH,
    ):
        if epochs < 1 or iters_per_epoch < 1:
            raise ValueError(f"need at least one epoch and one batch per epoch, got {epochs} and {iters_per_epoch}")
        self.optimizer = optimizer
        self.lr0, self.lrf = float(hyp["lr0"]), float(hyp["lrf"])
        self.momentum, self.warmup_momentum = float(hyp["momentum"]), float(hyp["warmup_momentum"])
        self.warmup_bias_lr = float(hyp["warmup_bias_lr"])
        self.epochs, self.iters_per_epoch = epochs, iters_per_epoch
        self.warmup_iters = warmup_iterations(float(hyp["warmup_epochs"]), iters_per_epoch, epochs * iters_per_epoch)
        self.nominal_accumulate = max(nominal_batch / batch_size, 1.0)

    def lr_factor(self, iteration: int) -> float:
        """Cosine factor 1 -> lrf over the run, as a function of the (fractional) epoch."""
        progress = min(iteration / (self.epochs * self.iters_per_epoch), 1.0)
        return ((1 - math.cos(progress * math.pi)) / 2) * (self.lrf - 1) + 1

    def accumulate(self, iteration: int) -> int:
        """Batches per optimizer step at this iteration."""
        if iteration >= self.warmup_iters:
            return max(round(self.nominal_accumulate), 1)
        return max(1, round(float(np.interp(iteration, [0, self.warmup_iters], [1, self.nominal_accumulate]))))

    def step(self, iteration: int) -> None:
        target = self.lr0 * self.lr_factor(iteration)
        warming = iteration < self.warmup_iters
        for group in self.optimizer.param_groups:
            if warming:
                start = self.warmup_bias_lr if group.get("name") == "bias" else 0.0
                group["lr"] = float(np.interp(iteration, [0, self.warmup_iters], [start, target]))
                if "momentum" in group:
                    group["momentum"] = float(np.interp(iteration, [0, self.warmup_iters], [self.warmup_momentum, self.momentum]))
            else:
                group["lr"] = target
                if "momentum" in group:
                    group["momentum"] = self.momentum

    def lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]
