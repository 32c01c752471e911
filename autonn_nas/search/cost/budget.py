"""The budget: the most a derived architecture may cost, from a ratio to the base model and TANGO's
lightweight_level."""
from __future__ import annotations

from dataclasses import dataclass

from autonn_nas.search.arch import base_architecture
from autonn_nas.search.cost.table import TOLERANCE, CostTable


@dataclass
class Budget:
    """The most a derived architecture may cost (`limit`, in the table's unit), and how it was set."""

    limit: float
    base_cost: float
    cheapest_cost: float
    ratio: float  # the requested budget relative to the base model (1.0 unless set)
    lightweight_level: int | None
    measure: str

    def allows(self, cost: float) -> bool:
        return cost <= self.limit * (1 + TOLERANCE) + TOLERANCE

    @property
    def level_without_effect(self) -> bool:
        """A lightweight_level above 0 that cannot tighten anything: the requested budget already is the cheapest
        architecture's cost. With params or FLOPs, the seed's space and a budget of 1.0 that is always so, because
        every 3x3 candidate costs what the base block costs (activations are free in those measures)."""
        requested = self.ratio * self.base_cost
        return bool(self.lightweight_level) and self.cheapest_cost >= requested * (1 - TOLERANCE) - TOLERANCE

    def note(self) -> str | None:
        if not self.level_without_effect:
            return None
        return (f"lightweight_level {self.lightweight_level} has no effect: measured as {self.measure}, the cheapest architecture "
                f"already costs the requested budget ({self.ratio:g} x base); use the extended search space "
                "(cfg yolov4-p5-search-ext.yaml: shallower and narrower blocks) or the latency measure, where ReLU and "
                "LeakyReLU are cheaper than Mish, to trade accuracy for speed")

    def to_dict(self) -> dict:
        return {
            "note": self.note(),
            "measure": self.measure,
            "limit": self.limit,
            "limit_ratio_to_base": self.limit / self.base_cost if self.base_cost else None,
            "base_cost": self.base_cost,
            "cheapest_cost": self.cheapest_cost,
            "requested_ratio": self.ratio,
            "lightweight_level": self.lightweight_level,
        }


def resolve_budget(table: CostTable, ratio: float | None = None, lightweight_level: int | None = None) -> Budget:
    """Budget = ratio x base cost (default 1.0: no costlier than the base model); TANGO's
    lightweight_level L in 0..10 then moves it L/10 of the way toward the cheapest architecture of the
    space (level 10 = the cheapest), so every level is feasible. A ratio below what the cheapest
    architecture costs is an error that names that minimum."""
    base_cost = table.cost(base_architecture(table.labels))
    _, cheapest_cost = table.cheapest()
    requested = 1.0 if ratio is None else float(ratio)
    start = requested * base_cost
    if start < cheapest_cost * (1 - TOLERANCE) - TOLERANCE:
        minimum = cheapest_cost / base_cost if base_cost else float("nan")
        raise ValueError(
            f"budget {requested:g} x base ({start:,.6g} {table.unit}) is below the cheapest architecture of the search space "
            f"({cheapest_cost:,.6g} {table.unit} = {minimum:.4f} x base, measured as {table.measure}); use a budget of at least {minimum:.4f}"
        )
    limit = start
    if lightweight_level is not None:
        if not 0 <= int(lightweight_level) <= 10:
            raise ValueError(f"lightweight_level must be 0..10, got {lightweight_level}")
        limit = start - (int(lightweight_level) / 10.0) * (start - cheapest_cost)
    return Budget(limit, base_cost, cheapest_cost, requested, lightweight_level, table.measure)
