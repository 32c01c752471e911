"""The augmentation hyperparameters' defaults (Scaled-YOLOv4 / YOLOv5 'scratch'), owned by the data layer;
train/hyp.py's DEFAULT_HYP includes them. Plain values only: the CLI reads them without importing torch."""
from __future__ import annotations

AUGMENTATION_DEFAULTS: dict[str, float] = {
    "hsv_h": 0.015,
    "hsv_s": 0.7,
    "hsv_v": 0.4,
    "degrees": 0.0,
    "translate": 0.1,
    "scale": 0.5,
    "shear": 0.0,
    "fliplr": 0.5,
    "mosaic": 1.0,  # probability of a 4-image mosaic when augmenting
}
