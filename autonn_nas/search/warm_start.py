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

from autonn_nas.models.yolo import Model, searchable_labels
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


def read_architecture(path: str | Path) -> tuple[dict[str, str] | None, dict | None]:
    """The architecture and concrete model YAML a checkpoint records (a search's bestmodel.pt has 'arch' and
    'model_yaml'), else None (a base model's state_dict)."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    arch = data.get("arch") if isinstance(data, Mapping) else None
    model_yaml = data.get("model_yaml") if isinstance(data, Mapping) else None
    concrete = isinstance(model_yaml, dict) and not searchable_labels(model_yaml)
    return (dict(arch) if isinstance(arch, Mapping) else None), (dict(model_yaml) if concrete else None)


def warm_start(supernet: Model, path: str | Path) -> None:
    state = read_state_dict(path)
    arch, model_yaml = read_architecture(path)
    try:
        # the recorded model YAML, when there is one: it fits a supernet of another search space too
        inherit_base_weights(supernet, {k: v.to(next(supernet.parameters()).device) for k, v in state.items()},
                             None if model_yaml else arch, source_cfg=model_yaml)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    log.info("warm start: every candidate begins from the weights in %s (%s)", path, f"architecture {arch}" if arch else "the base model")
