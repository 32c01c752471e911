"""Loaders of the search: whole batches in one process, or under torchrun each rank's slice of exactly the
global batches one process would load (GlobalBatchShard)."""
from __future__ import annotations

from typing import Any, Iterator, Protocol

from torch.utils.data import Sampler

from autonn_nas.data.dataset import EpochShuffleSampler, create_dataloader


class RankContext(Protocol):
    """Which process of how many (search/distributed.DistContext); data/ does not import search/."""

    rank: int
    world_size: int


class GlobalBatchShard(Sampler[int]):
    """This rank's share of the global batches of `base` (an epoch-seeded sampler): global batch b is
    base order[b*B:(b+1)*B] and rank r loads its r-th slice of B/world images. A short last batch is
    padded cyclically from the start of the order so every rank yields the same number of batches
    (DDP needs every rank in every step)."""

    def __init__(self, base: Sampler, global_batch: int, context: RankContext):
        if global_batch % context.world_size:
            raise ValueError(f"batch {global_batch} (the global batch) is not divisible by the {context.world_size} processes; "
                             f"use a multiple of {context.world_size}")
        self.base, self.global_batch, self.context = base, global_batch, context

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        order = list(iter(self.base))
        world, rank = self.context.world_size, self.context.rank
        for start in range(0, len(order), self.global_batch):
            chunk = order[start:start + self.global_batch]
            local = -(-len(chunk) // world)
            padded = (chunk + order * world)[: local * world]
            yield from padded[rank * local:(rank + 1) * local]

    def __len__(self) -> int:
        n, world = len(self.base), self.context.world_size
        full, rest = divmod(n, self.global_batch)
        return full * (self.global_batch // world) + -(-rest // world)


def search_loader(dataset: Any, batch_size: int, shuffle: bool, workers: int, seed: int,
                  context: RankContext | None = None) -> Any:
    """batch_size is the global batch; under torchrun (a context of more than one process) each rank loads its
    slice of every global batch (the Evaluator's loaders, on every rank, pass no context and read whole batches)."""
    if context is None or context.world_size <= 1:
        return create_dataloader(dataset, batch_size=batch_size, shuffle=shuffle, workers=workers, seed=seed)
    sampler = GlobalBatchShard(EpochShuffleSampler(dataset, seed), batch_size, context)
    return create_dataloader(dataset, batch_size=batch_size // context.world_size, workers=workers, seed=seed, sampler=sampler)
