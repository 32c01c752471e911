"""The trade-off a search leaves: cost against held-out loss for the architectures it scored or sampled,
and what each TANGO lightweight_level would derive from the same trained supernet (the knob's view).

- spos scored architectures itself: those are the points (no new scoring).
- proxyless and darts have probabilities, not scores: the points are the architecture derived at every
  lightweight_level (0..10), the base, the shipped one and a few drawn from the final probabilities, each
  scored here as spos scores (Evaluator.holdout_score: held-out loss per image, batch statistics, the same
  images for all).
Every level's budget is a subset of the previous level's architectures, and a strategy derives the best
architecture of its set (most probable, or best scored), so the derived cost never increases with the level.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch

from autonn_nas.search.arch import Architecture
from autonn_nas.search.cost import Budget, CostTable, resolve_budget

if TYPE_CHECKING:  # types only
    from autonn_nas.search.strategies.base import SearchStrategy

LEVELS = range(11)  # TANGO's lightweight_level
SAMPLES = 8  # architectures drawn from the final probabilities, besides the levels', the base and the shipped one
SCORE = "held-out loss per image (batch statistics; lower is better)"


def level_picks(strategy: "SearchStrategy", table: CostTable, ratio: float | None) -> list[dict[str, Any]]:
    """Per lightweight_level: its budget (with the run's budget ratio) and what the strategy derives within it."""
    picks = []
    for level in LEVELS:
        budget = resolve_budget(table, ratio, level)
        arch = strategy.derive_within(budget)
        cost = table.cost(arch) if arch is not None else None
        picks.append({"level": level, "limit": budget.limit, "limit_ratio": budget.limit / budget.base_cost,
                      "architecture": arch.to_dict() if arch is not None else None, "cost": cost,
                      "cost_ratio": cost / budget.base_cost if cost is not None else None})
    return picks


def _drawn(strategy: "SearchStrategy", seed: int) -> list[Architecture]:
    probabilities = strategy.probabilities()
    if probabilities is None:
        return []
    generator = torch.Generator().manual_seed(int(seed) + 104729)  # not the strategy's: its state is saved
    draws = torch.multinomial(probabilities.float(), SAMPLES, replacement=True, generator=generator).T.tolist()
    return [Architecture({label: strategy.names[i] for label, i in zip(strategy.labels, row)}) for row in draws]


def _front(points: list[dict[str, Any]]) -> None:
    """Mark the points no other point beats in both cost and loss (lower is better in both)."""
    best = float("inf")
    for point in sorted(points, key=lambda p: (p["cost"], p["loss"])):
        point["front"] = point["loss"] < best
        best = min(best, point["loss"])


def pareto_view(strategy: "SearchStrategy", table: CostTable, budget: Budget, ratio: float | None, seed: int,
                score: Callable[[Architecture], float], images: int, shipped: Architecture, base: Architecture) -> dict[str, Any]:
    """report.json's "pareto": the scored points (architecture, cost, cost / base, loss, within the budget,
    marks: base / shipped / level L, front), the levels' picks with their loss, the budget and the base cost.
    `score` is the held-out loss of an architecture (final.Evaluator's), on `images` images."""
    levels = level_picks(strategy, table, ratio)
    scored = strategy.scored()  # spos: what it scored
    if scored is None:
        wanted = [shipped, base] + [Architecture(p["architecture"]) for p in levels if p["architecture"]] + _drawn(strategy, seed)
        scored = {arch: score(arch) for arch in dict.fromkeys(wanted)}  # each once, in order
    marks: dict[Architecture, list[str]] = {arch: [] for arch in scored}
    for arch, mark in [(base, "base"), (shipped, "shipped")] + [(Architecture(p["architecture"]), f"level {p['level']}")
                                                                for p in levels if p["architecture"]]:
        if arch in marks:
            marks[arch].append(mark)
    points = [{"architecture": arch.to_dict(), "cost": table.cost(arch), "cost_ratio": table.cost(arch) / budget.base_cost,
               "loss": loss, "within_budget": budget.allows(table.cost(arch)), "marks": marks[arch]}
              for arch, loss in scored.items()]
    _front(points)
    for pick in levels:
        pick["loss"] = scored.get(Architecture(pick["architecture"])) if pick["architecture"] else None
    return {"score": SCORE, "images": images, "budget": budget.limit, "base_cost": budget.base_cost,
            "measure": table.measure, "unit": table.unit, "points": sorted(points, key=lambda p: p["cost"]), "levels": levels}
