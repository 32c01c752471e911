"""Letterbox resize (keep the aspect ratio, pad to the network's input) and the mapping back for evaluation.

The mapping is carried as ratio_pad = ((ratio_h, ratio_w), (pad_w, pad_h)): a point (x, y) of the original image
lands at (x * ratio_w + pad_w, y * ratio_h + pad_h) in the letterboxed one. Pads are the pixels actually added
on the left and the top, so the mapping is exact (not off by the half pixel of an odd padding).
"""
from __future__ import annotations

from typing import Sequence, TypeVar

import cv2
import numpy as np
import torch

from autonn_nas.data.boxes import clip_boxes, float_copy

Boxes = TypeVar("Boxes", np.ndarray, torch.Tensor)
RatioPad = tuple[tuple[float, float], tuple[float, float]]


def _as_hw(shape: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(shape, int):
        return shape, shape
    return int(shape[0]), int(shape[1])


def resize_interpolation(scale: float) -> int:
    """Area averaging when shrinking (no aliasing), bilinear when enlarging."""
    return cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR


def letterbox(
    img: np.ndarray,
    new_shape: int | Sequence[int] = 640,
    color: int | tuple[int, int, int] = 114,
    auto: bool = False,
    scaleup: bool = True,
    stride: int = 32,
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Resize `img` (H, W, C) to fit `new_shape` (int or (h, w)) keeping its aspect ratio, then pad.

    auto: pad only up to a multiple of `stride` (a rectangular input) instead of the full new_shape.
    scaleup: allow enlarging; False only shrinks (better mAP on small images at evaluation time).
    Returns (image, (ratio_h, ratio_w), (pad_w, pad_h)).
    """
    height, width = img.shape[:2]
    new_h, new_w = _as_hw(new_shape)
    scale = min(new_h / height, new_w / width)
    if not scaleup:
        scale = min(scale, 1.0)
    resized_w, resized_h = max(1, round(width * scale)), max(1, round(height * scale))
    pad_w, pad_h = new_w - resized_w, new_h - resized_h
    if auto:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    if (resized_w, resized_h) != (width, height):
        img = cv2.resize(img, (resized_w, resized_h), interpolation=resize_interpolation(scale))
    left, top = pad_w // 2, pad_h // 2
    fill = (color,) * 3 if isinstance(color, int) else tuple(color)
    if pad_w or pad_h:
        img = cv2.copyMakeBorder(img, top, pad_h - top, left, pad_w - left, cv2.BORDER_CONSTANT, value=fill)
    return img, (resized_h / height, resized_w / width), (float(left), float(top))


def scale_boxes_to_original(
    boxes_xyxy: Boxes,
    img1_shape: Sequence[int],
    img0_shape: Sequence[int],
    ratio_pad: RatioPad | Sequence | None = None,
) -> Boxes:
    """Map (n, 4) xyxy boxes from the letterboxed image (img1_shape = (h, w)) back to the original image
    (img0_shape = (h0, w0)), clipped to it; returns a new array or tensor of the same kind.

    ratio_pad: the ((ratio_h, ratio_w), (pad_w, pad_h)) the dataset returned; without it, the mapping of
    letterbox(img0, img1_shape) with its defaults (centred, no stride rounding) is assumed.
    """
    h1, w1 = int(img1_shape[0]), int(img1_shape[1])
    h0, w0 = int(img0_shape[0]), int(img0_shape[1])
    if ratio_pad is None:
        # the same arithmetic as letterbox(), so the mapping is exact for its default settings
        scale = min(h1 / h0, w1 / w0)
        resized_w, resized_h = max(1, round(w0 * scale)), max(1, round(h0 * scale))
        ratio_h, ratio_w = resized_h / h0, resized_w / w0
        pad_w, pad_h = (w1 - resized_w) // 2, (h1 - resized_h) // 2
    else:
        ratio_h, ratio_w = float(ratio_pad[0][0]), float(ratio_pad[0][1])
        pad_w, pad_h = float(ratio_pad[1][0]), float(ratio_pad[1][1])
    out = float_copy(boxes_xyxy)
    out[:, [0, 2]] = (out[:, [0, 2]] - pad_w) / ratio_w
    out[:, [1, 3]] = (out[:, [1, 3]] - pad_h) / ratio_h
    return clip_boxes(out, w0, h0)
