"""One training epoch: forward, loss, (scaled) backward, accumulated optimizer steps, EMA, progress bar (on a terminal).

Reusable piece: the search strategies call `train_one_epoch` with their own hooks (e.g. sample a path
before each batch, take an architecture step after each weight step).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn

from autonn_nas.train.ema import ModelEMA
from autonn_nas.train.schedule import WarmupCosineSchedule
from autonn_nas.utils.progress import progress as progress_bar

MAX_GRAD_NORM = 10.0  # clip: one bad batch early in training must not wreck the weights


class TrainingDiverged(RuntimeError, ValueError):
    """The loss became NaN or infinite. Also a ValueError: the user's to fix (lr0, the labels), so the CLI and the
    stage say it in one line with what to change, as any input error."""


@dataclass
class EpochResult:
    epoch: int
    box: float = 0.0  # mean loss items over the epoch's batches
    obj: float = 0.0
    cls: float = 0.0
    total: float = 0.0
    lr: list[float] = field(default_factory=list)  # per parameter group, at the epoch's end
    batches: int = 0
    images: int = 0
    optimizer_steps: int = 0
    data_seconds: float = 0.0  # waiting for the loader (plus host-to-device copy)
    compute_seconds: float = 0.0  # forward, backward, optimizer, EMA

    @property
    def data_share(self) -> float:
        total = self.data_seconds + self.compute_seconds
        return self.data_seconds / total if total else 0.0


def images_to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (bs, 3, H, W) RGB -> float 0..1 on `device`."""
    return images.to(device, non_blocking=True).float().div_(255.0)


def make_grad_scaler(device: torch.device, enabled: bool = True) -> torch.amp.GradScaler:
    """A GradScaler that is active only on CUDA (AMP is used only there)."""
    return torch.amp.GradScaler("cuda", enabled=enabled and device.type == "cuda")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _HostReads:
    """When the loop may read device values on the host. Reading a CUDA tensor (`.item()`, `.cpu()`) waits for
    every queued kernel, so the host stops running ahead of the GPU; on CUDA the loop reads its loss sums (for
    the bar and the divergence check) at most once per READ_INTERVAL_S and at the epoch's end. On a CPU a read
    costs nothing: every batch."""

    READ_INTERVAL_S = 1.0

    def __init__(self, device: torch.device):
        self.every_batch = self.reads_every_batch(device)
        self.last = time.perf_counter()

    @staticmethod
    def reads_every_batch(device: torch.device) -> bool:
        return device.type != "cuda"

    def due(self) -> bool:
        if self.every_batch:
            return True
        now = time.perf_counter()
        if now - self.last < self.READ_INTERVAL_S:
            return False
        self.last = now
        return True


def train_one_epoch(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable[[Any, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    schedule: WarmupCosineSchedule,
    epoch: int,
    device: torch.device,
    *,
    scaler: torch.amp.GradScaler | None = None,
    ema: ModelEMA | None = None,
    start_iteration: int | None = None,
    progress: bool = True,
    description: str | None = None,
    on_batch_start: Callable[[int], None] | None = None,
    on_optimizer_step: Callable[[int], None] | None = None,
    max_grad_norm: float | None = MAX_GRAD_NORM,
) -> EpochResult:
    """Train `model` for one pass over `loader` (batches of (images, targets, paths, shapes)).

    The global iteration index (start_iteration + batch index; default epoch * len(loader)) drives the
    schedule. Gradients are accumulated over `schedule.accumulate(i)` batches; a partial accumulation
    left at the end of the epoch is applied, so an epoch is self-contained (resume-exact).
    Hooks: on_batch_start(i) before the forward pass, on_optimizer_step(i) after each weight update.
    """
    scaler = scaler if scaler is not None else make_grad_scaler(device, enabled=False)
    autocast = scaler.is_enabled()
    start_iteration = epoch * len(loader) if start_iteration is None else start_iteration
    result = EpochResult(epoch=epoch)
    pending = 0  # batches whose gradients wait for an optimizer step
    model.train()
    optimizer.zero_grad(set_to_none=True)

    def optimizer_step(iteration: int) -> None:
        nonlocal pending
        if max_grad_norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(model)
        pending = 0
        result.optimizer_steps += 1
        if on_optimizer_step is not None:
            on_optimizer_step(iteration)

    bar = progress_bar(loader, description or f"epoch {epoch + 1}", progress)  # the caller logs the epoch's line
    reads = _HostReads(device)
    # the first non-finite loss, kept on the device: (batch index, loss, box, obj, cls); batch index -1 = none yet
    first_bad = torch.full((5,), -1.0, device=device)
    batch_on_device = torch.full((1,), -1.0, device=device)  # the batch index, counted where first_bad is built
    sums = torch.zeros(4, device=device)
    iteration = start_iteration
    started = waited_since = time.perf_counter()
    for batch_index, (images, targets, *_rest) in enumerate(bar):
        # the host's wait for the loader: on CUDA it runs ahead of the GPU, so a wait here is where the GPU can starve
        result.data_seconds += time.perf_counter() - waited_since
        iteration = start_iteration + batch_index
        images = images_to_input(images, device)
        targets = targets.to(device, non_blocking=True)

        schedule.step(iteration)
        if on_batch_start is not None:
            on_batch_start(iteration)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=autocast):
            predictions = model(images)
        # a search objective may need the inputs too (distillation: the teacher runs on the same images)
        loss, items = loss_fn(predictions, targets, images) if getattr(loss_fn, "takes_images", False) else loss_fn(predictions, targets)
        loss_items = items.detach().float()
        batch_on_device += 1
        is_first_bad = (~torch.isfinite(loss.detach())) & (first_bad[0] < 0)
        first_bad = torch.where(is_first_bad, torch.cat([batch_on_device, loss.detach().float().view(1), loss_items[:3]]), first_bad)
        read_now = reads.due()
        if read_now:
            _raise_if_diverged(first_bad, epoch)
        scaler.scale(loss).backward()
        pending += 1
        if pending >= schedule.accumulate(iteration):
            optimizer_step(iteration)

        sums += loss_items
        result.batches += 1
        result.images += images.shape[0]
        if not bar.disable and read_now:
            mean = (sums / result.batches).tolist()
            bar.set_postfix(box=f"{mean[0]:.4f}", obj=f"{mean[1]:.4f}", cls=f"{mean[2]:.4f}", img=images.shape[-1], refresh=False)
        waited_since = time.perf_counter()

    if pending:
        optimizer_step(iteration)
    bar.close()
    _sync(device)
    _raise_if_diverged(first_bad, epoch)
    result.compute_seconds = max(time.perf_counter() - started - result.data_seconds, 0.0)
    mean = (sums / max(result.batches, 1)).tolist()
    result.box, result.obj, result.cls, result.total = mean
    result.lr = [group["lr"] for group in optimizer.param_groups]
    return result


def _raise_if_diverged(first_bad: torch.Tensor, epoch: int) -> None:
    """TrainingDiverged when a non-finite loss was recorded (a host read: call it when reading is due)."""
    batch, loss, box, obj, cls = first_bad.tolist()
    if batch >= 0:
        raise TrainingDiverged(f"loss became {loss} at epoch {epoch}, batch {int(batch)} (box, obj, cls = {[box, obj, cls]}); "
                               "lower lr0 or check the labels")
