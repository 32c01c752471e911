"""The cost table of a search: counted, measured, or read from a latency table measured elsewhere."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from autonn_nas.models.choice import model_space, searchable_blocks
from autonn_nas.models.yolo import Model
from autonn_nas.search.cost.counting import block_input_shapes, counted_cost_table
from autonn_nas.search.cost.latency import load_latency_table, measured_latency_table
from autonn_nas.search.cost.table import CostTable
from autonn_nas.search.settings import COST_MEASURES


def build_cost_table(
    model: Model,
    img_size: int,
    measure: str,
    device: torch.device,
    latency_table: str | Path | None = None,
    cache_path: Path | None = None,
    latency_device: torch.device | None = None,
) -> CostTable:
    """`latency_device`: where measured latencies are taken (None: `device`, where the model is); the model is
    copied there for the measurement, so a search on a GPU can cost architectures for a CPU target."""
    if measure not in COST_MEASURES:
        raise ValueError(f"cost measure {measure!r} is not one of {', '.join(COST_MEASURES)}")
    if latency_table:
        if measure != "latency":
            raise ValueError(f"a latency table was given but the cost measure is {measure!r}; use cost_measure latency with it")
        return load_latency_table(latency_table, list(searchable_blocks(model)), model_space(model), img_size,
                                  block_input_shapes(model, img_size))
    if measure == "latency":
        if latency_device is not None and latency_device != device:
            return measured_latency_table(copy.deepcopy(model).to(latency_device), img_size, latency_device, cache_path)
        return measured_latency_table(model, img_size, device, cache_path)
    return counted_cost_table(model, img_size, measure)
