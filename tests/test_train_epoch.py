"""Optimizer groups, the warm-up + cosine schedule, accumulation and one training epoch on a tiny head."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from autonn_nas.train.ema import ModelEMA
from autonn_nas.train.epoch import train_one_epoch
from autonn_nas.train.hyp import DEFAULT_HYP
from autonn_nas.train.loss import DetectionLoss
from autonn_nas.train.optim import accumulate_steps, build_optimizer
from autonn_nas.train.schedule import WarmupCosineSchedule, warmup_iterations
from test_train_loss import TinyDetector


def test_optimizer_has_three_groups_with_decay_only_on_weights():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.Conv2d(8, 4, 1))
    optimizer = build_optimizer(model, DEFAULT_HYP, batch_size=16)
    norm, weights, bias = optimizer.param_groups
    assert [len(g["params"]) for g in (norm, weights, bias)] == [1, 2, 2]
    assert norm["weight_decay"] == 0 and bias["weight_decay"] == 0
    assert weights["weight_decay"] == pytest.approx(DEFAULT_HYP["weight_decay"])  # 16 * 4 / 64
    assert optimizer.defaults["nesterov"]
    # batch 24 -> accumulate 3 -> 72 images per step: decay scaled by 72 / 64
    assert accumulate_steps(24) == 3
    assert build_optimizer(model, DEFAULT_HYP, 24).param_groups[1]["weight_decay"] == pytest.approx(DEFAULT_HYP["weight_decay"] * 72 / 64)
    assert accumulate_steps(128) == 1


def test_schedule_warms_up_then_decays_to_lrf():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    optimizer = build_optimizer(model, DEFAULT_HYP, batch_size=16)
    schedule = WarmupCosineSchedule(optimizer, DEFAULT_HYP, epochs=100, iters_per_epoch=10, batch_size=16)
    assert schedule.warmup_iters == 100  # 3 epochs = 30 iterations, raised to the minimum of 100
    schedule.step(0)
    norm, weights, bias = schedule.lrs()
    assert norm == 0.0 and weights == 0.0 and bias == pytest.approx(DEFAULT_HYP["warmup_bias_lr"])
    assert optimizer.param_groups[0]["momentum"] == pytest.approx(DEFAULT_HYP["warmup_momentum"])
    assert schedule.accumulate(0) == 1 and schedule.accumulate(100) == 4
    schedule.step(100)
    assert schedule.lrs()[1] == pytest.approx(DEFAULT_HYP["lr0"] * schedule.lr_factor(100))
    assert optimizer.param_groups[0]["momentum"] == DEFAULT_HYP["momentum"]
    schedule.step(1000)
    assert schedule.lrs() == pytest.approx([DEFAULT_HYP["lr0"] * DEFAULT_HYP["lrf"]] * 3)
    # a short run is never all warm-up
    assert warmup_iterations(3.0, 1, 30) == 10 and warmup_iterations(0.0, 5, 50) == 0


def _batches(n: int, bs: int = 2, size: int = 64):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        images = (torch.rand(bs, 3, size, size, generator=g) * 255).to(torch.uint8)
        targets = torch.tensor([[0, 0, 0.3, 0.4, 0.25, 0.3], [1, 2, 0.6, 0.6, 0.4, 0.5]])
        out.append((images, targets, ["a.jpg", "b.jpg"], [None, None]))
    return out


def test_train_one_epoch_lowers_the_loss_and_calls_hooks():
    torch.manual_seed(0)
    model = TinyDetector(nc=3)
    hyp = dict(DEFAULT_HYP, warmup_epochs=0.0, lr0=0.02)
    loader = _batches(4)
    optimizer = build_optimizer(model, hyp, batch_size=2, nominal_batch=4)  # accumulate 2 batches
    schedule = WarmupCosineSchedule(optimizer, hyp, epochs=15, iters_per_epoch=len(loader), batch_size=2, nominal_batch=4)
    ema = ModelEMA(model)
    loss_fn = DetectionLoss(model, hyp)
    starts, steps = [], []
    results = [
        train_one_epoch(model, loader, loss_fn, optimizer, schedule, epoch, torch.device("cpu"), ema=ema, progress=epoch == 0,
                        on_batch_start=starts.append, on_optimizer_step=steps.append)
        for epoch in range(15)
    ]
    assert starts[:5] == [0, 1, 2, 3, 4] and len(starts) == 60
    assert steps[:2] == [1, 3] and results[0].optimizer_steps == 2
    assert ema.updates == 30
    assert results[-1].total < 0.7 * results[0].total
    assert results[0].batches == 4 and results[0].images == 8 and 0.0 <= results[0].data_share < 1.0
    assert results[-1].lr[1] == pytest.approx(hyp["lr0"] * schedule.lr_factor(59))


def test_partial_accumulation_is_applied_at_the_end_of_the_epoch():
    model = TinyDetector(nc=3)
    hyp = dict(DEFAULT_HYP, warmup_epochs=0.0)
    loader = _batches(3)
    optimizer = build_optimizer(model, hyp, batch_size=2, nominal_batch=8)  # accumulate 4 > 3 batches
    schedule = WarmupCosineSchedule(optimizer, hyp, epochs=1, iters_per_epoch=3, batch_size=2, nominal_batch=8)
    before = [p.detach().clone() for p in model.parameters()]
    result = train_one_epoch(model, loader, DetectionLoss(model, hyp), optimizer, schedule, 0, torch.device("cpu"), progress=False)
    assert result.optimizer_steps == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


class _LossTurningNaN:
    """The detection loss, except that batch `bad_batch` (counted from 0) returns NaN."""

    def __init__(self, loss_fn, bad_batch: int):
        self.loss_fn, self.bad_batch, self.calls = loss_fn, bad_batch, 0

    def __call__(self, predictions, targets):
        loss, items = self.loss_fn(predictions, targets)
        self.calls += 1
        if self.calls - 1 == self.bad_batch:
            loss = loss * float("nan")
        return loss, items


@pytest.mark.parametrize("reads", ["every_batch", "deferred"])
def test_a_non_finite_loss_stops_training_and_names_its_batch(reads, monkeypatch):
    """On a CPU the loss is read every batch; on CUDA reads are deferred (no host sync per step), and the
    divergence is still caught, by the epoch's end at the latest, with the batch where it began."""
    from autonn_nas.train import epoch as epoch_module

    if reads == "deferred":
        monkeypatch.setattr(epoch_module._HostReads, "reads_every_batch", staticmethod(lambda device: False))  # as on CUDA
        monkeypatch.setattr(epoch_module._HostReads, "READ_INTERVAL_S", float("inf"))  # no read before the epoch's end
    torch.manual_seed(0)
    model = TinyDetector(nc=3)
    hyp = dict(DEFAULT_HYP, warmup_epochs=0.0)
    loader = _batches(4)
    optimizer = build_optimizer(model, hyp, batch_size=2, nominal_batch=2)
    schedule = WarmupCosineSchedule(optimizer, hyp, epochs=1, iters_per_epoch=4, batch_size=2, nominal_batch=2)
    loss_fn = _LossTurningNaN(DetectionLoss(model, hyp), bad_batch=2)
    with pytest.raises(epoch_module.TrainingDiverged, match=r"loss became nan at epoch 0, batch 2 "):
        train_one_epoch(model, loader, loss_fn, optimizer, schedule, 0, torch.device("cpu"), progress=False)
    assert loss_fn.calls == (3 if reads == "every_batch" else 4)
