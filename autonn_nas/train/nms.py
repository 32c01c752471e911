"""Non-maximum suppression of decoded YOLO predictions (torchvision's batched NMS, per class)."""
from __future__ import annotations

from typing import Sequence

import torch
from torchvision.ops import batched_nms

from autonn_nas.train.boxes import xywh_to_xyxy

# Boxes handed to NMS per image at most (highest confidence first): bounds the O(n^2) cost when an
# untrained model scores everything above a low threshold.
MAX_BOXES_INTO_NMS = 30000
MIN_BOX_SIDE = 2.0  # pixels; thinner boxes are dropped before NMS


def non_max_suppression(
    pred: torch.Tensor,
    conf_thres: float = 0.001,
    iou_thres: float = 0.65,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    multi_label: bool = False,
) -> list[torch.Tensor]:
    """Per image, (n, 6) detections [x1, y1, x2, y2, confidence, class] sorted by confidence.

    `pred` is the eval-mode model output (bs, N, 5 + nc): xywh in input pixels, objectness and class
    probabilities (already sigmoid). Confidence = objectness * class probability. With `multi_label`
    a box yields one detection per class above `conf_thres` (better mAP, slower); otherwise its best class.
    NMS is per class: boxes of different classes never suppress each other.
    """
    if not 0.0 <= conf_thres <= 1.0 or not 0.0 <= iou_thres <= 1.0:
        raise ValueError(f"conf_thres and iou_thres must be within 0..1, got {conf_thres} and {iou_thres}")
    output: list[torch.Tensor] = []
    wanted = None if classes is None else torch.as_tensor(list(classes), device=pred.device)
    for image_pred in pred:
        image_pred = image_pred.float()
        image_pred = image_pred[image_pred[:, 4] > conf_thres]
        wh = image_pred[:, 2:4]
        image_pred = image_pred[(wh[:, 0] >= MIN_BOX_SIDE) & (wh[:, 1] >= MIN_BOX_SIDE)]
        if not image_pred.shape[0]:
            output.append(torch.zeros((0, 6), device=pred.device))
            continue
        scores = image_pred[:, 5:] * image_pred[:, 4:5]
        boxes = xywh_to_xyxy(image_pred[:, :4])
        if multi_label:
            box_index, cls = (scores > conf_thres).nonzero(as_tuple=True)
            detections = torch.cat((boxes[box_index], scores[box_index, cls, None], cls[:, None].float()), dim=1)
        else:
            conf, cls = scores.max(dim=1, keepdim=True)
            detections = torch.cat((boxes, conf, cls.float()), dim=1)[conf.view(-1) > conf_thres]
        if wanted is not None:
            detections = detections[(detections[:, 5:6] == wanted).any(dim=1)]
        if detections.shape[0] > MAX_BOXES_INTO_NMS:
            detections = detections[detections[:, 4].argsort(descending=True)[:MAX_BOXES_INTO_NMS]]
        keep = batched_nms(detections[:, :4], detections[:, 4], detections[:, 5].long(), iou_thres)[:max_det]
        output.append(detections[keep])
    return output
