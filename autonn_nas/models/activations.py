"""Activations by name, so a YAML row or a candidate op can say 'relu', 'leaky' or 'mish'."""
from __future__ import annotations

from typing import Callable

from torch import nn

from .search_space import SEARCHED_ACTIVATIONS

# Slope 0.1 is the darknet/Scaled-YOLOv4 convention for leaky ReLU (PyTorch's default is 0.01).
LEAKY_SLOPE = 0.1

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky": lambda: nn.LeakyReLU(LEAKY_SLOPE),
    "mish": nn.Mish,
}

assert set(SEARCHED_ACTIVATIONS) <= set(ACTIVATIONS), "every searched activation must be buildable"

DEFAULT_ACTIVATION = "mish"  # Scaled-YOLOv4 uses Mish everywhere


def get_activation(name: str) -> nn.Module:
    """A fresh activation module for `name` (one of ACTIVATIONS)."""
    try:
        factory = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid activations: {', '.join(ACTIVATIONS)}") from None
    return factory()
