"""Training augmentation: HSV jitter, horizontal flip, random affine (scale, translate, optional rotation and
shear) and the 4-image mosaic. Every function draws from the numpy Generator it is given, so a sample is
reproducible from its seed alone (see YoloDataset.sample_rng), whatever process or worker makes it.

Boxes here are pixel corners with the class in front: (n, 5) [cls, x1, y1, x2, y2]. Images are RGB uint8.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import cv2
import numpy as np

from autonn_nas.data.augment_defaults import AUGMENTATION_DEFAULTS  # noqa: F401 (re-exported)
from autonn_nas.data.boxes import xywhn_to_xyxy

PAD_VALUE = 114  # grey used for every border, as the letterbox does

# a box that an augmentation squeezed below these is dropped (it no longer shows its object)
MIN_BOX_SIDE = 2.0  # pixels
MIN_AREA_KEPT = 0.1  # fraction of the box's (scaled) area still inside the image
MAX_ASPECT = 20.0


def augment_hsv(img: np.ndarray, rng: np.random.Generator, hgain: float, sgain: float, vgain: float) -> np.ndarray:
    """Random hue shift and saturation/value scaling of an RGB image (a new array)."""
    if not (hgain or sgain or vgain):
        return img
    gains = rng.uniform(-1, 1, 3) * np.array([hgain, sgain, vgain]) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_hue = ((x * gains[0]) % 180).astype(np.uint8)  # OpenCV's 8-bit hue runs 0..179
    lut_sat = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_val = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def flip_horizontal(img: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror the image left-right and its [cls, x1, y1, x2, y2] boxes with it."""
    width = img.shape[1]
    flipped = boxes.copy()
    flipped[:, 1], flipped[:, 3] = width - boxes[:, 3], width - boxes[:, 1]
    return np.ascontiguousarray(img[:, ::-1]), flipped


def keep_boxes(before: np.ndarray, after: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Mask of transformed boxes (xyxy, `after`) that still show their object: not too thin, not mostly cut
    off (area compared with the original box `before` times scale**2), not absurdly elongated."""
    w0, h0 = (before[:, 2] - before[:, 0]) * scale, (before[:, 3] - before[:, 1]) * scale
    w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w1 / (h1 + 1e-16), h1 / (w1 + 1e-16))
    return (w1 > MIN_BOX_SIDE) & (h1 > MIN_BOX_SIDE) & (w1 * h1 / (w0 * h0 + 1e-16) > MIN_AREA_KEPT) & (aspect < MAX_ASPECT)


def random_affine(
    img: np.ndarray,
    boxes: np.ndarray,
    rng: np.random.Generator,
    degrees: float = 0.0,
    translate: float = 0.1,
    scale: float = 0.5,
    shear: float = 0.0,
    border: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Random rotation/scale/shear about the image centre, then a random translation; boxes follow (as the
    axis-aligned hull of their transformed corners), are clipped, and degenerate ones are dropped.

    border: (rows, cols) added on each side of the output; negative crops (the mosaic's 2s canvas -> s).
    """
    out_h, out_w = img.shape[0] + 2 * border[0], img.shape[1] + 2 * border[1]
    centre = np.eye(3)
    centre[0, 2], centre[1, 2] = -img.shape[1] / 2, -img.shape[0] / 2
    rotate = np.eye(3)
    zoom = rng.uniform(1 - scale, 1 + scale)
    rotate[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=rng.uniform(-degrees, degrees), scale=zoom)
    skew = np.eye(3)
    skew[0, 1] = math.tan(math.radians(rng.uniform(-shear, shear)))
    skew[1, 0] = math.tan(math.radians(rng.uniform(-shear, shear)))
    move = np.eye(3)
    move[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_w
    move[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_h
    matrix = move @ skew @ rotate @ centre
    if border != (0, 0) or not np.allclose(matrix, np.eye(3)):
        img = cv2.warpAffine(img, matrix[:2], dsize=(out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=(PAD_VALUE,) * 3)

    if len(boxes):
        corners = np.ones((len(boxes) * 4, 3))
        corners[:, :2] = boxes[:, [1, 2, 3, 4, 1, 4, 3, 2]].reshape(-1, 2)  # (x1,y1) (x2,y2) (x1,y2) (x2,y1)
        moved = (corners @ matrix.T)[:, :2].reshape(-1, 8)
        xs, ys = moved[:, 0::2], moved[:, 1::2]
        hull = np.stack((xs.min(1), ys.min(1), xs.max(1), ys.max(1)), axis=1)
        hull[:, 0::2] = hull[:, 0::2].clip(0, out_w)
        hull[:, 1::2] = hull[:, 1::2].clip(0, out_h)
        keep = keep_boxes(boxes[:, 1:5], hull, zoom)
        boxes = np.concatenate((boxes[keep, :1], hull[keep]), axis=1).astype(np.float32)
    return img, boxes


def mosaic4(
    index: int,
    count: int,
    size: int,
    load: Callable[[int], tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator,
    hyp: Mapping[str, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Four images (this one and three random others) around a random centre of a 2*size canvas, then a
    random affine that crops the result to size x size.

    load(i) -> (image resized so its longer side is `size`, boxes (n, 5) [cls, cx, cy, w, h] normalised).
    Returns (image, boxes [cls, x1, y1, x2, y2] in its pixels).
    """
    canvas_side = 2 * size
    canvas = np.full((canvas_side, canvas_side, 3), PAD_VALUE, dtype=np.uint8)
    xc, yc = (int(rng.uniform(size / 2, 3 * size / 2)) for _ in range(2))
    indices = [index, *rng.integers(0, count, size=3).tolist()]
    placed = []
    for quadrant, i in enumerate(indices):
        img, labels = load(i)
        h, w = img.shape[:2]
        # canvas region (a) and the part of the image that fills it (b); each image touches the centre
        if quadrant == 0:  # top left
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b = w - (x2a - x1a), h - (y2a - y1a)
        elif quadrant == 1:  # top right
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, canvas_side), yc
            x1b, y1b = 0, h - (y2a - y1a)
        elif quadrant == 2:  # bottom left
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(yc + h, canvas_side)
            x1b, y1b = w - (x2a - x1a), 0
        else:  # bottom right
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, canvas_side), min(yc + h, canvas_side)
            x1b, y1b = 0, 0
        canvas[y1a:y2a, x1a:x2a] = img[y1b : y1b + (y2a - y1a), x1b : x1b + (x2a - x1a)]
        if len(labels):
            pixel = xywhn_to_xyxy(labels[:, 1:5], w, h, x1a - x1b, y1a - y1b)
            placed.append(np.concatenate((labels[:, :1], pixel), axis=1))
    boxes = np.concatenate(placed, axis=0) if placed else np.zeros((0, 5), np.float32)
    boxes[:, 1:5] = boxes[:, 1:5].clip(0, canvas_side)
    return random_affine(
        canvas, boxes, rng,
        degrees=hyp.get("degrees", 0.0), translate=hyp.get("translate", 0.0), scale=hyp.get("scale", 0.0),
        shear=hyp.get("shear", 0.0), border=(-size // 2, -size // 2),
    )
