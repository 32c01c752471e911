"""What every search strategy does on the shared supernet, and the parts they have in common.

A strategy owns the architecture state (logits per block, where it has them) and sets the supernet's
running mode (block.active / block.mixture / block.gate) before each step:
- `prepare_weight_step()`: before a weight step on the training part of the train split;
- `arch_step(images, targets)`: one architecture step on a batch of the held-out part (gradient
  strategies: task loss + cost term, Adam on the logits; weights are untouched: the architecture
  gradient is taken with torch.autograd.grad, so weight gradients being accumulated are not disturbed);
- `probabilities()`: per block candidate probabilities (None where the strategy has none);
- `derive()`: the final architecture within the budget (SPOS overrides it with its evolutionary search).
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
from torch import nn

from autonn_nas.models.choice import clear_mixture, searchable_blocks
from autonn_nas.models.search_space import CANDIDATES
from autonn_nas.search.arch import Architecture
from autonn_nas.search.cost import Budget, CostTable, most_probable_within_budget

ARCH_LR = 1e-3  # Adam on the logits (the runner sets it from the number of architecture steps)
ARCH_BETAS = (0.5, 0.999)
COST_WEIGHT = 1.0  # lambda of the cost term lambda * relu(E[cost] / limit - 1)

LossFn = Callable[[Any, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class SearchStrategy:
    name: ClassVar[str] = ""
    has_arch_weights: ClassVar[bool] = False

    def __init__(self, model: nn.Module, loss_fn: LossFn, cost: CostTable, budget: Budget, seed: int = 0,
                 arch_lr: float = ARCH_LR, cost_weight: float = COST_WEIGHT, autocast: bool = False):
        self.model = model
        self.loss_fn = loss_fn
        self.cost = cost
        self.budget = budget
        self.cost_weight = cost_weight
        self.autocast = autocast
        self.blocks = searchable_blocks(model)
        self.labels = list(self.blocks)
        if self.labels != cost.labels:
            raise ValueError(f"cost table blocks {cost.labels} do not match the supernet's {self.labels}")
        device = next(model.parameters()).device
        self.device = device
        # path sampling has its own generator: saved in checkpoints, independent of data loading
        self.generator = torch.Generator().manual_seed(int(seed) + 7919)
        self.alpha: nn.Parameter | None = None
        self.arch_optimizer: torch.optim.Optimizer | None = None
        if self.has_arch_weights:
            self.alpha = nn.Parameter(torch.zeros(len(self.labels), len(CANDIDATES), device=device))
            self.arch_optimizer = torch.optim.Adam([self.alpha], lr=arch_lr, betas=ARCH_BETAS)
        self.arch_steps = 0
        # under torchrun: averages the logits' gradient over the ranks so every rank takes the same step
        self.reduce_arch_grad: Callable[[torch.Tensor], torch.Tensor] = lambda grad: grad

    def set_arch_lr(self, lr: float) -> None:
        if self.arch_optimizer is not None:
            for group in self.arch_optimizer.param_groups:
                group["lr"] = float(lr)

    # -- to implement ---------------------------------------------------------------------------------
    def prepare_weight_step(self) -> None:
        raise NotImplementedError

    def _prepare_arch_step(self, probabilities: torch.Tensor) -> None:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------------
    def probabilities(self) -> torch.Tensor | None:
        """(blocks, candidates) softmax of the logits, or None."""
        return None if self.alpha is None else torch.softmax(self.alpha.detach().float(), dim=-1).cpu()

    def probabilities_dict(self) -> dict[str, dict[str, float]] | None:
        probs = self.probabilities()
        if probs is None:
            return None
        return {label: {name: float(p) for name, p in zip(CANDIDATES, row)} for label, row in zip(self.labels, probs)}

    def cost_penalty(self, probabilities: torch.Tensor) -> torch.Tensor:
        """lambda * relu(E[cost] / budget - 1): zero while the expected architecture fits the budget, and
        a pull toward cheaper candidates, relative to the budget (unit-free), once it does not."""
        expected = self.cost.expected(probabilities.double())
        return self.cost_weight * torch.relu(expected / self.budget.limit - 1.0).float()

    def arch_step(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """One architecture step on a held-out batch; returns the task loss per image and the cost term."""
        if self.alpha is None:
            return {}
        probabilities = torch.softmax(self.alpha, dim=-1)
        self._prepare_arch_step(probabilities)
        try:
            with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.autocast):
                predictions = self.model(images)
            task, _items = self.loss_fn(predictions, targets)
            task = task.float() / images.shape[0]
            penalty = self.cost_penalty(probabilities)
            (grad,) = torch.autograd.grad(task + penalty, [self.alpha])
        finally:
            clear_mixture(self.model)
        self.arch_optimizer.zero_grad(set_to_none=True)
        self.alpha.grad = self.reduce_arch_grad(grad)
        self.arch_optimizer.step()
        self.arch_steps += 1
        return {"arch_task_loss": float(task.detach()), "cost_term": float(penalty.detach())}

    def sample(self, probabilities: torch.Tensor) -> list[int]:
        """One candidate index per block drawn from (blocks, candidates) probabilities."""
        return torch.multinomial(probabilities.detach().float().cpu(), 1, generator=self.generator).view(-1).tolist()

    def set_path(self, indices: list[int]) -> None:
        for block, index in zip(self.blocks.values(), indices):
            block.mixture = None
            block.gate = None
            block.active = CANDIDATES[index]

    def prepare_memory_probe(self) -> None:
        """Run the most memory-hungry configuration of a weight step: by default each block's largest
        candidate (the batch size that fits it fits every sampled path)."""
        sizes = [[sum(p.numel() for p in block.candidates[name].parameters()) for name in CANDIDATES] for block in self.blocks.values()]
        self.set_path([max(range(len(CANDIDATES)), key=row.__getitem__) for row in sizes])

    def derive(self, **_unused: Any) -> Architecture:
        """The most probable architecture within the budget (exact, by enumeration)."""
        return most_probable_within_budget(self.probabilities_dict(), self.cost, self.budget)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"name": self.name, "generator": self.generator.get_state(), "arch_steps": self.arch_steps}
        if self.alpha is not None:
            state["alpha"] = self.alpha.detach().cpu().clone()
            state["arch_optimizer"] = self.arch_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name") != self.name:
            raise ValueError(f"the checkpoint was written by strategy {state.get('name')!r}, not {self.name!r}")
        self.generator.set_state(state["generator"])
        self.arch_steps = int(state.get("arch_steps", 0))
        if self.alpha is not None:
            with torch.no_grad():
                self.alpha.copy_(state["alpha"].to(self.alpha.device))
            self.arch_optimizer.load_state_dict(state["arch_optimizer"])
