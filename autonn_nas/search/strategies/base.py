"""What every search strategy does on the shared supernet, and the parts they have in common.

A strategy owns the architecture state (logits per block, where it has them) and sets the supernet's
running mode (block.active / block.mixture / block.gate) before each step:
- `prepare_weight_step()`: before a weight step on the training part of the train split;
- `arch_step(images, targets)`: one architecture step on a batch of the held-out part;
- `probabilities()`: per block candidate probabilities (None where the strategy has none);
- `derive(scorer)`: the final architecture within the budget.

Three rules hold for every strategy:
- **The budget only constrains.** Candidates that no architecture within the budget can use (see
  cost.admissible_candidates) get probability 0: they are never sampled, run or trained. The cost term
  acts only while the expected cost is over the budget, and then as a direct shift of the logits
  proportional to each candidate's cost: candidates of equal cost move together (their ratio is kept),
  and the cost never enters Adam's normalisation of the task gradient, which it would otherwise drown.
- **Architecture steps see BatchNorm as training and deployment do**: with the statistics of the batch
  (train mode), the supernet's running statistics left untouched (no held-out image enters them).
  Measured (benchmarks/README.md, planted benchmark): during supernet training the running statistics
  lag the weights and belong to a mix of paths, and eval-mode losses on them were 100-3000x the train-mode
  losses, so comparisons in eval mode compared broken networks. In train mode a BN after a block
  cancels any rescaling of the block's output, exactly as recalibrated BN does in the deployed network,
  so a candidate is judged by what survives normalisation: this is why the old gate estimator (a pure
  rescaling of the sampled path) carried no signal, and why proxyless now compares losses.
- **Under AMP** an architecture step takes no gradient at all: its forward passes run in the weight
  steps' float16 autocast and the losses are compared in float32, so nothing can underflow (the old
  estimator's float16 gradients at the block outputs did, 2-5 % of them at 256 px, without loss scaling).
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Protocol

import torch
from torch import nn

from autonn_nas.models.choice import clear_mixture, searchable_blocks
from autonn_nas.search.arch import Architecture
from autonn_nas.search.bn_recalibration import frozen_bn_statistics
from autonn_nas.search.cost import Budget, CostTable, admissible_candidates, admissible_mask, most_probable_within_budget
from autonn_nas.search.objective import DetectionObjective

ARCH_LR = 1e-3  # Adam on the logits (the runner sets it from the number of architecture steps)
ARCH_BETAS = (0.5, 0.999)
COST_WEIGHT = 1.0  # how far the cost term shifts the logits per step while over budget, in units of the lr

LossFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


class Scorer(Protocol):
    """What a strategy that scores architectures needs (final.Evaluator's held-out scoring)."""

    max_evaluations: int
    seed: int

    def score_many(self, archs: list[Architecture]) -> list[tuple[tuple, dict[str, Any]]]: ...

    def on_generation(self, generation: int, ranked: list) -> None: ...


class SearchStrategy:
    name: ClassVar[str] = ""
    has_arch_weights: ClassVar[bool] = False
    derives_on_every_rank: ClassVar[bool] = False  # under torchrun: True when derive() needs every rank (spos scoring)

    def __init__(self, model: nn.Module, loss_fn: LossFn, cost: CostTable, budget: Budget, seed: int = 0,
                 arch_lr: float = ARCH_LR, cost_weight: float = COST_WEIGHT, autocast: bool = False):
        self.model = model
        # a plain detection loss (tests, older callers) becomes the detection objective
        self.objective = loss_fn if getattr(loss_fn, "takes_images", False) else DetectionObjective(loss_fn)
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
        self.names = cost.space.names  # the candidates, in the order of the logits' columns
        self.allowed = admissible_candidates(cost, budget)
        self.mask = admissible_mask(cost, budget, device)
        for label, block in self.blocks.items():
            block.allowed = tuple(self.allowed[label])
        # path sampling has its own generator: saved in checkpoints, independent of data loading
        self.generator = torch.Generator().manual_seed(int(seed) + 7919)
        self.alpha: nn.Parameter | None = None
        self._probabilities_cache: tuple[int, torch.Tensor] | None = None  # (alpha's version, probabilities)
        self.arch_optimizer: torch.optim.Optimizer | None = None
        if self.has_arch_weights:
            self.alpha = nn.Parameter(torch.zeros(len(self.labels), len(self.names), device=device))
            self.arch_optimizer = torch.optim.Adam([self.alpha], lr=arch_lr, betas=ARCH_BETAS)
        self.arch_steps = 0
        # under torchrun: averages the logits' gradient over the ranks so every rank takes the same step
        self.reduce_arch_grad: Callable[[torch.Tensor], torch.Tensor] = lambda grad: grad

    def set_arch_lr(self, lr: float) -> None:
        if self.arch_optimizer is not None:
            for group in self.arch_optimizer.param_groups:
                group["lr"] = float(lr)

    @property
    def arch_lr(self) -> float | None:
        return self.arch_optimizer.param_groups[0]["lr"] if self.arch_optimizer is not None else None

    # -- to implement ---------------------------------------------------------------------------------
    def prepare_weight_step(self) -> None:
        raise NotImplementedError

    def _arch_gradient(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(d task loss / d logits or None to skip the step, the task loss per image), model in eval mode."""
        raise NotImplementedError

    def write_artifacts(self, out: Any, context: dict[str, Any]) -> dict[str, Any]:
        """Strategy-specific outputs in the run folder; returns what the report records of them."""
        return {}

    # -- shared ---------------------------------------------------------------------------------------
    def masked_softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over each block's admissible candidates; the others get exactly 0."""
        return torch.softmax(logits.masked_fill(~self.mask.to(logits.device), float("-inf")), dim=-1)

    def probabilities(self) -> torch.Tensor | None:
        """(blocks, candidates) candidate probabilities on the CPU, or None. Copied from the device only when the
        logits changed (their version counter moves with every in-place update): proxyless samples a path for
        every weight step, and a copy each time would make the host wait for the GPU at every step."""
        if self.alpha is None:
            return None
        version = self.alpha._version
        if self._probabilities_cache is None or self._probabilities_cache[0] != version:
            self._probabilities_cache = (version, self.masked_softmax(self.alpha.detach().float()).cpu())
        return self._probabilities_cache[1].clone()

    def probabilities_dict(self) -> dict[str, dict[str, float]] | None:
        probs = self.probabilities()
        if probs is None:
            return None
        return {label: {name: float(p) for name, p in zip(self.names, row)} for label, row in zip(self.labels, probs)}

    def cost_penalty(self, probabilities: torch.Tensor) -> torch.Tensor:
        """relu(E[cost] / budget - 1): zero while the expected architecture fits the budget (reported as the
        cost term; cost_step acts on it)."""
        expected = self.cost.expected(probabilities.double())
        return torch.relu(expected / self.budget.limit - 1.0).float()

    @torch.no_grad()
    def cost_step(self) -> float:
        """While the expected cost is over the budget, shift each admissible logit down by lr x cost_weight x
        (its cost - the block's cheapest) / (the largest such spread of any block). Returns the term's value."""
        if self.alpha is None:
            return 0.0
        over = float(self.cost_penalty(self.masked_softmax(self.alpha.detach().float())))
        if over <= 0.0 or self.cost_weight <= 0.0:
            return over * self.cost_weight
        table = self.cost.matrix(self.alpha.device).float()
        mask = self.mask.to(self.alpha.device)
        cheapest = table.masked_fill(~mask, float("inf")).min(dim=-1, keepdim=True).values
        extra = (table - cheapest).masked_fill(~mask, 0.0)
        spread = float(extra.max())
        if spread > 0.0:
            self.alpha.sub_(self.arch_lr * self.cost_weight * extra / spread)
        return over * self.cost_weight

    def arch_step(self, images: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """One architecture step on a held-out batch; returns the task loss per image and the cost term."""
        if self.alpha is None:
            return {}
        was_training = self.model.training
        self.model.train()  # batch statistics (see the module docstring)
        try:
            with frozen_bn_statistics(self.model):
                grad, task = self._arch_gradient(images, targets)
        finally:
            clear_mixture(self.model)
            self.model.train(was_training)
        grad = torch.zeros_like(self.alpha) if grad is None else grad  # every rank joins the reduction
        grad = self.reduce_arch_grad(grad.masked_fill(~self.mask, 0.0))
        if bool(grad.abs().sum() > 0):  # a skipped (overflowed) step or no comparison: Adam's moments stay as they are
            self.arch_optimizer.zero_grad(set_to_none=True)
            self.alpha.grad = grad
            self.arch_optimizer.step()
        cost_term = self.cost_step()
        self.arch_steps += 1
        return {"arch_task_loss": float(task.detach()), "cost_term": cost_term}

    def _path_loss(self, predictions: Any, targets: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return self.objective(predictions, targets, images)[0].float() / images.shape[0]

    @torch.no_grad()
    def path_comparison_gradient(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits' gradient from held-out losses of discrete paths. A reference path r is drawn from the
        probabilities and run once; then, block by block, each other admissible candidate c takes the block's
        place while every other block keeps r's choice, and only the layers from that block on run again (the
        earlier layers' outputs are reused). With L_c the loss of those paths on the same images,

            d/d alpha_c = p_c (L_c - sum_j p_j L_j)

        the exact gradient of the block's expected loss given the other blocks' choices (ProxylessNAS's
        full-path form, with each candidate's loss in place of its gate gradient)."""
        probabilities = self.probabilities()
        reference = self.sample(probabilities)
        self.set_path(reference)
        autocast = dict(device_type=self.device.type, dtype=torch.float16, enabled=self.autocast)
        with torch.autocast(**autocast):
            predictions, record = self.model.forward_from(images)
        reference_loss = self._path_loss(predictions, targets, images)
        grad = torch.zeros(self.alpha.shape)
        for row, (label, block) in enumerate(self.blocks.items()):
            allowed = [self.names.index(name) for name in self.allowed[label]]
            if len(allowed) < 2:
                continue
            losses = torch.zeros(len(self.names))
            for c in allowed:
                if c == reference[row]:
                    losses[c] = reference_loss
                    continue
                block.active = self.names[c]
                with torch.autocast(**autocast):
                    predictions, _ = self.model.forward_from(None, start=block.i, record=record)
                losses[c] = self._path_loss(predictions, targets, images)
            block.active = self.names[reference[row]]
            p = probabilities[row]
            grad[row] = p * (losses - (p * losses).sum())
        return grad.to(self.alpha.device), reference_loss

    def sample(self, probabilities: torch.Tensor) -> list[int]:
        """One candidate index per block drawn from (blocks, candidates) probabilities."""
        return torch.multinomial(probabilities.detach().float().cpu(), 1, generator=self.generator).view(-1).tolist()

    def set_path(self, indices: list[int]) -> None:
        for block, index in zip(self.blocks.values(), indices):
            block.mixture = None
            block.gate = None
            block.active = self.names[index]

    def prepare_memory_probe(self) -> None:
        """Run the most memory-hungry configuration of a weight step: by default each block's largest
        admissible candidate (the batch size that fits it fits every sampled path)."""
        path = []
        for label, block in self.blocks.items():
            sizes = {self.names.index(name): sum(p.numel() for p in block.candidates[name].parameters()) for name in self.allowed[label]}
            path.append(max(sizes, key=sizes.__getitem__))
        self.set_path(path)

    def derive(self, scorer: Scorer | None = None) -> Architecture:
        """The most probable architecture within the budget (exact; ties keep the base)."""
        return self.derive_within(self.budget)

    def derive_within(self, budget: Budget) -> Architecture | None:
        """What this strategy derives, once trained, within another budget (a lightweight_level's: the report's
        knob view); None when it cannot tell. Here: the most probable architecture within it. A tighter budget
        takes a subset of the architectures, so the derived cost never grows as the budget shrinks."""
        probabilities = self.probabilities_dict()
        if probabilities is None:  # no architecture weights (a sampling strategy that does not override this)
            return None
        return most_probable_within_budget(probabilities, self.cost, budget)

    def scored(self) -> dict[Architecture, float] | None:
        """The held-out loss of every architecture the strategy scored while deriving (the report's Pareto
        view); None when it scores none, and the view then scores its own sample."""
        return None

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
