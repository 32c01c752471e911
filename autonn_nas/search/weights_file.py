"""Every weights file the tool starts from, read one way (`train --weights`, the retrain, `search --weights`):

- a search's bestmodel.pt: model_yaml + state_dict + arch (the derived model);
- a checkpoint of `autonn-nas train` (last.pt, best.pt): model_yaml + state_dict (its moving average);
- a search's last.pt: the supernet. Its sub-network of one architecture is cut out of the supernet's moving
  average (what the search derives from) as subnet_state_dict does: the architecture given, else the one the
  search shipped (arch.json beside the checkpoint);
- a state_dict in Scaled-YOLOv4's layout, plain or under 'state_dict' / 'model' (no model YAML: the model
  comes from --cfg). A pickled Scaled-YOLOv4 checkpoint is converted beforehand (docs/cli.md, 'Starting
  from weights'); nothing here unpickles code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from autonn_nas.models.yolo import Model, searchable_labels
from autonn_nas.search.arch import Architecture
from autonn_nas.search.derive import derive_yaml, subnet_state_dict
from autonn_nas.train.checkpoint import read_weights_file
from autonn_nas.train.weights import InitialWeights

ARCH_FILE = "arch.json"  # what a search writes beside its last.pt: the architecture it shipped


def _tensors(value: Any) -> dict[str, torch.Tensor] | None:
    if isinstance(value, Mapping) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
        return dict(value)
    return None


def _architecture(path: Path, arch: Mapping[str, str] | str | Path | None, labels: list[str]) -> Architecture:
    if isinstance(arch, Mapping):
        chosen = Architecture(arch)
    else:
        file = Path(arch) if arch is not None else path.parent / ARCH_FILE
        if not file.is_file():
            raise ValueError(f"{path} is a search's supernet and {file} does not exist: give the sub-network to take with "
                             "--arch A.json (an architecture or a search's arch.json)")
        chosen = Architecture.load(file)
    return chosen.validate(labels)


def _subnet(path: Path, checkpoint: Mapping[str, Any], arch: Mapping[str, str] | str | Path | None) -> InitialWeights:
    supernet_yaml = checkpoint["model_yaml"]
    chosen = _architecture(path, arch, searchable_labels(supernet_yaml))
    ema = checkpoint.get("ema")
    state = _tensors(ema.get("state_dict")) if isinstance(ema, Mapping) else None  # the average the search derives from
    with torch.device("meta"):  # structure only: load_state_dict(assign=True) adopts the file's tensors
        supernet = Model(supernet_yaml)
    supernet.load_state_dict(state or checkpoint["state_dict"], strict=True, assign=True)
    return InitialWeights(source=str(path), kind="supernet", state_dict=subnet_state_dict(supernet, chosen),
                          model_yaml=derive_yaml(supernet_yaml, chosen), names=checkpoint.get("names"), arch=chosen.to_dict(),
                          img_size=(checkpoint.get("settings") or {}).get("img_size"))


def read_weights(path: str | Path, arch: Mapping[str, str] | str | Path | None = None) -> InitialWeights:
    """The weights in `path` and the model they belong to; `arch` (a mapping or an architecture JSON file) picks the
    sub-network of a search's supernet checkpoint. ValueError naming the file when it holds no weights."""
    path = Path(path)
    data = read_weights_file(path)
    if isinstance(data, Mapping) and isinstance(data.get("model_yaml"), Mapping) and _tensors(data.get("state_dict")):
        if searchable_labels(data["model_yaml"]):
            return _subnet(path, data, arch)
        return InitialWeights(source=str(path), kind="derived" if isinstance(data.get("arch"), Mapping) else "trained",
                              state_dict=dict(data["state_dict"]), model_yaml=dict(data["model_yaml"]),
                              names=list(data["names"]) if data.get("names") is not None else None,
                              arch=dict(data["arch"]) if isinstance(data.get("arch"), Mapping) else None,
                              img_size=data.get("img_size") or (data.get("settings") or {}).get("img_size"))
    state = _tensors(data)
    if state is None and isinstance(data, Mapping):
        state = _tensors(data.get("state_dict")) or _tensors(data.get("model"))
    if state is None:
        raise ValueError(f"{path} holds no weights: expected a checkpoint of this tool or a state_dict (parameter names "
                         "to tensors, optionally under 'state_dict' or 'model')")
    return InitialWeights(source=str(path), kind="state_dict", state_dict=state)
