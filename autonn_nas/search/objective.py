"""What the search minimises, on every path it takes: weight steps, architecture steps, spos scoring and
the derived-vs-base confirmation all call the same objective.

- DetectionObjective: the YOLO detection loss against the dataset's labels (the default).
- DistillationObjective (`--teacher W.pt`): the mean squared distance between the network's raw head
  outputs and a fixed teacher's on the same images. The teacher is any checkpoint this tool writes
  (bestmodel.pt of a search, best.pt of train). Matching a trained base model is in-place distillation;
  matching the stand-alone network of a known architecture is the planted benchmark
  (benchmarks/planted.py), where the right answer is known by construction.

An objective takes the images as well as the targets (`takes_images`): train/epoch.py passes them.
Both return (sum over the batch, items) like the detection loss, and `per_image` gives one value per
image, which the paired bootstrap of the confirmation resamples.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from autonn_nas.train.checkpoint import load_checkpoint, model_from_checkpoint


def raw_outputs(predictions: Any) -> list[torch.Tensor]:
    """The per-level raw head outputs, whether the model ran in train mode (a list) or eval mode ((decoded, raw))."""
    return predictions[1] if isinstance(predictions, tuple) else predictions


class DetectionObjective:
    name = "detection loss"
    takes_images = True

    def __init__(self, loss_fn: Any):
        self.loss_fn = loss_fn

    def __call__(self, predictions: Any, targets: torch.Tensor, images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loss_fn(raw_outputs(predictions), targets)

    def per_image(self, predictions: Any, targets: torch.Tensor, images: torch.Tensor | None = None) -> torch.Tensor:
        raw = raw_outputs(predictions)
        losses = []
        for i in range(raw[0].shape[0]):
            rows = targets[targets[:, 0] == i].clone()
            rows[:, 0] = 0
            loss, _items = self.loss_fn([level[i : i + 1] for level in raw], rows)  # a batch of one: the image's loss
            losses.append(loss.float().reshape(()))
        return torch.stack(losses)


DISTILLATION_GAIN = 0.1  # brings the mean squared distance to the detection loss's scale, for which the training recipe is tuned


class DistillationObjective:
    name = "distillation loss"
    takes_images = True

    def __init__(self, teacher: nn.Module):
        self.teacher = teacher.eval().requires_grad_(False)
        for m in self.teacher.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.0  # the teacher's running statistics never change, whatever mode it runs in
        # The last batch's outputs: an architecture step compares many paths on the same images (and a frozen
        # teacher answers them all alike), so it runs the teacher once instead of once per path (21 times with
        # six candidates in four blocks: most of the step's time). Keyed by the tensor itself (held, so its id
        # cannot be reused), its in-place version and the BatchNorm mode.
        self._last: tuple[torch.Tensor, int, bool, list[torch.Tensor]] | None = None
        self.teacher_runs = 0  # how often the teacher actually ran (the test of this cache counts it)

    @torch.no_grad()
    def teacher_outputs(self, images: torch.Tensor, batch_statistics: bool = False) -> list[torch.Tensor]:
        """The teacher's raw head outputs, its BatchNorm normalising with the batch's statistics or its own."""
        last = self._last
        if last is not None and last[0] is images and last[1] == images._version and last[2] == batch_statistics:
            return last[3]
        self.teacher.train(batch_statistics)
        try:
            outputs = [level.float() for level in raw_outputs(self.teacher(images))]
        finally:
            self.teacher.eval()
        self.teacher_runs += 1
        self._last = (images, images._version, batch_statistics, outputs)
        return outputs

    def _squared(self, predictions: Any, images: torch.Tensor) -> list[torch.Tensor]:
        if images is None:
            raise ValueError("the distillation objective needs the input images (its caller must pass them)")
        # The teacher normalises as the network did: with batch statistics when the network ran in train mode
        # (its head then returns a list, not eval mode's (decoded, raw)), else with its own running statistics.
        # So the network of the teacher's architecture and weights matches it exactly in either mode, as in
        # in-place distillation, where the teacher shares the student's batch.
        student = raw_outputs(predictions)
        teacher = self.teacher_outputs(images, batch_statistics=not isinstance(predictions, tuple))
        shapes = [tuple(s.shape) for s in student], [tuple(t.shape) for t in teacher]
        if shapes[0] != shapes[1]:
            raise ValueError(f"the teacher's head outputs {shapes[1]} do not match the network's {shapes[0]}: "
                             "the teacher needs the same classes, anchors and strides")
        return [DISTILLATION_GAIN * (s.float() - t) ** 2 for s, t in zip(student, teacher)]

    def per_image(self, predictions: Any, targets: torch.Tensor | None = None, images: torch.Tensor | None = None) -> torch.Tensor:
        return sum(d.flatten(1).mean(1) for d in self._squared(predictions, images))

    def __call__(self, predictions: Any, targets: torch.Tensor | None = None, images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        squared = self._squared(predictions, images)
        # items keep the detection loss's meaning: the box (xywh), objectness and class channels' parts
        parts = torch.stack([sum(d[..., sl].mean() for d in squared) for sl in (slice(0, 4), slice(4, 5), slice(5, None))])
        per_image = sum(d.flatten(1).mean(1) for d in squared)
        total = per_image.mean()
        return per_image.sum(), torch.cat((parts, total.reshape(1))).detach()


def load_teacher(path: str | Path, device: torch.device, nc: int) -> nn.Module:
    """The teacher network of a checkpoint (model_yaml + state_dict), frozen, on `device`."""
    try:
        checkpoint = load_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:
        raise ValueError(f"teacher: {exc}") from None
    teacher = model_from_checkpoint(checkpoint, device)
    if teacher.nc != nc:
        raise ValueError(f"teacher {path} predicts {teacher.nc} classes, the dataset has {nc}")
    return teacher.requires_grad_(False)

