"""Box geometry used by the loss, NMS and evaluation: format conversion and IoU variants.

Kept in one place so that the loss (CIoU), matching and evaluation agree on the same definitions.
"""
from __future__ import annotations

import math

import torch

_EPS = 1e-7


def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) centre x, centre y, width, height -> corners x1, y1, x2, y2."""
    xy, wh = boxes[..., :2], boxes[..., 2:4]
    return torch.cat((xy - wh / 2, xy + wh / 2), dim=-1)


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) corners -> centre x, centre y, width, height."""
    x1y1, x2y2 = boxes[..., :2], boxes[..., 2:4]
    return torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), dim=-1)


def bbox_iou(box1: torch.Tensor, box2: torch.Tensor, xywh: bool = True, ciou: bool = False) -> torch.Tensor:
    """Element-wise IoU (or Complete-IoU) of two broadcastable (..., 4) box tensors; returns (..., 1).

    CIoU = IoU - centre distance^2 / enclosing diagonal^2 - alpha * v, where v measures aspect-ratio
    disagreement (Zheng et al., 2020). It keeps a gradient when boxes do not overlap, which plain IoU lacks.
    """
    if xywh:
        box1, box2 = xywh_to_xyxy(box1), xywh_to_xyxy(box2)
    b1_x1, b1_y1, b1_x2, b1_y2 = box1.unbind(-1)
    b2_x1, b2_y1, b2_x2, b2_y2 = box2.unbind(-1)
    w1, h1 = b1_x2 - b1_x1, (b1_y2 - b1_y1).clamp(min=_EPS)
    w2, h2 = b2_x2 - b2_x1, (b2_y2 - b2_y1).clamp(min=_EPS)

    inter = (torch.min(b1_x2, b2_x2) - torch.max(b1_x1, b2_x1)).clamp(min=0) * (
        torch.min(b1_y2, b2_y2) - torch.max(b1_y1, b2_y1)
    ).clamp(min=0)
    union = w1 * h1 + w2 * h2 - inter + _EPS
    iou = inter / union
    if ciou:
        enclose_w = torch.max(b1_x2, b2_x2) - torch.min(b1_x1, b2_x1)
        enclose_h = torch.max(b1_y2, b2_y2) - torch.min(b1_y1, b2_y1)
        diagonal_sq = enclose_w**2 + enclose_h**2 + _EPS
        centre_dist_sq = ((b2_x1 + b2_x2 - b1_x1 - b1_x2) ** 2 + (b2_y1 + b2_y2 - b1_y1 - b1_y2) ** 2) / 4
        v = (4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
        with torch.no_grad():
            alpha = v / (v - iou + (1 + _EPS))
        iou = iou - (centre_dist_sq / diagonal_sq + v * alpha)
    return iou.unsqueeze(-1)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of (N, 4) and (M, 4) xyxy boxes -> (N, M)."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]).clamp(min=0) * (boxes1[:, 3] - boxes1[:, 1]).clamp(min=0)
    area2 = (boxes2[:, 2] - boxes2[:, 0]).clamp(min=0) * (boxes2[:, 3] - boxes2[:, 1]).clamp(min=0)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / (area1[:, None] + area2[None, :] - inter + _EPS)
