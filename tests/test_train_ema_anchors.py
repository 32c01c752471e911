"""EMA of weights and the anchor-fit check."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from autonn_nas.train.anchors import check_anchor_fit, label_wh_at_size
from autonn_nas.train.ema import ModelEMA
from autonn_nas.utils.log import get_logger


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))


def test_ema_ramps_up_follows_the_model_and_round_trips():
    torch.manual_seed(0)
    model = _net()
    ema = ModelEMA(model, decay=0.9, tau=1.0)
    assert ema.decay() == 0.0
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model.train()(torch.rand(2, 3, 4, 4))  # moves BN running statistics (buffers)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1))
    assert ema.updates == 1
    expected = d * (model[0].weight - 1.0) + (1 - d) * model[0].weight
    assert torch.allclose(ema.ema[0].weight, expected, atol=1e-6)
    assert torch.allclose(ema.ema[1].running_mean, (1 - d) * model[1].running_mean, atol=1e-6)
    assert ema.ema[1].num_batches_tracked.item() == 1
    assert not any(p.requires_grad for p in ema.ema.parameters())

    restored = ModelEMA(_net())
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 1 and restored.decay() == pytest.approx(ema.decay())
    assert torch.equal(restored.ema[0].weight, ema.ema[0].weight)


class _Detect(nn.Module):
    def __init__(self):
        super().__init__()
        # pixel anchors 16x16 / 64x32 / 256x256 at strides 8, 16, 32
        self.register_buffer("anchors", torch.tensor([[[2.0, 2.0]], [[4.0, 2.0]], [[8.0, 8.0]]]))
        self.register_buffer("stride", torch.tensor([8.0, 16.0, 32.0]))


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.detect = _Detect()


def test_anchor_fit_recall_and_warning():
    model = _Model()
    bpr, per_box = check_anchor_fit(np.array([[16, 16], [64, 32], [250, 260], [30, 20]]), model)
    assert bpr == 1.0 and per_box >= 1.0
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = get_logger()
    logger.addHandler(handler)
    try:
        bpr, _ = check_anchor_fit(np.array([[16, 16], [1000, 10], [3, 300], [64, 32]]), model)
    finally:
        logger.removeHandler(handler)
    assert bpr == pytest.approx(0.5)
    assert any(r.levelno == logging.WARNING and "not re-fitted" in r.getMessage() for r in records)


def test_label_sizes_follow_the_letterbox_scale():
    wh = label_wh_at_size([np.array([[0, 0.5, 0.5, 0.5, 0.25]]), np.zeros((0, 5))], [(640, 480), (100, 100)], 320)
    assert np.allclose(wh, [[160.0, 60.0]])
