"""params and FLOPs per candidate, counted on a 'meta'-device twin of the model: no memory and no real
forward pass, so the full-size supernet costs nothing to count."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from autonn_nas.models.choice import MBottleneckCSP2, model_space, searchable_blocks, set_architecture
from autonn_nas.models.search_space import BASE_CANDIDATE
from autonn_nas.models.yolo import Model, build_model
from autonn_nas.search.arch import base_architecture
from autonn_nas.search.cost.table import CostTable


def _meta_twin(model: Model, batch_norm: bool = True) -> Model:
    """A structure-only copy of `model`. Without `batch_norm` its BatchNorm layers are Identity: the same shapes
    and the same FLOPs (the counter counts convolutions and matrix products), and a forward pass several times
    faster (BatchNorm on 'meta' tensors is decomposed op by op at every call)."""
    with torch.device("meta"):
        twin = build_model(model.yaml)
    if not batch_norm:
        for module in list(twin.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(module, name, nn.Identity())
    return twin


def block_input_shapes(model: Model, img_size: int) -> dict[str, list[int]]:
    """(channels, height, width) of each searchable block's input for one img_size x img_size image,
    found by a forward pass of a 'meta' twin (shapes only)."""
    twin = _meta_twin(model, batch_norm=False)
    shapes: dict[str, list[int]] = {}
    hooks = []
    for label, block in searchable_blocks(twin).items():
        def record(_module, inputs, label=label):
            shapes[label] = list(inputs[0].shape[1:])
        hooks.append(block.register_forward_pre_hook(record))
    twin.eval()
    try:
        with torch.no_grad():
            twin(torch.empty(1, 3, img_size, img_size, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def _count_flops(module: nn.Module, x: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(x)
    return float(counter.get_total_flops())


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def counted_cost_table(model: Model, img_size: int, measure: str) -> CostTable:
    """params or flops per candidate and block at img_size, from a 'meta' twin of `model`."""
    if measure not in ("params", "flops"):
        raise ValueError(f"counted_cost_table handles params and flops, not {measure!r}")
    shapes = block_input_shapes(model, img_size)
    twin = _meta_twin(model, batch_norm=measure == "params").eval()
    blocks_of_twin = searchable_blocks(twin)
    space = model_space(twin)
    blocks: dict[str, dict[str, float]] = {}
    counted: dict[tuple, float] = {}  # structure -> FLOPs: counting on 'meta' is slow, and activations count nothing

    def flops(module: nn.Module, x: torch.Tensor) -> float:
        structure = (tuple(x.shape), tuple((name, tuple(p.shape)) for name, p in module.named_parameters()))
        if structure not in counted:
            counted[structure] = _count_flops(module, x)
        return counted[structure]

    for label, block in blocks_of_twin.items():
        x = torch.empty(1, *shapes[label], device="meta")
        if measure == "params":
            blocks[label] = {name: float(parameter_count(block.candidates[name])) for name in space.names}
        else:
            blocks[label] = {name: flops(block.candidates[name], x) for name in space.names}
    set_architecture(twin, base_architecture(blocks))
    if measure == "params":
        total = float(sum(parameter_count(layer) for layer in twin.model if not isinstance(layer, MBottleneckCSP2)))
        fixed = total
    else:
        fixed = _count_flops(twin, torch.empty(1, 3, img_size, img_size, device="meta")) - sum(
            entries[BASE_CANDIDATE] for entries in blocks.values()
        )
    return CostTable(measure, fixed, blocks, img_size, source=f"counted on the model structure at {img_size}x{img_size}", input_shapes=shapes,
                     space=space)
