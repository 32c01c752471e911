"""train/state.py: the resumable training state that `train` and the search share."""
from __future__ import annotations

import io
import random

import numpy as np
import torch
from torch import nn

from autonn_nas.train.hyp import merge_hyp
from autonn_nas.train.state import TrainingState


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def _through_disk(checkpoint: dict) -> dict:
    """What a checkpoint file gives back (state_dict() shares tensors that the next step changes in place)."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _step(state: TrainingState, model: nn.Module) -> None:
    model(torch.randn(2, 3, 8, 8)).pow(2).mean().backward()
    state.optimizer.step()
    state.optimizer.zero_grad()
    state.ema.update(model)


def test_a_restored_state_continues_exactly_like_the_original():
    model = _model()
    state = TrainingState(model, merge_hyp(None), batch_size=8, device=torch.device("cpu"))
    _step(state, model)
    generator = torch.Generator().manual_seed(3)
    saved = _through_disk(state.state_dict({"loader": generator}))
    saved_weights = {k: v.clone() for k, v in model.state_dict().items()}
    expected = (torch.rand(3), np.random.rand(), random.random(), torch.rand(2, generator=generator))
    _step(state, model)
    after_one_more = {k: v.clone() for k, v in model.state_dict().items()}

    twin = _model()
    twin.load_state_dict(saved_weights)
    restored = TrainingState(twin, merge_hyp(None), batch_size=8, device=torch.device("cpu"))
    restored.load_state_dict(saved)
    twin_generator = torch.Generator()
    restored.restore_rng(saved, {"loader": twin_generator})
    drawn = (torch.rand(3), np.random.rand(), random.random(), torch.rand(2, generator=twin_generator))
    assert torch.equal(drawn[0], expected[0]) and drawn[1:3] == expected[1:3] and torch.equal(drawn[3], expected[3])
    _step(restored, twin)  # the same momentum: the same next step
    assert all(torch.allclose(twin.state_dict()[k].float(), after_one_more[k].float()) for k in after_one_more)
    assert restored.ema.updates == state.ema.updates


def test_a_checkpoint_without_an_average_starts_it_from_the_weights():
    model = _model()
    state = TrainingState(model, merge_hyp(None), batch_size=8, device=torch.device("cpu"))
    _step(state, model)
    saved = {k: v for k, v in state.state_dict().items() if k != "ema"}
    state.load_state_dict(saved)
    assert all(torch.equal(state.ema.ema.state_dict()[k], model.state_dict()[k]) for k in model.state_dict())
