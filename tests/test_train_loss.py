"""Detection loss: target assignment on a hand-made case, CIoU, and that optimising the loss lowers it."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from autonn_nas.train.boxes import bbox_iou, box_iou, xywh_to_xyxy, xyxy_to_xywh
from autonn_nas.train.hyp import DEFAULT_HYP
from autonn_nas.train.loss import DetectionLoss, build_targets, level_balance, scaled_loss_gains


class TinyDetect(nn.Module):
    """Just the attributes of the models helper's Detect layer that the loss reads."""

    def __init__(self, nc: int, anchors: torch.Tensor, strides=(8.0, 16.0, 32.0)):
        super().__init__()
        self.nc, self.no = nc, nc + 5
        self.nl, self.na = anchors.shape[:2]
        self.register_buffer("anchors", anchors.float())
        self.register_buffer("stride", torch.tensor(strides))


class TinyDetector(nn.Module):
    """Pools the image to each stride and predicts with a small conv: enough to fit a few boxes."""

    def __init__(self, nc: int = 3, na: int = 2):
        super().__init__()
        anchors = torch.tensor([[[2.0, 2.0], [4.0, 3.0]], [[2.0, 2.0], [4.0, 3.0]], [[2.0, 2.0], [4.0, 3.0]]])[:, :na]
        self.detect = TinyDetect(nc, anchors)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.SiLU(), nn.Conv2d(16, na * (nc + 5), 1)) for _ in range(3)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stride, head in zip((8, 16, 32), self.heads):
            p = head(F.avg_pool2d(x, stride))
            bs, _, ny, nx = p.shape
            out.append(p.view(bs, self.detect.na, self.detect.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return out


def _predictions(bs: int = 1, na: int = 3, no: int = 8, size: int = 64) -> list[torch.Tensor]:
    return [torch.zeros(bs, na, size // s, size // s, no) for s in (8, 16, 32)]


def test_build_targets_assigns_centre_and_two_neighbour_cells():
    # one 16x16 px box centred at (18.4, 45.6) px in a 64 px image: at stride 8 the centre is (2.3, 5.7)
    targets = torch.tensor([[0, 1, 18.4 / 64, 45.6 / 64, 0.25, 0.25]])
    anchors = torch.tensor(
        [
            [[2.0, 2.0], [10.0, 10.0], [0.2, 0.2]],  # level 0: only the first fits (ratio 1; others 5 and 10)
            [[5.0, 5.0], [5.0, 5.0], [5.0, 5.0]],  # level 1: box is 1 cell, ratio 5 > 4: nothing
            [[0.5, 0.5], [3.0, 3.0], [0.1, 0.1]],  # level 2: box is 0.5 cell; 0.5 fits exactly, 3.0 gives 6
        ]
    )
    levels = build_targets(_predictions(), targets, anchors, anchor_t=4.0)
    level0 = levels[0]
    cells = sorted(zip(level0.grid_x.tolist(), level0.grid_y.tolist()))
    # x 2.3 lies in the left half of its cell -> left neighbour; y 5.7 in the lower half -> the cell below
    assert cells == [(1, 5), (2, 5), (2, 6)]
    assert level0.anchor.tolist() == [0, 0, 0]
    assert level0.cls.tolist() == [1, 1, 1]
    offsets = sorted(tuple(round(v, 4) for v in row) for row in level0.box[:, :2].tolist())
    assert offsets == [(0.3, -0.3), (0.3, 0.7), (1.3, 0.7)]
    assert torch.allclose(level0.box[:, 2:], torch.tensor(2.0))
    assert levels[1].image.numel() == 0
    # level 2: grid 2x2, centre (0.575, 1.425): x in the right half -> the cell on the right;
    # y in the upper half -> the cell above
    assert sorted(zip(levels[2].grid_x.tolist(), levels[2].grid_y.tolist())) == [(0, 0), (0, 1), (1, 1)]
    assert levels[2].anchor.tolist() == [0, 0, 0]


def test_build_targets_without_targets_is_empty():
    levels = build_targets(_predictions(), torch.zeros((0, 6)), torch.ones(3, 3, 2), 4.0)
    assert all(level.image.numel() == 0 and level.box.shape == (0, 4) for level in levels)


def test_ciou_and_iou_definitions():
    a = torch.tensor([[10.0, 10.0, 4.0, 4.0]])
    assert bbox_iou(a, a, ciou=True).item() == pytest.approx(1.0, abs=1e-5)
    far = torch.tensor([[30.0, 10.0, 4.0, 4.0]])
    assert bbox_iou(a, far).item() == pytest.approx(0.0, abs=1e-6)
    assert bbox_iou(a, far, ciou=True).item() < 0  # the centre-distance term keeps a gradient
    half = torch.tensor([[12.0, 10.0, 4.0, 4.0]])  # overlap 2x4 of union 24
    assert bbox_iou(a, half).item() == pytest.approx(8 / 24, rel=1e-4)
    boxes1, boxes2 = torch.rand(5, 4) * 50, torch.rand(7, 4) * 50
    boxes1[:, 2:] += boxes1[:, :2]
    boxes2[:, 2:] += boxes2[:, :2]
    from torchvision.ops import box_iou as tv_box_iou

    assert torch.allclose(box_iou(boxes1, boxes2), tv_box_iou(boxes1, boxes2), atol=1e-5)
    assert torch.allclose(xyxy_to_xywh(xywh_to_xyxy(a)), a)


def test_loss_is_finite_positive_and_decreases_when_optimised():
    torch.manual_seed(0)
    model = TinyDetector(nc=3)
    images = torch.rand(2, 3, 64, 64)
    targets = torch.tensor([[0, 0, 0.3, 0.4, 0.25, 0.3], [0, 2, 0.7, 0.7, 0.4, 0.2], [1, 1, 0.5, 0.5, 0.5, 0.6]])
    loss_fn = DetectionLoss(model, DEFAULT_HYP)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    history = []
    for _ in range(30):
        loss, items = loss_fn(model(images), targets)
        assert torch.isfinite(loss) and loss.item() > 0
        assert items.shape == (4,) and not items.requires_grad
        assert items[3].item() == pytest.approx(items[:3].sum().item(), rel=1e-5)
        assert loss.item() == pytest.approx(items[3].item() * 2, rel=1e-5)  # times the batch size
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(items[3].item())
    assert history[-1] < 0.5 * history[0]


@pytest.mark.parametrize("smoothing,fl_gamma", [(0.0, 0.0), (0.1, 0.0), (0.0, 1.5)])
def test_loss_options_and_empty_targets(smoothing, fl_gamma):
    model = TinyDetector(nc=2)
    hyp = dict(DEFAULT_HYP, label_smoothing=smoothing, fl_gamma=fl_gamma)
    preds = model(torch.rand(1, 3, 64, 64))
    loss, items = DetectionLoss(model, hyp)(preds, torch.zeros((0, 6)))
    assert torch.isfinite(loss) and items[0] == 0 and items[2] == 0 and items[1] > 0
    loss.backward()  # objectness alone still trains the model towards "nothing here"


def test_level_balance_and_gain_scaling():
    assert level_balance(3) == (4.0, 1.0, 0.4)
    assert len(level_balance(4)) == 4 and level_balance(2) == (1.0, 1.0)
    gains = scaled_loss_gains(DEFAULT_HYP, nc=80, nl=3, img_size=640)
    assert (gains["box"], gains["obj"], gains["cls"]) == (DEFAULT_HYP["box"], DEFAULT_HYP["obj"], DEFAULT_HYP["cls"])
    small = scaled_loss_gains(DEFAULT_HYP, nc=8, nl=3, img_size=320)
    assert small["obj"] == pytest.approx(DEFAULT_HYP["obj"] / 4) and small["cls"] == pytest.approx(DEFAULT_HYP["cls"] / 10)


def test_build_targets_uses_no_neighbour_outside_the_grid():
    # centre (0.3, 0.3) cells at stride 8: both halves point outside the image, so only the centre cell
    targets = torch.tensor([[0, 0, 2.4 / 64, 2.4 / 64, 0.25, 0.25]])
    anchors = torch.tensor([[[2.0, 2.0]], [[100.0, 100.0]], [[100.0, 100.0]]])
    levels = build_targets(_predictions(na=1), targets, anchors, anchor_t=4.0)
    assert list(zip(levels[0].grid_x.tolist(), levels[0].grid_y.tolist())) == [(0, 0)]
