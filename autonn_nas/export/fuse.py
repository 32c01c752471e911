"""Fold batch norm into the preceding convolution, for export and inference (the one place that does it).

Only `Conv` blocks (conv -> BN -> activation) are folded. The CSP blocks' own BN sits after a concatenation
of two branches, not after a single conv, so it stays a BatchNorm (a cheap per-channel affine at inference).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from autonn_nas.models.common import Conv


def fuse_conv_bn(model: nn.Module, inplace: bool = False) -> nn.Module:
    """A copy of `model` (or `model` itself when inplace) in eval mode, every Conv's BN folded into its conv.

    The folded conv gets a bias; the BN is replaced by an Identity, so Conv.forward and the state_dict
    layout of everything else are untouched. Call on a model whose BN statistics are final (eval)."""
    fused = model if inplace else copy.deepcopy(model)
    fused.eval()
    with torch.no_grad():
        for module in fused.modules():
            if isinstance(module, Conv) and isinstance(module.bn, nn.BatchNorm2d):
                module.conv = fuse_conv_bn_eval(module.conv, module.bn)
                module.bn = nn.Identity()
    return fused


def count_batch_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
