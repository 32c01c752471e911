"""Batch-norm recalibration: with shared weights, the running statistics a supernet collected belong to
a mix of paths, not to the sub-network being evaluated; re-estimate them for the path the model now runs.
Or leave them alone and normalise with each batch's own statistics (frozen_bn_statistics), which is how
the search compares architectures: on the same batches, every architecture normalised as it would be
by statistics of its own, with nothing estimated in between."""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch
from torch import nn

from autonn_nas.train.epoch import images_to_input


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader: Iterable, batches: int, device: torch.device | str | None = None) -> int:
    """Reset every BatchNorm's running mean/var and re-estimate them as the plain average over up to
    `batches` batches of `loader` (forward passes in train mode, no gradients). Modules off the active
    path keep reset statistics; they are recalibrated when a later evaluation runs them.
    Returns the number of batches used. The model is left in eval mode."""
    if batches < 1:
        raise ValueError(f"BN recalibration needs at least one batch, got {batches}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
    model.train()
    used = 0
    try:
        for images, *_rest in loader:
            model(images_to_input(images, device))
            used += 1
            if used >= batches:
                break
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    if used == 0:
        raise ValueError("BN recalibration got no batches: the loader is empty")
    return used


@contextlib.contextmanager
def frozen_bn_statistics(model: nn.Module) -> Iterator[None]:
    """In train mode, BatchNorm layers normalise with the batch's statistics; inside this context they leave
    their running statistics as they are (momentum 0: running = running), so no image seen here enters them."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
