"""The searchable block: every candidate of its search space (the seed's six, or the extended space's), each
with its own weights.

MBottleneckCSP2 runs in one of three modes, chosen by attributes set from outside (search strategies):
- `active` (a candidate name, default BASE_CANDIDATE): run that one candidate;
- `mixture` (a tensor of one weight per candidate of `space`, or None): run every candidate and sum the weighted
  outputs (DARTS-style relaxation); takes precedence over `active`;
- `gate` (a scalar tensor, or None): multiply the single active path's output.
`allowed` (candidate names, default all) limits what a mixture runs: a strategy excludes the
candidates that no architecture within the budget can use, so they are neither run nor trained.
The block has no parameters of its own: architecture weights belong to the strategy, not the model.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .common import BottleneckCSP2
from .search_space import (
    BASE_CANDIDATE,
    SEED_SPACE,
    ArchitectureError,
    SearchSpace,
    block_label,
    label_sort_key,
    validate_choices,
)

_MODE_ATTRIBUTES = ("active", "mixture", "gate")


class MBottleneckCSP2(nn.Module):
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5,
                 space: SearchSpace = SEED_SPACE, row_number: int | None = None, depth_multiple: float = 1.0):
        """`n` is the row's repeats after depth_multiple; a candidate with its own depth builds
        space.repeats(op, row_number, depth_multiple) bottlenecks (row_number: the row's YAML number)."""
        super().__init__()
        self.space = space
        self.candidates = nn.ModuleDict({
            op.name: BottleneckCSP2(c1, c2, n if op.depth is None else space.repeats(op, row_number or n, depth_multiple),
                                    shortcut, g, e, k=op.kernel, act=op.act, hidden=op.hidden)
            for op in space.candidates
        })
        self.active = BASE_CANDIDATE
        self.mixture = None
        self.gate = None
        self.allowed: tuple[str, ...] = space.names

    def __setattr__(self, name: str, value) -> None:
        if name in _MODE_ATTRIBUTES:
            # Plain attributes, never registered: a strategy may hand in an nn.Parameter (its logits or
            # gate), which nn.Module would otherwise adopt as a parameter of the model.
            object.__setattr__(self, name, self._checked_mode(name, value))
        else:
            super().__setattr__(name, value)

    def __getstate__(self) -> dict:
        # Copies (deepcopy for EMA, pickling) run single-path: mixture/gate are a strategy's live tensors,
        # often non-leaf tensors that cannot be deep-copied.
        state = self.__dict__.copy()
        state["mixture"] = None
        state["gate"] = None
        return state

    def _checked_mode(self, name: str, value):
        if name == "active":
            return self.space.candidate(value).name
        if value is None:
            return None
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"MBottleneckCSP2.{name} must be a tensor or None, got {type(value).__name__}")
        names = self.space.names
        if name == "mixture" and tuple(value.shape) != (len(names),):
            raise ValueError(f"MBottleneckCSP2.mixture must have shape ({len(names)},) (one weight per candidate in {names}), got {tuple(value.shape)}")
        if name == "gate" and value.numel() != 1:
            raise ValueError(f"MBottleneckCSP2.gate must be a scalar tensor, got shape {tuple(value.shape)}")
        return value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mixture is not None:
            weights = self.mixture.to(device=x.device, dtype=x.dtype)
            out = None
            for w, (name, op) in zip(weights, self.candidates.items()):
                if name not in self.allowed:  # its weight is 0: running it would only train it for nothing
                    continue
                y = w * op(x)
                out = y if out is None else out + y
            return out
        y = self.candidates[self.active](x)
        return y if self.gate is None else y * self.gate.to(device=y.device, dtype=y.dtype).reshape(())

    def extra_repr(self) -> str:
        mode = "mixture" if self.mixture is not None else f"active={self.active}" + (", gated" if self.gate is not None else "")
        return mode


def searchable_blocks(model: nn.Module) -> dict[str, MBottleneckCSP2]:
    """Label -> searchable block of a built model (Model or its layer Sequential), ordered by layer index."""
    layers = model.model if hasattr(model, "model") else model
    blocks = {block_label(layer.i): layer for layer in layers if isinstance(layer, MBottleneckCSP2)}
    return dict(sorted(blocks.items(), key=lambda item: label_sort_key(item[0])))


def model_space(model: nn.Module) -> SearchSpace:
    """The search space of a supernet's blocks (one space for all of them; the seed's for a concrete model)."""
    spaces = {block.space for block in searchable_blocks(model).values()}
    if len(spaces) > 1:
        raise ArchitectureError(f"the searchable blocks resolve to different candidate sets ({len(spaces)}); give every searchable row the same number")
    return spaces.pop() if spaces else SEED_SPACE


def set_architecture(model: nn.Module, arch: Mapping[str, str]) -> None:
    """Make the model run exactly `arch` (label -> candidate): sets each block's active candidate and
    clears any mixture and gate. `arch` must name every searchable block of the model."""
    blocks = searchable_blocks(model)
    validate_choices(arch, blocks, model_space(model))
    for label, block in blocks.items():
        block.active = arch[label]
        block.mixture = None
        block.gate = None


def clear_mixture(model: nn.Module) -> None:
    """Back to single-path mode on every block: no mixture weights and no gate (active is kept)."""
    for block in searchable_blocks(model).values():
        block.mixture = None
        block.gate = None


def active_architecture(model: nn.Module) -> dict[str, str]:
    """Label -> active candidate of every searchable block (what the model runs in single-path mode)."""
    return {label: block.active for label, block in searchable_blocks(model).items()}
