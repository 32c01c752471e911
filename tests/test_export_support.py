"""Shared helpers of the export tests (no tests here): tiny derived models saved as bestmodel.pt, real images."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from autonn_nas.models.yolo import build_model, cfg_to_yaml
from autonn_nas.search.derive import derive_yaml
from autonn_nas.utils.files import atomic_torch_save, atomic_write_text

REPO = Path(__file__).resolve().parent.parent
DATASET = REPO / "shared_volume" / "datasets" / "coco128_mini"
VAL_IMAGES = sorted((DATASET / "images" / "val2017").glob("*.jpg"))
SEARCH_CFG = "yolov4-p5-search.yaml"
# a mixed architecture: every kernel and activation of the search space appears at least once
MIXED_ARCH = {"m_16": "k5_leaky", "m_21": "k3_relu", "m_25": "k5_mish", "m_29": "k3_leaky"}
NAMES = [f"class{i}" for i in range(80)]
EXPORT_IMG = 96  # the image size of the shared `weights` fixture (conftest.py)


def randomize_batch_norms(model: nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial statistics and affine terms, so folding BN into convs is really exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)


def make_bestmodel(folder: Path, arch: dict | None = None, width: float = 0.125, img_size: int = 64, seed: int = 0,
                   score_shift: float = 0.0) -> tuple[Path, Path]:
    """(neck_nas_model.yaml, bestmodel.pt) of a tiny derived model, saved as the search's final step saves them.

    score_shift raises the objectness and class logits, so an untrained model still yields boxes above a threshold."""
    arch = arch or MIXED_ARCH
    search_cfg = build_model(SEARCH_CFG, nc=80, width=width, depth=0.33).yaml
    derived = derive_yaml(search_cfg, arch)
    torch.manual_seed(seed)
    model = build_model(derived)
    randomize_batch_norms(model, seed)
    with torch.no_grad():
        for conv in model.detect.m:
            conv.bias.view(model.detect.na, -1)[:, 4:] += score_shift
    model.names = list(NAMES)
    folder.mkdir(parents=True, exist_ok=True)
    model_yaml = atomic_write_text(folder / "neck_nas_model.yaml", cfg_to_yaml(derived))
    weights = atomic_torch_save(folder / "bestmodel.pt", {
        "model_yaml": derived, "state_dict": model.state_dict(), "nc": 80, "names": list(NAMES), "arch": dict(arch),
        "metrics": {}, "img_size": img_size, "note": "test weights",
    })
    return model_yaml, weights
