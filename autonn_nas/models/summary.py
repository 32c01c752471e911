"""Per-layer summary of a built model (`from n params module arguments`, as YOLOv5 prints it), total
parameters, and GFLOPs counted on a 'meta'-device twin so that no real forward pass (and no memory
for activations) is needed even for the full-size supernet."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from .choice import MBottleneckCSP2, active_architecture, searchable_blocks, set_architecture
from .yolo import Model, build_model


@dataclass(frozen=True)
class LayerRow:
    index: int
    from_: int | list[int]
    n: int
    params: int
    module: str
    arguments: list


@dataclass
class ModelSummary:
    rows: list[LayerRow]
    params: int  # every parameter of the model (all candidates of a supernet)
    active_params: int  # parameters on the path the model runs (equals params for a concrete model)
    gflops: float  # of the path the model runs, at img_size x img_size, batch 1
    img_size: int
    searchable: dict[str, str] = field(default_factory=dict)  # label -> active candidate (empty if concrete)

    def to_dict(self) -> dict:
        data = asdict(self)
        for row in data["rows"]:
            row["from"] = row.pop("from_")
        return data


def _active_params(layer: torch.nn.Module) -> int:
    if isinstance(layer, MBottleneckCSP2):
        return sum(p.numel() for p in layer.candidates[layer.active].parameters())
    return layer.np


def round_img_size(img_size: int, max_stride: int) -> int:
    """The smallest multiple of the model's largest stride that is >= img_size (every level must tile)."""
    return max(max_stride, math.ceil(img_size / max_stride) * max_stride)


def count_gflops(model: Model, img_size: int = 640) -> float:
    """GFLOPs (2 x multiply-accumulates, as YOLOv5 reports) of one img_size x img_size image through the
    path the model runs (a supernet's active candidates). Counted on a 'meta' twin built from model.yaml."""
    with torch.device("meta"):
        twin = build_model(model.yaml)
    if searchable_blocks(twin):
        set_architecture(twin, active_architecture(model))
    twin.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        twin(torch.empty(1, 3, img_size, img_size, device="meta"))
    return counter.get_total_flops() / 1e9


def summarize(model: Model, img_size: int = 640) -> ModelSummary:
    img_size = round_img_size(img_size, int(max(model.detect.level_strides)))
    rows = [LayerRow(layer.i, layer.f, layer.n, layer.np, layer.type, list(layer.args)) for layer in model.model]
    return ModelSummary(
        rows=rows,
        params=sum(p.numel() for p in model.parameters()),
        active_params=sum(_active_params(layer) for layer in model.model),
        gflops=count_gflops(model, img_size),
        img_size=img_size,
        searchable=active_architecture(model),
    )


def format_summary(summary: ModelSummary) -> str:
    lines = [f"{'':>3}{'from':>18}{'n':>3}{'params':>12}  {'module':<24}arguments"]
    for row in summary.rows:
        lines.append(f"{row.index:>3}{str(row.from_):>18}{row.n:>3}{row.params:>12}  {row.module:<24}{row.arguments}")
    lines.append(f"{len(summary.rows)} layers, {summary.params:,} parameters, {summary.gflops:.1f} GFLOPs at {summary.img_size}x{summary.img_size}")
    if summary.searchable:
        arch = " ".join(f"{label}={name}" for label, name in summary.searchable.items())
        lines.append(
            f"supernet: parameters count all {len(summary.searchable)} searchable blocks' candidates; "
            f"GFLOPs and {summary.active_params:,} active-path parameters are for the active candidates ({arch})"
        )
    return "\n".join(lines)
