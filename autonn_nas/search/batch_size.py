"""Fit the batch size to the accelerator's memory: a CUDA out-of-memory error halves the batch and the
run continues, rather than failing after hours."""
from __future__ import annotations

from typing import Callable

import torch

from autonn_nas.utils.log import get_logger

log = get_logger("search.batch")


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError)


def free_accelerator_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def halved_batch_size(batch_size: int, error: BaseException) -> int:
    """The next batch size to try after `error`; ValueError when it cannot shrink further."""
    if batch_size <= 1:
        raise ValueError(f"out of memory even with batch size 1 ({error}); lower img_size or width, or use a larger GPU") from None
    new = batch_size // 2
    log.warning("out of memory at batch size %d; continuing with batch size %d", batch_size, new)
    free_accelerator_memory()
    return new


def fit_batch_size(try_step: Callable[[int], None], batch_size: int) -> int:
    """The largest of batch_size, batch_size/2, ... for which `try_step(batch)` runs without running out
    of memory (used on CUDA before the search starts, with the most memory-hungry path)."""
    while True:
        try:
            try_step(batch_size)
            return batch_size
        except torch.OutOfMemoryError as error:
            batch_size = halved_batch_size(batch_size, error)
