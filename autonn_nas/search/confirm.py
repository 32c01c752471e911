"""The base unless beaten: the searched architecture replaces the base only when held-out evidence says
it is better beyond noise.

Both architectures run on the same supernet (each after its own BN recalibration) over the same
confirmation images, a part of the held-out split that neither the architecture steps nor spos's scoring
read (on the images a search chose with, its pick looks better than it is). The per-image differences
of the objective (derived - base) are resampled with a paired bootstrap; the derived architecture is
shipped when the whole interval lies below zero.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

CONFIDENCE = 0.95  # two-sided interval: shipping needs its upper end below 0 (one-sided 97.5 %)
RESAMPLES = 2000


def paired_bootstrap_interval(differences: torch.Tensor, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                              seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of `differences` (one value per image) over `resamples` resamples
    of the images with replacement."""
    values = differences.double().reshape(-1)
    n = values.numel()
    if n == 0:
        raise ValueError("a bootstrap needs at least one difference")
    generator = torch.Generator().manual_seed(seed)
    means = values[torch.randint(n, (resamples, n), generator=generator)].mean(dim=1)
    tail = (1.0 - confidence) / 2.0
    low, high = torch.quantile(means, torch.tensor([tail, 1.0 - tail], dtype=torch.float64)).tolist()
    return float(low), float(high)


def base_over_budget(searched: Mapping[str, str], base: Mapping[str, str], base_to_limit: float) -> dict[str, Any]:
    """The decision when the base costs more than the budget (a lightweight_level asked for a lighter model):
    the base cannot ship, so the searched architecture, the best the strategy found within the budget, does."""
    return {"searched": dict(searched), "base": dict(base), "confirmation": None, "base_over_budget": True, "shipped": "derived",
            "reason": f"the base architecture costs {base_to_limit:.3f} x the budget, so the searched architecture (the best "
                      "the search found within the budget) ships without a comparison against it"}


def decide(searched: Mapping[str, str], base: Mapping[str, str], derived_losses: torch.Tensor | None,
           base_losses: torch.Tensor | None, objective: str, seed: int = 0) -> dict[str, Any]:
    """The decision record (report.json's "decision"): what ships, why, and the numbers behind it."""
    searched, base = dict(searched), dict(base)
    record: dict[str, Any] = {"searched": searched, "base": base, "confirmation": None}
    if searched == base:
        return {**record, "shipped": "base", "reason": "the search derived the base architecture itself"}
    if derived_losses is None or base_losses is None or derived_losses.numel() < 2:
        return {**record, "shipped": "base",
                "reason": "too few confirmation images (held-out images not used by the search) to tell the searched "
                          "architecture from the base beyond noise; the base is kept (add training images)"}
    differences = derived_losses.double() - base_losses.double()
    low, high = paired_bootstrap_interval(differences, seed=seed)
    beaten = high < 0.0
    confirmation = {
        "objective": objective, "images": int(differences.numel()),
        "derived_loss": float(derived_losses.double().mean()), "base_loss": float(base_losses.double().mean()),
        "mean_difference": float(differences.mean()), "ci_low": low, "ci_high": high,
        "confidence": CONFIDENCE, "resamples": RESAMPLES, "beaten": beaten,
    }
    interval = f"{confirmation['mean_difference']:+.4g} per image, {CONFIDENCE:.0%} interval [{low:+.4g}, {high:+.4g}] over {differences.numel()} images"
    if beaten:
        reason = f"the searched architecture beats the base on the confirmation images beyond noise ({objective} {interval})"
        return {**record, "shipped": "derived", "reason": reason, "confirmation": confirmation}
    verdict = "is worse than the base beyond noise" if low > 0.0 else "does not beat the base beyond noise"
    reason = f"the searched architecture {verdict} ({objective} {interval}); the base is kept"
    return {**record, "shipped": "base", "reason": reason, "confirmation": confirmation}
