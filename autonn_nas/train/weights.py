"""Start a model from weights that may not fit it exactly (`autonn-nas train --weights W`, the search's retrain).

The tensors whose name and shape match are loaded; the others are reported per layer (`model.N` is the
layer of the YAML's row N), so a checkpoint of another `nc` (the Detect layer differs) or of another
architecture (some neck blocks differ) still gives everything that fits. `strict` refuses any mismatch
with a one-line error that names the first tensor that does not fit.

What a weights file holds, whatever its kind, is read by search/weights_file.py into an InitialWeights.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from autonn_nas.utils.log import get_logger

log = get_logger("train.weights")

# what each kind of file is, for messages (search/weights_file.py decides the kind)
KINDS = {
    "derived": "a search's bestmodel.pt (the derived model)",
    "trained": "a checkpoint of autonn-nas train (last.pt / best.pt)",
    "supernet": "a search's last.pt (the sub-network of its architecture, cut out of the supernet)",
    "state_dict": "a state_dict (Scaled-YOLOv4 layout)",
}


@dataclass(frozen=True)
class InitialWeights:
    source: str  # the file, for messages
    kind: str  # a key of KINDS
    state_dict: dict[str, torch.Tensor]
    model_yaml: dict | None = None  # the model the weights belong to; None for a plain state_dict
    names: list[str] | None = None
    arch: dict[str, str] | None = None  # a search's architecture (derived and supernet kinds)
    img_size: int | None = None  # the size the weights were trained or searched at, when the file says

    def describe(self) -> str:
        what = KINDS[self.kind] + (f", architecture {' '.join(f'{k}={v}' for k, v in self.arch.items())}" if self.arch else "")
        return f"{self.source} ({what})"


@dataclass(frozen=True)
class LoadSummary:
    loaded: int  # tensors of the model set from the file
    total: int  # tensors of the model
    skipped: tuple[str, ...]  # one line per layer and reason


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(n) for n in tensor.shape) + ")"


def _layer(model: nn.Module, key: str) -> str:
    """'model.33.m.0.weight' -> 'layer 33 (Detect)': the unit a user knows from the YAML and `autonn-nas summary`."""
    parts = key.split(".")
    if len(parts) > 1 and parts[0] == "model" and parts[1].isdigit():
        layers = getattr(model, "model", None)
        index = int(parts[1])
        kind = type(layers[index]).__name__ if isinstance(layers, nn.Sequential) and index < len(layers) else "not in this model"
        return f"layer {index} ({kind})"
    return parts[0]


def mismatches(model_state: Mapping[str, torch.Tensor], file_state: Mapping[str, torch.Tensor]) -> list[tuple[str, str]]:
    """(tensor name, what differs) for every tensor that cannot be loaded, the model's order first."""
    found = []
    for key, tensor in model_state.items():
        if key not in file_state:
            found.append((key, "missing in the weights"))
        elif file_state[key].shape != tensor.shape:
            found.append((key, f"shape {_shape(file_state[key])} in the weights, {_shape(tensor)} in the model"))
    found += [(key, "not in the model") for key in file_state if key not in model_state]
    return found


def load_fitting(model: nn.Module, weights: InitialWeights, strict: bool = False) -> LoadSummary:
    """Copy into `model` every tensor of `weights` whose name and shape match, and log per layer what was
    skipped; `strict`: ValueError at the first mismatch instead. ValueError too when nothing fits."""
    model_state = model.state_dict()
    problems = mismatches(model_state, weights.state_dict)
    if problems and strict:
        key, what = problems[0]
        raise ValueError(f"{weights.source}: {key} does not fit ({what}); {len(problems)} tensor(s) differ in all "
                         "(another nc or architecture?); without --strict the tensors that fit are loaded and the rest reported")
    fitting = {k: v for k, v in weights.state_dict.items() if k in model_state and v.shape == model_state[k].shape}
    if not any(v.is_floating_point() for v in fitting.values()):  # BN's counters fit anything: they do not count
        key, what = problems[0]
        raise ValueError(f"{weights.source}: no tensor fits this model (the first: {key}, {what}); give the model the "
                         "weights belong to (--cfg, --width, --depth)")
    model.load_state_dict(fitting, strict=False)
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, what in problems:
        reason = "shape differs" if what.startswith("shape") else what
        groups[(_layer(model, key), reason)].append(f"{key}: {what}" if reason == "shape differs" else key)
    skipped = tuple(f"{layer}: {len(keys)} tensor(s) {reason}, not loaded (e.g. {keys[0]})" for (layer, reason), keys in groups.items())
    summary = LoadSummary(loaded=sum(1 for k in model_state if k in fitting), total=len(model_state), skipped=skipped)
    log.info("weights from %s: %d of %d tensors loaded%s", weights.describe(), summary.loaded, summary.total,
             "" if skipped else " (all)")
    for line in skipped:
        log.warning("weights from %s: %s", weights.source, line)
    return summary
