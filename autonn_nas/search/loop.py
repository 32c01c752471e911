"""One supernet epoch: weight steps on the training part of the train split, interleaved with
architecture steps on its held-out part, on the schedule of ArchStepSchedule.

The epoch itself is train/epoch.py's train_one_epoch (the same loss, accumulation, clipping, AMP and
progress bar as plain training); the search enters through its on_batch_start hook.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch

from autonn_nas.search.strategies.base import SearchStrategy
from autonn_nas.train.ema import ModelEMA
from autonn_nas.train.epoch import EpochResult, images_to_input, train_one_epoch

ARCH_WARMUP_FRACTION = 0.25  # of all iterations: weight-only warm-up so the candidates are not random when compared
PRIOR_ART_WARMUP = (3, 1000)  # TANGO's earlier neck NAS: max(3 epochs, 1000 iterations) before any architecture step
ARCH_LR_RANGE = (1e-3, 5e-2)  # Adam lr of the logits: ProxylessNAS's 1e-3 for long runs, larger for short ones


ARCH_STEP_EVERY_MAX = 4  # at least one architecture step every this many weight steps


def arch_step_interval(train_batches: int, holdout_batches: int) -> int:
    """Iterations between architecture steps: one pass over the held-out part per epoch, spread evenly, and
    at least one step every ARCH_STEP_EVERY_MAX iterations (a small held-out part is then cycled more than
    once: 24 logits do not overfit a few dozen images the way weights would). An architecture step costs
    about a weight step, so the search's overhead stays near a quarter of the training time."""
    return max(1, min(ARCH_STEP_EVERY_MAX, -(-train_batches // max(holdout_batches, 1))))


def arch_learning_rate(arch_steps: int) -> float:
    """Adam moves a logit by about lr per step: aim at a total movement of about one logit over the run
    (enough for a short search to decide), within ARCH_LR_RANGE (long runs keep ProxylessNAS's 1e-3)."""
    low, high = ARCH_LR_RANGE
    return min(high, max(low, 1.0 / max(arch_steps, 1)))


@dataclass(frozen=True)
class ArchStepSchedule:
    """Architecture steps start after a weight-only warm-up of a fraction of the run and then come every
    `every` iterations. The warm-up is a fraction of the configured run, never a fixed epoch or
    iteration count, so any run of two or more iterations takes architecture steps (the prior art's
    fixed 3-epoch / 1000-iteration warm-up meant a default run never took one).

    `first_iteration` overrides the fraction with a fixed start; only `prior_art` uses it, to reproduce
    that flaw for the side-by-side in benchmarks/README.md (a start past the run means no steps at all)."""

    total_iterations: int
    warmup_fraction: float = ARCH_WARMUP_FRACTION
    every: int = 1
    first_iteration: int | None = None

    @classmethod
    def prior_art(cls, total_iterations: int, iterations_per_epoch: int, every: int = 1) -> "ArchStepSchedule":
        epochs, iterations = PRIOR_ART_WARMUP
        return cls(total_iterations, every=every, first_iteration=max(epochs * iterations_per_epoch, iterations))

    @property
    def start(self) -> int:
        if self.first_iteration is not None:
            return self.first_iteration
        if self.total_iterations <= 1:
            return 0
        return min(int(self.warmup_fraction * self.total_iterations), self.total_iterations - 1)

    def due(self, iteration: int) -> bool:
        return iteration >= self.start and (iteration - self.start) % self.every == 0

    def steps_in(self, first: int, last: int) -> int:
        """Architecture steps among iterations first..last-1."""
        return sum(1 for i in range(first, last) if self.due(i))

    def to_dict(self) -> dict[str, Any]:
        return {"total_iterations": self.total_iterations, "warmup": "fixed" if self.first_iteration is not None else "fraction",
                "warmup_fraction": self.warmup_fraction, "first_arch_iteration": self.start, "every": self.every,
                "arch_steps": self.steps_in(0, self.total_iterations)}


def cycle(loader: Iterable) -> Iterator:
    """Batches of `loader`, starting over when it is exhausted."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the held-out loader yields no batches")


@dataclass
class SearchEpochResult:
    weights: EpochResult
    arch_steps: int
    arch_task_loss: float | None
    cost_term: float | None


def train_supernet_epoch(
    strategy: SearchStrategy,
    train_loader: Any,
    holdout_loader: Any,
    loss_fn: Any,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    arch_schedule: ArchStepSchedule,
    epoch: int,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
    progress: bool = True,
    description: str | None = None,
    model: torch.nn.Module | None = None,
    ema: ModelEMA | None = None,
) -> SearchEpochResult:
    """`model`: what the weight steps run (the DDP wrapper of strategy.model under torchrun); `ema`, if given,
    follows every weight update."""
    model = strategy.model if model is None else model
    holdout = cycle(holdout_loader) if strategy.has_arch_weights else None
    logs: list[dict[str, float]] = []

    def before_batch(iteration: int) -> None:
        if holdout is not None and arch_schedule.due(iteration):
            images, targets, *_rest = next(holdout)
            logs.append(strategy.arch_step(images_to_input(images, device), targets.to(device)))
        strategy.prepare_weight_step()

    result = train_one_epoch(
        model, train_loader, loss_fn, optimizer, schedule, epoch, device,
        scaler=scaler, ema=ema, progress=progress, description=description, on_batch_start=before_batch,
    )

    def mean(key: str) -> float | None:
        return sum(log[key] for log in logs) / len(logs) if logs else None

    return SearchEpochResult(result, len(logs), mean("arch_task_loss"), mean("cost_term"))
