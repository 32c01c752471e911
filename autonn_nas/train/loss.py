"""The Scaled-YOLOv4 / YOLOv5 detection loss.

Targets are (n, 6) rows [image index in batch, class, cx, cy, w, h] normalised to the input image.
Each target is matched to every anchor whose width and height are within `anchor_t` times the target's
(both ways), in its own grid cell and the two neighbouring cells nearest to its centre (so a target
has up to 3 cells x na anchors per level). Predictions at matched places get a CIoU box loss and a BCE
class loss; every place gets a BCE objectness loss whose target is the (detached) IoU of the matched
prediction, 0 elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from autonn_nas.train.boxes import bbox_iou

# Objectness weight per level, small strides first: the fine levels have many more cells that are
# almost all negatives, so their objectness loss is weighted up.
_LEVEL_BALANCE = {3: (4.0, 1.0, 0.4), 4: (4.0, 1.0, 0.25, 0.06), 5: (4.0, 1.0, 0.25, 0.06, 0.02)}

# Centre cell plus the four neighbours; two of the four are chosen per target (those on the side of the
# cell the centre lies in). Predicted xy spans (-0.5, 1.5) of a cell, so those neighbours can reach it.
_NEIGHBOUR_OFFSETS = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32)
_NEIGHBOUR_REACH = 0.5


def level_balance(nl: int) -> tuple[float, ...]:
    """Objectness weights per level; 1.0 for level counts without a tuned setting."""
    return _LEVEL_BALANCE.get(nl, (1.0,) * nl)


def scaled_loss_gains(hyp: Mapping[str, float], nc: int, nl: int, img_size: int) -> dict[str, float]:
    """`hyp` with box/obj/cls gains adapted to the model and input size (the YOLOv5 recipe).

    The default gains were tuned for 80 classes, 3 levels and 640 px; the objectness term sums over
    cells, so it is scaled with the number of cells (img_size^2), classification with the class count.
    """
    scaled = dict(hyp)
    levels = 3.0 / nl
    scaled["box"] = hyp["box"] * levels
    scaled["cls"] = hyp["cls"] * nc / 80.0 * levels
    scaled["obj"] = hyp["obj"] * (img_size / 640.0) ** 2 * levels
    return scaled


class FocalBCE(nn.Module):
    """BCE-with-logits with focal modulation (Lin et al., 2017); reduction 'mean'."""

    def __init__(self, bce: nn.BCEWithLogitsLoss, gamma: float, alpha: float = 0.25):
        super().__init__()
        self.bce, self.gamma, self.alpha = bce, gamma, alpha
        self.bce.reduction = "none"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.bce(logits, target)
        prob = logits.sigmoid()
        p_t = target * prob + (1 - target) * (1 - prob)
        alpha_t = target * self.alpha + (1 - target) * (1 - self.alpha)
        return (loss * alpha_t * (1.0 - p_t) ** self.gamma).mean()


@dataclass
class LevelTargets:
    """Matched targets of one level: indices into (bs, na, ny, nx) and what to regress there."""

    image: torch.Tensor  # (m,) image index in the batch
    anchor: torch.Tensor  # (m,) anchor index
    grid_y: torch.Tensor  # (m,)
    grid_x: torch.Tensor  # (m,)
    box: torch.Tensor  # (m, 4) cx, cy relative to the cell's corner, w, h; in grid units
    anchor_wh: torch.Tensor  # (m, 2) matched anchor in grid units
    cls: torch.Tensor  # (m,) class index


def _detect_of(model: Any) -> Any:
    model = getattr(model, "module", model)  # DistributedDataParallel wraps the model
    return getattr(model, "detect", model)


def build_targets(predictions: Sequence[torch.Tensor], targets: torch.Tensor, anchors: torch.Tensor, anchor_t: float) -> list[LevelTargets]:
    """Assign targets to (level, anchor, cell) places. `anchors` is (nl, na, 2) in stride units."""
    device = targets.device
    nl, na = anchors.shape[:2]
    nt = targets.shape[0]
    anchor_index = torch.arange(na, device=device, dtype=targets.dtype).view(na, 1).repeat(1, nt)
    # (na, nt, 7): every target once per anchor, the anchor index appended
    per_anchor = torch.cat((targets.repeat(na, 1, 1), anchor_index[..., None]), dim=2)
    offsets = _NEIGHBOUR_OFFSETS.to(device=device, dtype=targets.dtype) * _NEIGHBOUR_REACH
    gain = torch.ones(7, device=device, dtype=targets.dtype)

    levels: list[LevelTargets] = []
    for i in range(nl):
        level_anchors = anchors[i].to(device=device, dtype=targets.dtype)
        _, _, ny, nx, _ = predictions[i].shape
        gain[2:6] = torch.tensor([nx, ny, nx, ny], device=device, dtype=targets.dtype)
        t = per_anchor * gain  # boxes in grid units
        cell_offsets = torch.zeros((0, 2), device=device, dtype=targets.dtype)
        if nt:
            ratio = t[..., 4:6] / level_anchors[:, None]
            matched = torch.max(ratio, 1.0 / ratio).max(dim=2).values < anchor_t
            t = t[matched]
            xy = t[:, 2:4]
            xy_from_far = gain[[2, 3]] - xy
            left, top = ((xy % 1 < _NEIGHBOUR_REACH) & (xy > 1)).T
            right, bottom = ((xy_from_far % 1 < _NEIGHBOUR_REACH) & (xy_from_far > 1)).T
            use = torch.stack((torch.ones_like(left), left, top, right, bottom))
            t = t.repeat((5, 1, 1))[use]
            cell_offsets = (torch.zeros_like(xy)[None] + offsets[:, None])[use]
        else:
            t = per_anchor[0][:0]
        image, cls = t[:, 0].long(), t[:, 1].long()
        xy, wh, anchor = t[:, 2:4], t[:, 4:6], t[:, 6].long()
        cell = (xy - cell_offsets).long()
        grid_x, grid_y = cell[:, 0].clamp(0, nx - 1), cell[:, 1].clamp(0, ny - 1)
        levels.append(
            LevelTargets(
                image=image,
                anchor=anchor,
                grid_y=grid_y,
                grid_x=grid_x,
                box=torch.cat((xy - cell, wh), dim=1),
                anchor_wh=level_anchors[anchor],
                cls=cls,
            )
        )
    return levels


class DetectionLoss:
    """Callable loss: `loss, items = DetectionLoss(model, hyp)(predictions, targets)`.

    `predictions` is the train-mode output of the model: nl tensors (bs, na, ny, nx, nc + 5) of logits.
    Returns (total * batch size, detached tensor [box, obj, cls, total]); the batch-size factor keeps the
    gradient scale independent of how a nominal batch is split into accumulation steps.
    The anchors are read from the model at every call, so moving the model between devices is safe.
    """

    def __init__(self, model: Any, hyp: Mapping[str, float], label_smoothing: float | None = None):
        self.detect = _detect_of(model)
        self.hyp = dict(hyp)
        self.nc: int = int(self.detect.nc)
        self.balance = level_balance(int(self.detect.nl))
        smoothing = float(hyp.get("label_smoothing", 0.0) if label_smoothing is None else label_smoothing)
        # class targets: 1 - eps/2 for the true class, eps/2 for the others
        self.cls_positive, self.cls_negative = 1.0 - 0.5 * smoothing, 0.5 * smoothing
        self._pos_weight = (float(hyp.get("cls_pw", 1.0)), float(hyp.get("obj_pw", 1.0)))

    def _criteria(self, device: torch.device) -> tuple[nn.Module, nn.Module]:
        bce_cls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([self._pos_weight[0]], device=device))
        bce_obj = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([self._pos_weight[1]], device=device))
        gamma = float(self.hyp.get("fl_gamma", 0.0))
        if gamma > 0:
            return FocalBCE(bce_cls, gamma), FocalBCE(bce_obj, gamma)
        return bce_cls, bce_obj

    def __call__(self, predictions: Sequence[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = predictions[0].device
        targets = targets.to(device=device, dtype=torch.float32)
        bce_cls, bce_obj = self._criteria(device)
        loss_box = torch.zeros(1, device=device)
        loss_obj = torch.zeros(1, device=device)
        loss_cls = torch.zeros(1, device=device)
        levels = build_targets(predictions, targets, self.detect.anchors.detach(), float(self.hyp["anchor_t"]))

        for level, (pred, match) in enumerate(zip(predictions, levels)):
            pred = pred.float()  # losses in fp32 even when the forward ran in fp16
            obj_target = torch.zeros(pred.shape[:4], device=device)
            n = match.image.shape[0]
            if n:
                picked = pred[match.image, match.anchor, match.grid_y, match.grid_x]
                pxy = picked[:, :2].sigmoid() * 2 - 0.5
                pwh = (picked[:, 2:4].sigmoid() * 2) ** 2 * match.anchor_wh
                iou = bbox_iou(torch.cat((pxy, pwh), 1), match.box, xywh=True, ciou=True).squeeze(-1)
                loss_box = loss_box + (1.0 - iou).mean()
                # objectness target = how well the box fits; several targets in one place keep the best
                score = iou.detach().clamp(min=0)
                order = score.argsort()
                obj_target[match.image[order], match.anchor[order], match.grid_y[order], match.grid_x[order]] = score[order]
                if self.nc > 1:  # with one class, objectness already says everything
                    cls_target = torch.full_like(picked[:, 5:], self.cls_negative)
                    cls_target[torch.arange(n, device=device), match.cls] = self.cls_positive
                    loss_cls = loss_cls + bce_cls(picked[:, 5:], cls_target)
            loss_obj = loss_obj + bce_obj(pred[..., 4], obj_target) * self.balance[level]

        loss_box = loss_box * self.hyp["box"]
        loss_obj = loss_obj * self.hyp["obj"]
        loss_cls = loss_cls * self.hyp["cls"]
        total = loss_box + loss_obj + loss_cls
        batch_size = predictions[0].shape[0]
        return total * batch_size, torch.cat((loss_box, loss_obj, loss_cls, total)).detach()
