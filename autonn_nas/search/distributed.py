"""Running the supernet search under torchrun (DistributedDataParallel), one process per device.

Decisions (see docs/search.md, "Many GPUs and machines"):
- Launch: torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (a plain `autonn-nas search`) every
  function here is a no-op and the search runs in one process. Backend: nccl on CUDA, gloo on CPU.
- Same path on every rank: the strategies draw paths from a generator seeded by the shared seed and
  advanced once per step, so all ranks run the same sub-network and DDP reduces the same graph.
  DDP still needs find_unused_parameters=True: the candidates that the step's path skips get no
  gradient (and the path changes every step, so static_graph cannot be used). Because the skipped
  candidates are unused on every rank, DDP leaves their .grad None, as in one process, so SGD's momentum
  and weight decay skip them exactly as they do there.
- --batch is the GLOBAL batch: each rank loads batch/world images, and GlobalBatchShard (data/loader.py) gives the
  ranks the slices of exactly the batches a single process would load (same seed, same epoch).
  DDP averages gradients over ranks while the detection loss is a sum over the local batch, so the
  weight-step loss is multiplied by the world size (as YOLOv5 does) to keep the single-process scale.
- Architecture weights stay identical: each rank computes the gradient of the logits on its slice
  of the held-out batch, the gradients are averaged (all_reduce) and every rank takes the same Adam step.
- SyncBatchNorm while training the supernet on CUDA (torch's SyncBatchNorm supports only accelerators;
  on CPU/gloo each rank normalises with its local batch statistics, the one place a CPU run differs
  from a single process). It is turned back into BatchNorm2d before the derivation.
- Only rank 0 writes files, logs to search.log and reports events. After supernet training, spos's
  candidate scoring is split: every rank holds the same weights, scores every world_size-th candidate of
  each batch the search asks for (BN recalibration on the same batches, whole batches, no DDP wrapper)
  and the scores are gathered, so the evolutionary search sees the same scores and breeds the same
  children on every rank and for any number of ranks (final.Evaluator.score_many, evolution.search).
  The other strategies' derivation, the final evaluation of the derived and the base architecture and
  the outputs are rank 0's while the others wait at a barrier. Checkpoints are saved from the unwrapped
  model (no 'module.' prefix) and resume on any number of ranks, a single process included.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

TIMEOUT = datetime.timedelta(hours=2)  # rank 0 evaluates the derived and the base architecture alone while the others wait


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch, or a process without one (readable before and after the process group)."""
    return not launched_by_torchrun() or int(os.environ["RANK"]) == 0


def init_from_env(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes (no-op without torchrun or with one process); returns
    the context and this rank's device (cuda:LOCAL_RANK on CUDA)."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        return DistContext(), device
    context = DistContext(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return context, device


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average `tensor` over the ranks in place (identity in one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(dist.get_world_size())
    return tensor


def broadcast_object(value: Any, src: int = 0) -> Any:
    """rank src's `value` on every rank."""
    if not dist.is_initialized():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def broadcast_buffers(model: nn.Module) -> None:
    """rank 0's BN statistics on every rank (without SyncBatchNorm each rank's moved with its own slice)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def gather_objects(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order (a one-element list in one process)."""
    if not dist.is_initialized():
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """SyncBatchNorm for supernet training, where torch supports it (accelerators only)."""
    if device.type == "cpu" or not dist.is_initialized():
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """BatchNorm2d again (same parameters and statistics), so each rank can run sub-networks on its own."""
    result = module
    if isinstance(module, nn.SyncBatchNorm):
        result = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        result.load_state_dict(module.state_dict())
        result.to(next(module.buffers()).device)
        result.train(module.training)
    for name, child in module.named_children():
        result.add_module(name, revert_sync_batchnorm(child))
    return result


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True,
    )
