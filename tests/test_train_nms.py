"""NMS: duplicates removed within a class, kept across classes, thresholds and limits respected."""
from __future__ import annotations

import torch

from autonn_nas.train.nms import non_max_suppression


def _pred(rows: list[list[float]], nc: int = 3) -> torch.Tensor:
    """Rows [cx, cy, w, h, obj, cls] -> one image of eval-mode output with a one-hot class score."""
    out = torch.zeros(1, len(rows), 5 + nc)
    for i, (cx, cy, w, h, obj, cls) in enumerate(rows):
        out[0, i, :5] = torch.tensor([cx, cy, w, h, obj])
        out[0, i, 5 + int(cls)] = 1.0
    return out


def test_duplicates_of_one_class_are_removed_keeping_the_most_confident():
    pred = _pred([[50, 50, 20, 20, 0.9, 1], [51, 50, 20, 20, 0.8, 1], [150, 150, 20, 20, 0.7, 1]])
    (det,) = non_max_suppression(pred, conf_thres=0.25, iou_thres=0.5)
    assert det.shape == (2, 6)
    assert torch.allclose(det[0], torch.tensor([40.0, 40.0, 60.0, 60.0, 0.9, 1.0]))
    assert det[1, 4].item() == torch.tensor(0.7).item()


def test_overlapping_boxes_of_different_classes_are_kept_and_class_filter_applies():
    pred = _pred([[50, 50, 20, 20, 0.9, 0], [50, 50, 20, 20, 0.8, 2]])
    (det,) = non_max_suppression(pred, iou_thres=0.5)
    assert sorted(det[:, 5].tolist()) == [0.0, 2.0]
    (only_two,) = non_max_suppression(pred, classes=[2])
    assert only_two[:, 5].tolist() == [2.0]


def test_confidence_threshold_max_det_and_empty_images():
    pred = torch.cat([_pred([[10 + 30 * i, 10, 20, 20, 0.5 + i * 0.01, 0] for i in range(10)]), _pred([[10, 10, 20, 20, 0.0001, 0]] * 10)])
    dets = non_max_suppression(pred, conf_thres=0.001, max_det=4)
    assert dets[0].shape == (4, 6) and torch.all(dets[0][:-1, 4] >= dets[0][1:, 4])
    assert dets[1].shape == (0, 6)


def test_multi_label_emits_one_detection_per_class_above_threshold():
    pred = torch.zeros(1, 1, 8)
    pred[0, 0, :5] = torch.tensor([50, 50, 20, 20, 1.0])
    pred[0, 0, 5:] = torch.tensor([0.6, 0.3, 0.0005])
    (single,) = non_max_suppression(pred)
    (multi,) = non_max_suppression(pred, multi_label=True)
    assert single[:, 5].tolist() == [0.0]
    assert sorted(multi[:, 5].tolist()) == [0.0, 1.0]
