"""Precision and recall at one operating point, next to COCO mAP.

mAP averages over every confidence; a user also wants to know how many objects the detector finds and how
many of its boxes are right *at some threshold*. We report the YOLOv5 convention: per class, precision
and recall as functions of the confidence threshold (detections matched to ground truth at IoU >= 0.5,
greedily by confidence, each ground-truth box at most once); the threshold is the one that maximises the
F1 score averaged over the classes present in the ground truth; P and R are the class means there.
Detections of classes absent from the ground truth are not counted (as in YOLOv5).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

_CONF_GRID = np.linspace(0.0, 1.0, 1001)


@dataclass(frozen=True)
class OperatingPoint:
    precision: float
    recall: float
    f1: float
    conf: float  # the confidence threshold chosen


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) COCO xywh boxes."""
    a_x2, a_y2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    b_x2, b_y2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = (np.minimum(a_x2[:, None], b_x2[None]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(min=0)
    h = (np.minimum(a_y2[:, None], b_y2[None]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(min=0)
    inter = w * h
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-9)


def match_detections(ground_truth: dict[str, Any], results: Sequence[dict[str, Any]], iou_thres: float = 0.5) -> dict[int, tuple[np.ndarray, np.ndarray, int]]:
    """Per class: (scores, true-positive flags, number of ground-truth boxes)."""
    gt_boxes: dict[tuple[int, int], list[list[float]]] = defaultdict(list)
    for ann in ground_truth["annotations"]:
        if not ann.get("iscrowd", 0):
            gt_boxes[(ann["image_id"], ann["category_id"])].append(ann["bbox"])
    dets: dict[tuple[int, int], list[tuple[float, list[float]]]] = defaultdict(list)
    for det in results:
        dets[(det["image_id"], det["category_id"])].append((det["score"], det["bbox"]))

    n_gt: dict[int, int] = defaultdict(int)
    for (_, cls), boxes in gt_boxes.items():
        n_gt[cls] += len(boxes)
    scores: dict[int, list[float]] = defaultdict(list)
    hits: dict[int, list[bool]] = defaultdict(list)
    for key, image_dets in dets.items():
        cls = key[1]
        if cls not in n_gt:
            continue
        image_dets = sorted(image_dets, key=lambda d: -d[0])
        det_scores = [d[0] for d in image_dets]
        truth = np.asarray(gt_boxes.get(key, []), dtype=np.float64).reshape(-1, 4)
        taken = np.zeros(len(truth), dtype=bool)
        ious = iou_xywh(np.asarray([d[1] for d in image_dets], dtype=np.float64), truth) if len(truth) else None
        for i in range(len(image_dets)):
            hit = False
            if ious is not None:
                candidates = np.where(taken, -1.0, ious[i])
                best = int(candidates.argmax())
                if candidates[best] >= iou_thres:
                    taken[best], hit = True, True
            scores[cls].append(det_scores[i])
            hits[cls].append(hit)
    return {cls: (np.asarray(scores[cls]), np.asarray(hits[cls], dtype=bool), count) for cls, count in n_gt.items()}


def precision_recall(ground_truth: dict[str, Any], results: Sequence[dict[str, Any]], iou_thres: float = 0.5) -> OperatingPoint:
    """Mean precision and recall over classes at the confidence of maximum mean F1 (see module doc)."""
    per_class = match_detections(ground_truth, results, iou_thres)
    if not per_class or not results:
        return OperatingPoint(0.0, 0.0, 0.0, 0.0)
    precision_curves, recall_curves = [], []
    for scores, hits, n_gt in per_class.values():
        if not len(scores):
            precision_curves.append(np.zeros_like(_CONF_GRID))
            recall_curves.append(np.zeros_like(_CONF_GRID))
            continue
        order = np.argsort(-scores, kind="stable")
        scores, hits = scores[order], hits[order]
        tp = np.cumsum(hits)
        fp = np.cumsum(~hits)
        recall = tp / n_gt
        precision = tp / (tp + fp)
        # curves as functions of the threshold: interp needs increasing x, hence the negation
        recall_curves.append(np.interp(-_CONF_GRID, -scores, recall, left=0.0))
        precision_curves.append(np.interp(-_CONF_GRID, -scores, precision, left=1.0))
    p, r = np.mean(precision_curves, axis=0), np.mean(recall_curves, axis=0)
    f1 = 2 * p * r / np.maximum(p + r, 1e-16)
    best = int(f1.argmax())
    return OperatingPoint(float(p[best]), float(r[best]), float(f1[best]), float(_CONF_GRID[best]))


RECALL_GRID = np.linspace(0.0, 1.0, 101)  # COCO's 101 recall points


def pr_curve(scores: np.ndarray, hits: np.ndarray, n_gt: int) -> tuple[np.ndarray, float]:
    """One class's precision at RECALL_GRID and its AP, from match_detections' (scores, hits, n_gt), the way
    COCO interpolates: the precision at recall r is the best precision at recall r or beyond (0 past the
    highest recall reached), and AP is its mean over the 101 points."""
    if n_gt == 0 or not len(scores):
        return np.zeros_like(RECALL_GRID), 0.0
    tp = np.cumsum(hits[np.argsort(-scores, kind="stable")])
    recall = tp / n_gt
    envelope = np.flip(np.maximum.accumulate(np.flip(tp / np.arange(1, len(tp) + 1))))
    index = np.searchsorted(recall, RECALL_GRID, side="left")
    curve = np.where(index < len(recall), envelope[np.minimum(index, len(recall) - 1)], 0.0)
    return curve, float(curve.mean())
