"""How well the model's anchors fit a dataset's boxes (the check YOLOv5 calls autoanchor, without re-fitting)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from autonn_nas.utils.log import get_logger

log = get_logger("train.anchors")

MIN_RECALL = 0.98  # below this share of matchable boxes, training is handicapped
MIN_BOX_PIXELS = 2.0  # boxes this small are ignored (label noise; no anchor can fit them)


def label_wh_at_size(labels: Sequence[np.ndarray], shapes: Sequence[Sequence[float]], img_size: int) -> np.ndarray:
    """(n, 2) box widths and heights in pixels after letterboxing each image to `img_size`.

    labels: per image (k, 5) [cls, cx, cy, w, h] normalised; shapes: per image (width, height).
    """
    rows = []
    for image_labels, (width, height) in zip(labels, shapes):
        image_labels = np.asarray(image_labels, dtype=np.float64).reshape(-1, 5)
        if len(image_labels):
            scale = img_size / max(width, height)
            rows.append(image_labels[:, 3:5] * np.array([width, height]) * scale)
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, 2))


def anchors_in_pixels(model: Any) -> torch.Tensor:
    """(nl * na, 2) anchors of the model's Detect layer in input pixels."""
    model = getattr(model, "module", model)
    detect = getattr(model, "detect", model)
    return (detect.anchors.detach().cpu() * detect.stride.detach().cpu().view(-1, 1, 1)).view(-1, 2)


def check_anchor_fit(wh: np.ndarray | torch.Tensor, model: Any, anchor_t: float = 4.0) -> tuple[float, float]:
    """(best possible recall, mean number of anchors per box within the matching ratio).

    A box is matchable when some anchor's width and height ratio to it are both within `anchor_t` (the
    loss's rule); best possible recall is the share of matchable boxes. Warns below MIN_RECALL.
    """
    wh = torch.as_tensor(np.asarray(wh, dtype=np.float32)).view(-1, 2)
    wh = wh[(wh >= MIN_BOX_PIXELS).all(dim=1)]
    if not len(wh):
        log.warning("anchor check: no boxes of at least %.0f px to check the anchors against", MIN_BOX_PIXELS)
        return 0.0, 0.0
    anchors = anchors_in_pixels(model)
    ratio = wh[:, None] / anchors[None]
    fit = torch.min(ratio, 1 / ratio).min(dim=2).values  # (boxes, anchors), 1 = same shape
    threshold = 1 / anchor_t
    best_possible_recall = float((fit.max(dim=1).values > threshold).float().mean())
    anchors_above = float((fit > threshold).float().sum(dim=1).mean())
    message = f"anchor check: {anchors_above:.2f} anchors per box fit, best possible recall {best_possible_recall:.4f}"
    if best_possible_recall < MIN_RECALL:
        log.warning(
            "%s (< %.2f): the model's anchors fit this dataset poorly at this image size. Anchors are not "
            "re-fitted automatically; edit the 'anchors' rows of the model YAML (e.g. k-means of the box "
            "sizes) or change the image size.",
            message,
            MIN_RECALL,
        )
    else:
        log.info(message)
    return best_possible_recall, anchors_above
