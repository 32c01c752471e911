"""The additive cost table: a fixed part plus one entry per searchable block and candidate."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

from autonn_nas.models.search_space import BASE_CANDIDATE, SEED_SPACE, SearchSpace
from autonn_nas.search.arch import Architecture

UNITS = {"params": "parameters", "flops": "FLOPs", "latency": "ms"}
LATENCY_TABLE_FORMAT = "autonn-nas latency table v1"
TOLERANCE = 1e-9  # relative: float sums of the same entries may differ in the last bits


@dataclass
class CostTable:
    """Additive cost: `fixed` + sum over blocks of `blocks[label][candidate]`."""

    measure: str  # params | flops | latency
    fixed: float
    blocks: dict[str, dict[str, float]]
    img_size: int
    source: str  # how the entries were obtained (counted, measured on <device>, read from <file>)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)  # label -> (c1, h, w) at img_size
    space: SearchSpace = SEED_SPACE  # the candidates of every block, in the order of logits and matrix columns

    @property
    def unit(self) -> str:
        return UNITS[self.measure]

    @property
    def labels(self) -> list[str]:
        return list(self.blocks)

    def cost(self, arch: Mapping[str, str]) -> float:
        return self.fixed + sum(self.blocks[label][arch[label]] for label in self.blocks)

    def matrix(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(blocks, candidates) tensor in the space's order: the per-block entries as one table."""
        rows = [[self.blocks[label][name] for name in self.space.names] for label in self.blocks]
        return torch.tensor(rows, dtype=torch.float64, device=device)

    def expected(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Expected cost under per-block candidate probabilities (blocks, candidates); differentiable."""
        table = self.matrix(probabilities.device).to(probabilities.dtype)
        return self.fixed + (probabilities * table).sum()

    def cheapest(self) -> tuple[Architecture, float]:
        """The cheapest architecture of the space (ties: the earlier candidate; the cost is exact either way)."""
        choice = {label: min(self.space.names, key=lambda name: (entries[name], name != BASE_CANDIDATE)) for label, entries in self.blocks.items()}
        arch = Architecture(choice)
        return arch, self.cost(arch)

    def to_dict(self) -> dict:
        return {
            "format": LATENCY_TABLE_FORMAT if self.measure == "latency" else f"autonn-nas {self.measure} table v1",
            "measure": self.measure,
            "unit": self.unit,
            "img_size": self.img_size,
            "source": self.source,
            "space": self.space.name,
            "candidates": list(self.space.names),
            "fixed": self.fixed,
            "blocks": self.blocks,
            "input_shapes": self.input_shapes,
        }
