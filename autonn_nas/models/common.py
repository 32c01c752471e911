"""Building blocks of YOLOv4-P5 with Scaled-YOLOv4's semantics and attribute names.

The attribute names (cv1, cv2, bn, m, ...) are part of the interface: they make the state_dict keys
match Scaled-YOLOv4's (`model.<i>.cv1.conv.weight`), so its checkpoints load strictly.
Blocks take an optional activation name and bottleneck kernel so that the search candidates are the
same classes as the concrete blocks (a candidate's state_dict layout is the derived block's).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .activations import DEFAULT_ACTIVATION, get_activation

# Scaled-YOLOv4's initialize_weights sets these on every BatchNorm2d.
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


def autopad(k: int, p: int | None = None) -> int:
    """'Same' padding for odd kernels at stride 1."""
    return k // 2 if p is None else p


def _activation(act: bool | str) -> nn.Module:
    if act is True:
        return get_activation(DEFAULT_ACTIVATION)
    if act is False or act is None:
        return nn.Identity()
    return get_activation(act)


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm -> activation."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, act: bool | str = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p), groups=g, bias=False)
        self.bn = batch_norm(c2)
        self.act = _activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """1x1 Conv then k x k Conv, with a residual add when shortcut and c1 == c2."""

    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1, e: float = 0.5, k: int = 3, act: bool | str = True):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1, act=act)
        self.cv2 = Conv(c_, c2, k, 1, g=g, act=act)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class BottleneckCSP(nn.Module):
    """CSP bottleneck of the backbone: hidden c2*e, two plain 1x1 convs, BN over the concatenation."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv3 = nn.Conv2d(c_, c_, 1, 1, bias=False)
        self.cv4 = Conv(2 * c_, c2, 1, 1)
        self.bn = batch_norm(2 * c_)
        self.act = _activation(True)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y1 = self.cv3(self.m(self.cv1(x)))
        y2 = self.cv2(x)
        return self.cv4(self.act(self.bn(torch.cat((y1, y2), dim=1))))


class BottleneckCSP2(nn.Module):
    """CSP bottleneck of the neck (hidden = c2). `k`, `act` and `hidden` make the search candidates:
    k is the bottlenecks' spatial kernel, act the activation of every conv and of the post-BN act, hidden
    the hidden channels relative to c2 (the extended search space's narrower blocks; Scaled-YOLOv4: 1.0)."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5, k: int = 3,
                 act: str = DEFAULT_ACTIVATION, hidden: float = 1.0):
        super().__init__()
        # Scaled-YOLOv4 ignores e here (kept in the signature for YAML compatibility): its hidden width is c2
        c_ = int(c2 * hidden)
        self.cv1 = Conv(c1, c_, 1, 1, act=act)
        self.cv2 = nn.Conv2d(c_, c_, 1, 1, bias=False)
        self.cv3 = Conv(2 * c_, c2, 1, 1, act=act)
        self.bn = batch_norm(2 * c_)
        self.act = _activation(act)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, e=1.0, k=k, act=act) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv1(x)
        y1 = self.m(x1)
        y2 = self.cv2(x1)
        return self.cv3(self.act(self.bn(torch.cat((y1, y2), dim=1))))


class SPPCSP(nn.Module):
    """CSP spatial pyramid pooling (max-pools 5/9/13) of Scaled-YOLOv4."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5, k: Sequence[int] = (5, 9, 13)):
        super().__init__()
        c_ = int(2 * c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = nn.Conv2d(c1, c_, 1, 1, bias=False)
        self.cv3 = Conv(c_, c_, 3, 1)
        self.cv4 = Conv(c_, c_, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=x, stride=1, padding=x // 2) for x in k)
        self.cv5 = Conv(4 * c_, c_, 1, 1)
        self.cv6 = Conv(c_, c_, 3, 1)
        self.bn = batch_norm(2 * c_)
        self.act = _activation(True)
        self.cv7 = Conv(2 * c_, c2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.cv4(self.cv3(self.cv1(x)))
        y1 = self.cv6(self.cv5(torch.cat([x1] + [pool(x1) for pool in self.m], 1)))
        y2 = self.cv2(x)
        return self.cv7(self.act(self.bn(torch.cat((y1, y2), dim=1))))


class Concat(nn.Module):
    def __init__(self, dimension: int = 1):
        super().__init__()
        self.d = dimension

    def forward(self, x: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(x, self.d)


class Detect(nn.Module):
    """YOLO detection head: one 1x1 conv (with bias) per level, na * (nc + 5) outputs.

    Buffers as Scaled-YOLOv4 registers them: `anchors` (nl, na, 2) in units of the level's stride
    (divided once the strides are known) and `anchor_grid` (nl, 1, na, 1, 1, 2) in pixels.
    `stride` is a non-persistent buffer: it follows .to(device) but is not in the state_dict,
    as in Scaled-YOLOv4 where it is a plain attribute.
    """

    def __init__(self, nc: int, anchors: Sequence[Sequence[float]], ch: Sequence[int]):
        super().__init__()
        self.nc = nc
        self.no = nc + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        a = torch.tensor(anchors, dtype=torch.float32).view(self.nl, -1, 2)
        # Mean anchor area per level, kept as plain numbers so the order check also works on 'meta' tensors.
        self._anchor_areas = [sum(row[j] * row[j + 1] for j in range(0, len(row), 2)) / self.na for row in anchors]
        self.register_buffer("anchors", a)
        self.register_buffer("anchor_grid", a.clone().view(self.nl, 1, -1, 1, 1, 2))
        self.register_buffer("stride", torch.ones(self.nl), persistent=False)
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def set_strides(self, strides: Sequence[float]) -> None:
        """Record the level strides and express `anchors` in stride units (called once, at build)."""
        self.level_strides = tuple(float(s) for s in strides)  # plain numbers, readable on 'meta' twins too
        self.stride.copy_(torch.as_tensor(strides, dtype=torch.float32))
        self.anchors.div_(self.stride.view(-1, 1, 1))
        self._check_anchor_order(list(strides))

    def _check_anchor_order(self, strides: list[float]) -> None:
        # Larger anchors belong to coarser levels; a YAML written the other way round is flipped (as YOLOv5 does).
        area = self._anchor_areas
        if len(area) > 1 and (area[-1] > area[0]) != (strides[-1] > strides[0]):
            self.anchors.copy_(self.anchors.flip(0))
            self.anchor_grid.copy_(self.anchor_grid.flip(0))

    def sync_anchor_grid(self) -> None:
        """Refresh the pixel `anchor_grid` from `anchors` after the anchors were changed (e.g. by autoanchor)."""
        self.anchor_grid.copy_((self.anchors * self.stride.view(-1, 1, 1)).view_as(self.anchor_grid))

    def initialize_biases(self) -> None:
        """YOLOv5's prior: about 8 objects per 640 image, and 0.6/(nc-0.99) class probability."""
        if self.stride.is_meta:  # a shape-only twin (FLOP counting) has no values to initialise
            return
        with torch.no_grad():
            for conv, s in zip(self.m, self.stride.tolist()):
                b = conv.bias.view(self.na, -1)
                b[:, 4] += math.log(8 / (640 / s) ** 2)
                b[:, 5:] += math.log(0.6 / (self.nc - 0.99))

    def forward(self, x: list[torch.Tensor]):
        raw, decoded = [], []
        for i in range(self.nl):
            y = self.m[i](x[i])
            bs, _, ny, nx = y.shape
            y = y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            raw.append(y)
            if not self.training:
                decoded.append(self._decode(i, y))
        return raw if self.training else (torch.cat(decoded, 1), raw)

    def _decode(self, i: int, y: torch.Tensor) -> torch.Tensor:
        bs, _, ny, nx, _ = y.shape
        yv, xv = torch.meshgrid(torch.arange(ny, device=y.device), torch.arange(nx, device=y.device), indexing="ij")
        grid = torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).to(y.dtype)
        # Pixel anchors from `anchors` (the source of truth that autoanchor updates), not the cached anchor_grid.
        anchor_px = (self.anchors[i] * self.stride[i]).view(1, self.na, 1, 1, 2).to(y.dtype)
        p = y.sigmoid()
        xy = (p[..., 0:2] * 2.0 - 0.5 + grid) * self.stride[i]
        wh = (p[..., 2:4] * 2) ** 2 * anchor_px
        return torch.cat((xy, wh, p[..., 4:]), -1).view(bs, -1, self.no)
