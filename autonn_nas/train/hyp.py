"""Default training hyperparameters (Scaled-YOLOv4 / YOLOv5 'scratch' values).

One plain dict: the trainer's optimiser and loss keys plus the data pipeline's augmentation keys, which
data/augment_defaults.py owns (the data layer does not import the training layer).
Callers copy it and override keys; unknown keys in a user's override are an error (see `merge_hyp`).
"""
from __future__ import annotations

from typing import Any, Mapping

from autonn_nas.data.augment_defaults import AUGMENTATION_DEFAULTS

DEFAULT_HYP: dict[str, float] = {
    # optimiser and schedule
    "lr0": 0.01,  # initial SGD learning rate
    "lrf": 0.2,  # final learning rate as a fraction of lr0 (cosine)
    "momentum": 0.937,
    "weight_decay": 5e-4,  # scaled by batch_size * accumulate / nominal batch
    "warmup_epochs": 3.0,
    "warmup_momentum": 0.8,
    "warmup_bias_lr": 0.1,
    # loss gains
    "box": 0.05,
    "cls": 0.5,
    "cls_pw": 1.0,
    "obj": 1.0,
    "obj_pw": 1.0,
    "anchor_t": 4.0,  # anchor / target width-height ratio threshold for matching
    "fl_gamma": 0.0,  # focal loss gamma (0 = plain BCE)
    "label_smoothing": 0.0,  # class targets become 1 - eps/2 and eps/2
    **AUGMENTATION_DEFAULTS,  # data/augment_defaults.py: the data pipeline's own keys
}


def merge_hyp(overrides: Mapping[str, Any] | None = None) -> dict[str, float]:
    """DEFAULT_HYP updated with `overrides`; an unknown key is an error that lists the valid ones."""
    hyp = dict(DEFAULT_HYP)
    for key, value in (overrides or {}).items():
        if key not in DEFAULT_HYP:
            raise ValueError(f"unknown hyperparameter '{key}'; valid keys: {', '.join(DEFAULT_HYP)}")
        hyp[key] = float(value)
    return hyp


def load_hyp_overrides(path: str | None) -> dict[str, float]:
    """The overrides in a YAML file (`--hyp`), e.g. `lr0: 0.001`; {} without a file. Keys are checked by merge_hyp."""
    if not path:
        return {}
    from autonn_nas.models.bounded_yaml import load_yaml_file

    try:
        values = load_yaml_file(path) or {}
    except OSError as exc:
        raise ValueError(f"cannot read hyperparameter file {path}: {exc.strerror}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a hyperparameter file must map names to numbers (e.g. 'lr0: 0.01')")
    return values
