"""Box format conversions for the data pipeline (numpy or torch, same code).

Formats: xywhn = centre x, centre y, width, height normalised to the image (YOLO labels);
xyxy = corner pixels x1, y1, x2, y2. Every conversion between label and pixel boxes goes through here.
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Boxes = TypeVar("Boxes", np.ndarray, torch.Tensor)


def float_copy(boxes: Boxes) -> Boxes:
    """A copy that can hold fractional coordinates (integer arrays become float32)."""
    if isinstance(boxes, torch.Tensor):
        return boxes.clone() if boxes.is_floating_point() else boxes.float()
    boxes = np.asarray(boxes)
    return boxes.astype(boxes.dtype if boxes.dtype.kind == "f" else np.float32, copy=True)


def xywhn_to_xyxy(boxes: Boxes, width: float, height: float, pad_w: float = 0.0, pad_h: float = 0.0) -> Boxes:
    """(n, 4) normalised centre boxes -> pixel corners in an image of (width, height), shifted by the padding."""
    out = float_copy(boxes)
    out[:, 0] = width * (boxes[:, 0] - boxes[:, 2] / 2) + pad_w
    out[:, 1] = height * (boxes[:, 1] - boxes[:, 3] / 2) + pad_h
    out[:, 2] = width * (boxes[:, 0] + boxes[:, 2] / 2) + pad_w
    out[:, 3] = height * (boxes[:, 1] + boxes[:, 3] / 2) + pad_h
    return out


def xyxy_to_xywhn(boxes: Boxes, width: float, height: float, clip: bool = False) -> Boxes:
    """(n, 4) pixel corners -> centre boxes normalised to an image of (width, height)."""
    if clip:
        boxes = clip_boxes(boxes, width, height)
    out = float_copy(boxes)
    out[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2 / width
    out[:, 1] = (boxes[:, 1] + boxes[:, 3]) / 2 / height
    out[:, 2] = (boxes[:, 2] - boxes[:, 0]) / width
    out[:, 3] = (boxes[:, 3] - boxes[:, 1]) / height
    return out


def clip_boxes(boxes: Boxes, width: float, height: float) -> Boxes:
    """A copy of (n, 4) xyxy boxes clipped to an image of (width, height)."""
    out = float_copy(boxes)
    if isinstance(out, torch.Tensor):
        out[:, 0::2] = out[:, 0::2].clamp(0, width)
        out[:, 1::2] = out[:, 1::2].clamp(0, height)
    else:
        out[:, 0::2] = out[:, 0::2].clip(0, width)
        out[:, 1::2] = out[:, 1::2].clip(0, height)
    return out
