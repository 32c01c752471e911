"""Holding out part of the train split: the search judges architectures on images it did not train on,
while the val split stays untouched for the final report."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np

PathLike = TypeVar("PathLike", str, Path)


def split_holdout(files: Sequence[PathLike], fraction: float, seed: int = 0) -> tuple[list[PathLike], list[PathLike]]:
    """(train files, held-out files): round(fraction * n) files (at least 1, at most n - 1) chosen at random.

    The choice depends only on the set of file names and the seed (not on the order they are listed in), and
    both parts keep the input order.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be between 0 and 1 (exclusive), got {fraction}")
    files = list(files)
    if len(set(map(str, files))) != len(files):
        raise ValueError("the file list names an image twice; a held-out image would also be trained on")
    if len(files) < 2:
        raise ValueError(f"cannot hold out part of {len(files)} image(s); at least 2 are needed")
    count = min(max(round(fraction * len(files)), 1), len(files) - 1)
    by_name = sorted(range(len(files)), key=lambda i: str(files[i]))
    chosen = {by_name[i] for i in np.random.default_rng(seed & 0xFFFFFFFF).permutation(len(files))[:count]}
    train = [f for i, f in enumerate(files) if i not in chosen]
    holdout = [f for i, f in enumerate(files) if i in chosen]
    return train, holdout
