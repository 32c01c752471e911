"""--weights: start the supernet from a trained base model (Scaled-YOLOv4 layout) instead of random.

The file may be a plain state_dict or a checkpoint dict holding one under 'state_dict' (this tool's
last.pt / best.pt / bestmodel.pt) or 'model' (a state_dict, not a pickled module). The mapping itself,
with 5x5 candidates zero-padded from the 3x3 weights so every candidate starts computing what the base
block computed, is search/derive.py's inherit_base_weights. Nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

from autonn_nas.models.yolo import Model
from autonn_nas.search.derive import inherit_base_weights
from autonn_nas.utils.log import get_logger

log = get_logger("search.warm_start")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"warm-start weights {path} do not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled modules, truncated files
        raise ValueError(
            f"{path} cannot be read safely as tensors ({type(exc).__name__}: {exc}); save the base model's state_dict "
            "(torch.save(model.state_dict(), path)), not the pickled model"
        ) from None
    if isinstance(data, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(data.get(key), Mapping):
                data = data[key]
                break
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path} holds no state_dict (a mapping of parameter names to tensors, optionally under 'state_dict' or 'model')")
    return dict(data)


def read_architecture(path: str | Path) -> dict[str, str] | None:
    """The architecture a checkpoint records (a search's bestmodel.pt has 'arch'), else None (a base model)."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    arch = data.get("arch") if isinstance(data, Mapping) else None
    return dict(arch) if isinstance(arch, Mapping) else None


def warm_start(supernet: Model, path: str | Path) -> None:
    state = read_state_dict(path)
    arch = read_architecture(path)
    try:
        inherit_base_weights(supernet, {k: v.to(next(supernet.parameters()).device) for k, v in state.items()}, arch)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    log.info("warm start: every candidate begins from the weights in %s (%s)", path, f"architecture {arch}" if arch else "the base model")
