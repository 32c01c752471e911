"""The detection confusion matrix as YOLOv5/Ultralytics users read it: rows are predicted classes, columns true
classes, and one more of each for the background (a missed object: true class, predicted background; a
false detection: predicted class, true background)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from autonn_nas.train.metrics import iou_xywh

CONF_THRES = 0.25  # detections below it are not counted (a deployed detector's usual threshold)
IOU_THRES = 0.45  # a detection and a true box of any class pair up above it


def confusion_matrix(ground_truth: dict[str, Any], results: Sequence[dict[str, Any]], nc: int,
                     conf_thres: float = CONF_THRES, iou_thres: float = IOU_THRES) -> np.ndarray:
    """(nc + 1, nc + 1) counts, [predicted, true], index nc = background. Per image, detections and true boxes
    pair greedily by IoU (highest first, each at most once), whatever their classes, as YOLOv5 does."""
    truth: dict[int, list[tuple[int, list[float]]]] = defaultdict(list)
    for ann in ground_truth["annotations"]:
        if not ann.get("iscrowd", 0):
            truth[ann["image_id"]].append((int(ann["category_id"]), ann["bbox"]))
    detections: dict[int, list[tuple[int, list[float]]]] = defaultdict(list)
    for det in results:
        if det["score"] >= conf_thres:
            detections[det["image_id"]].append((int(det["category_id"]), det["bbox"]))
    matrix = np.zeros((nc + 1, nc + 1), dtype=np.int64)
    for image_id in set(truth) | set(detections):
        true_boxes, dets = truth.get(image_id, []), detections.get(image_id, [])
        paired_true, paired_det = set(), set()
        if true_boxes and dets:
            ious = iou_xywh(np.asarray([b for _, b in dets], dtype=np.float64), np.asarray([b for _, b in true_boxes], dtype=np.float64))
            for d, t in sorted(zip(*np.nonzero(ious > iou_thres)), key=lambda pair: -ious[pair]):
                if d not in paired_det and t not in paired_true:
                    paired_det.add(d)
                    paired_true.add(t)
                    matrix[dets[d][0], true_boxes[t][0]] += 1
        for t, (cls, _) in enumerate(true_boxes):
            if t not in paired_true:
                matrix[nc, cls] += 1
        for d, (cls, _) in enumerate(dets):
            if d not in paired_det:
                matrix[cls, nc] += 1
    return matrix
