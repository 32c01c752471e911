"""The state a resumable training run carries next to its model: optimizer, AMP scaler, weight EMA and
random states. `autonn-nas train` (train/trainer.py) and the search (search/runner.py) both keep one, so
what a checkpoint holds for resuming, and how it comes back, is written once.

The model weights themselves are not part of it: the trainer checkpoints its EMA as the weights to deploy
(`state_dict`) and the raw ones for resuming (`train_state_dict`), the search its raw supernet.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from autonn_nas.train.checkpoint import restore_rng_states, rng_states
from autonn_nas.train.ema import ModelEMA
from autonn_nas.train.epoch import make_grad_scaler
from autonn_nas.train.optim import NOMINAL_BATCH, build_optimizer

STATE_KEYS = ("optimizer", "scaler", "ema")  # checkpoint keys of TrainingState.state_dict, besides "rng"


class TrainingState:
    """`TrainingState(model, hyp, batch_size, device)`; `ema` may be built beforehand (the search averages
    the supernet before it converts BatchNorm for DDP, so the average keeps plain BN layers)."""

    def __init__(self, model: nn.Module, hyp: Mapping[str, float], batch_size: int, device: torch.device,
                 nominal_batch: int = NOMINAL_BATCH, ema: ModelEMA | None = None):
        self.model = model
        self.ema = ema if ema is not None else ModelEMA(model)
        self.optimizer = build_optimizer(model, hyp, batch_size, nominal_batch)
        self.scaler = make_grad_scaler(device)

    def state_dict(self, generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
        """Checkpoint entries: optimizer, scaler, ema, and rng (global states and the loaders' `generators`)."""
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(), "ema": self.ema.state_dict(),
                "rng": rng_states(dict(generators or {}))}

    def load_state_dict(self, checkpoint: Mapping[str, Any]) -> None:
        """Optimizer, scaler and EMA from a checkpoint (random states: restore_rng, once the loaders exist).
        A checkpoint from before the EMA was kept starts the average from the restored weights."""
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        if "ema" in checkpoint:
            self.ema.load_state_dict(checkpoint["ema"])
        else:
            self.ema.ema.load_state_dict(self.model.state_dict())

    @staticmethod
    def restore_rng(checkpoint: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
        restore_rng_states(checkpoint["rng"], dict(generators or {}))
