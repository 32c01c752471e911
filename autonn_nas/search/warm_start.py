"""--weights: start the supernet from a trained base model (Scaled-YOLOv4 layout) instead of random.

The file is any weights file search/weights_file.py reads (a state_dict, this tool's best.pt / bestmodel.pt,
a search's last.pt with its architecture); `arch` says which candidate each block holds. The mapping itself,
with 5x5 candidates zero-padded from the 3x3 weights so every candidate starts computing what the base
block computed, is search/derive.py's inherit_base_weights. Nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

from autonn_nas.models.yolo import Model, searchable_labels
from autonn_nas.search.derive import inherit_base_weights
from autonn_nas.search.weights_file import read_weights
from autonn_nas.utils.log import get_logger

log = get_logger("search.warm_start")


def warm_start(supernet: Model, path: str | Path) -> None:
    weights = read_weights(path)
    state, arch = weights.state_dict, weights.arch
    model_yaml = weights.model_yaml if weights.model_yaml and not searchable_labels(weights.model_yaml) else None
    try:
        # the recorded model YAML, when there is one: it fits a supernet of another search space too
        inherit_base_weights(supernet, {k: v.to(next(supernet.parameters()).device) for k, v in state.items()},
                             None if model_yaml else arch, source_cfg=model_yaml)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    log.info("warm start: every candidate begins from the weights in %s (%s)", path, f"architecture {arch}" if arch else "the base model")
