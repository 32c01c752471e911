"""COCO evaluation: ground truth as predictions scores 1.0, shifted boxes score lower, P/R at max F1."""
from __future__ import annotations

import numpy as np
import pytest

from autonn_nas.train.coco_eval import coco_ground_truth, coco_map, detections_to_coco
from autonn_nas.train.metrics import precision_recall

NAMES = ["person", "car", "dog"]
SHAPES = [(640, 480), (500, 375), (320, 320)]
LABELS = [
    np.array([[0, 0.5, 0.5, 0.2, 0.4], [1, 0.2, 0.3, 0.1, 0.1], [1, 0.8, 0.7, 0.25, 0.2]]),
    np.array([[2, 0.4, 0.6, 0.3, 0.3]]),
    np.zeros((0, 5)),  # a background image
]


def _gt_as_predictions(shift: float = 0.0, score: float = 0.9) -> list[dict]:
    results = []
    for image_id, (labels, (w, h)) in enumerate(zip(LABELS, SHAPES)):
        rows = []
        for cls, cx, cy, bw, bh in labels:
            x1, y1 = (cx - bw / 2) * w + shift * bw * w, (cy - bh / 2) * h
            rows.append([x1, y1, x1 + bw * w, y1 + bh * h, score, cls])
        results += detections_to_coco(np.array(rows).reshape(-1, 6), image_id)
    return results


@pytest.fixture
def ground_truth() -> dict:
    return coco_ground_truth(LABELS, SHAPES, NAMES)


def test_ground_truth_conversion(ground_truth):
    assert [im["id"] for im in ground_truth["images"]] == [0, 1, 2]
    assert len(ground_truth["annotations"]) == 4 and min(a["id"] for a in ground_truth["annotations"]) == 1
    first = ground_truth["annotations"][0]
    assert first["bbox"] == pytest.approx([256.0, 144.0, 128.0, 192.0])
    assert first["area"] == pytest.approx(128 * 192)
    assert [c["id"] for c in ground_truth["categories"]] == [0, 1, 2]


def test_ground_truth_given_as_predictions_scores_one(ground_truth):
    results = _gt_as_predictions()
    map50, map50_95 = coco_map(ground_truth, results)
    assert map50 == pytest.approx(1.0) and map50_95 == pytest.approx(1.0)
    point = precision_recall(ground_truth, results)
    assert point.precision == pytest.approx(1.0) and point.recall == pytest.approx(1.0)


@pytest.mark.parametrize("shift", [0.2, 0.5])
def test_shifted_predictions_score_lower(ground_truth, shift):
    map50, map50_95 = coco_map(ground_truth, _gt_as_predictions(shift=shift))
    assert map50_95 < 1.0
    if shift >= 0.5:  # IoU of a box shifted by half its width is 1/3 < 0.5
        assert map50 == pytest.approx(0.0)
        assert precision_recall(ground_truth, _gt_as_predictions(shift=shift)).recall == 0.0


def test_missing_and_false_detections_lower_recall_and_precision(ground_truth):
    results = _gt_as_predictions()
    half = [r for r in results if not (r["image_id"] == 0 and r["category_id"] == 1)]  # both cars missed
    point = precision_recall(ground_truth, half)
    assert point.recall == pytest.approx(2 / 3)  # mean over classes: person 1, car 0, dog 1
    false = results + [{"image_id": 2, "category_id": 0, "bbox": [1, 1, 50, 50], "score": 0.95}]
    point = precision_recall(ground_truth, false)
    assert point.recall == pytest.approx(1.0) and point.precision < 1.0
    map50, _ = coco_map(ground_truth, false)
    assert map50 < 1.0


def test_no_predictions_scores_zero_without_crashing(ground_truth):
    assert coco_map(ground_truth, []) == (0.0, 0.0)
    point = precision_recall(ground_truth, [])
    assert (point.precision, point.recall) == (0.0, 0.0)
