"""The stage's products in the project folder: the derived YAML, its weights and neural_net_info.yaml.

Each file is written atomically (temp file + rename); the model YAML, the stage's main product, is placed
last, so a job killed part-way never leaves a neck_nas_model.yaml without the files that go with it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from autonn_nas.models.yolo import build_model, load_cfg
from autonn_nas.service.paths import MODEL_YAML, NET_INFO, WEIGHTS, ProjectPaths
from autonn_nas.utils.files import atomic_write_bytes, atomic_write_yaml

CONF_THRES = 0.25
IOU_THRES = 0.45
# Python files that rebuild the network from config_file (TANGO's class_file / class_name keys).
CLASS_FILES = [
    "autonn_nas/models/yolo.py",
    "autonn_nas/models/common.py",
    "autonn_nas/models/choice.py",
    "autonn_nas/models/activations.py",
    "autonn_nas/models/search_space.py",
]


def neural_net_info(model_yaml: Path, img_size: int, names: Sequence[str] | None = None) -> dict[str, Any]:
    """TANGO's newest neural_net_info keys, filled from the model that `model_yaml` builds."""
    model = build_model(model_yaml)
    detect = model.detect
    strides = [int(s) for s in detect.stride.tolist()]
    if any(img_size % s for s in strides):
        raise ValueError(f"input size {img_size} is not a multiple of the model's strides {strides}")
    nc = int(detect.nc)
    names = [str(n) for n in names] if names is not None else [str(i) for i in range(nc)]
    if len(names) != nc:
        raise ValueError(f"{model_yaml}: nc is {nc} but the dataset names {len(names)} classes")
    return {
        "weight_file": WEIGHTS,
        "config_file": MODEL_YAML,
        "class_file": list(CLASS_FILES),
        "class_name": f"build_model('{MODEL_YAML}')",
        "nc": nc,
        "names": names,
        "input_tensor_shape": [1, 3, img_size, img_size],
        "input_data_type": "fp32",
        "anchors": load_cfg(model_yaml)["anchors"],
        "output_number": int(detect.nl),
        "output_size": [[1, int(detect.na), img_size // s, img_size // s, int(detect.no)] for s in strides],
        "stride": strides,
        "need_nms": True,
        "conf_thres": CONF_THRES,
        "iou_thres": IOU_THRES,
    }


def search_img_size(report: Path | None, metrics: dict[str, Any], fallback: int) -> int:
    """The image size the search trained at: from its metrics, else its report's settings, else `fallback`."""
    if isinstance(metrics.get("img_size"), int):
        return metrics["img_size"]
    if report is not None and report.is_file():
        try:
            data = json.loads(report.read_text())
        except ValueError:
            data = {}
        for holder in (data, data.get("settings") or {}):
            if isinstance(holder, dict) and isinstance(holder.get("img_size"), int):
                return holder["img_size"]
    return fallback


def place_outputs(paths: ProjectPaths, model_yaml: Path, weights: Path, info: dict[str, Any]) -> dict[str, str]:
    """Copy the run's products into the project folder atomically; returns name -> path."""
    atomic_write_bytes(paths.output(WEIGHTS), weights.read_bytes())
    atomic_write_yaml(paths.output(NET_INFO), info)
    atomic_write_bytes(paths.output(MODEL_YAML), model_yaml.read_bytes())
    return paths.outputs()
