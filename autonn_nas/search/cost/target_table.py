"""A latency table for a deployment target: every candidate of every searchable block measured on the
device this runs on (`autonn-nas latency-table`), in the file format `--latency-table` and the stage's
`latency_tables/<target_info>.json` read. The measurement itself is latency.measured_latency_table's."""
from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Any

import torch

from autonn_nas.models.yolo import build_model
from autonn_nas.search.cost.latency import device_name, measured_latency_table
from autonn_nas.search.cost.runtimes import runtime_version


def measure_target_table(cfg: str, img_size: int, width: float | None, depth: float | None, nc: int, device: torch.device,
                         runtime: str, warmup: int, repeats: int) -> dict[str, Any]:
    """The table as JSON-ready values: the cost table (space, candidates, image size, input shapes, fixed part,
    per-block milliseconds) with the device, runtime, date and model sizes it was measured for. Nothing is read
    from or written to the latency cache: a table is a fresh measurement."""
    torch.manual_seed(0)
    model = build_model(cfg, nc=nc, width=width, depth=depth).to(device)
    with tempfile.TemporaryDirectory() as folder:
        table = measured_latency_table(model, img_size, device, Path(folder) / "cache.json", warmup, repeats, runtime)
    return {
        **table.to_dict(),
        "device": device_name(device),
        "runtime": runtime_version(runtime),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cfg": str(cfg), "width_multiple": model.yaml["width_multiple"], "depth_multiple": model.yaml["depth_multiple"], "nc": nc,
        "warmup": warmup, "repeats": repeats, "made_by": "autonn-nas latency-table",
    }
