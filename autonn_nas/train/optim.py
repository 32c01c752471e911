"""SGD with the usual three parameter groups, and the gradient-accumulation rule for a nominal batch."""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn

NOMINAL_BATCH = 64  # the batch size the default hyperparameters were tuned for


def accumulate_steps(batch_size: int, nominal_batch: int = NOMINAL_BATCH) -> int:
    """Batches whose gradients are summed before one optimizer step (1 when the batch is already nominal)."""
    return max(round(nominal_batch / batch_size), 1)


def parameter_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """(weights with decay, normalisation weights, biases): decaying BN scales or biases only hurts."""
    decay, norm, bias = [], [], []
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            if name == "bias":
                bias.append(param)
            elif isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                norm.append(param)
            else:
                decay.append(param)
    return decay, norm, bias


def build_optimizer(model: nn.Module, hyp: Mapping[str, float], batch_size: int, nominal_batch: int = NOMINAL_BATCH) -> torch.optim.SGD:
    """Nesterov SGD; group 0 = normalisation weights (no decay), 1 = other weights (decay), 2 = biases.

    Weight decay is scaled by batch_size * accumulate / nominal_batch, so the decay per image seen stays
    the same when the real batch does not divide the nominal one.
    """
    decay, norm, bias = parameter_groups(model)
    weight_decay = hyp["weight_decay"] * batch_size * accumulate_steps(batch_size, nominal_batch) / nominal_batch
    optimizer = torch.optim.SGD(
        [
            {"params": norm, "weight_decay": 0.0, "name": "norm"},
            {"params": decay, "weight_decay": weight_decay, "name": "weights"},
            {"params": bias, "weight_decay": 0.0, "name": "bias"},
        ],
        lr=hyp["lr0"],
        momentum=hyp["momentum"],
        nesterov=True,
    )
    for group in optimizer.param_groups:
        group["initial_lr"] = hyp["lr0"]
    return optimizer


def reserve_optimizer_state(model: nn.Module) -> list[torch.Tensor]:
    """Uninitialised tensors the size of the state build_optimizer's SGD keeps once every parameter has had a
    gradient (one momentum buffer per trainable parameter): a memory probe that runs before the optimizer
    exists holds them, so the batch size it fits leaves room for them."""
    return [torch.empty_like(p) for p in model.parameters() if p.requires_grad]
