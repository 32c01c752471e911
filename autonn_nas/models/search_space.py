"""The neck search space, defined once: six candidate ops for each searchable block.

A candidate is a complete BottleneckCSP2 whose bottlenecks use a k x k spatial conv and whose every
convolution (and the post-BN activation) uses one activation function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .activations import ACTIVATIONS


@dataclass(frozen=True)
class Candidate:
    name: str
    kernel: int
    act: str


def _candidates() -> dict[str, Candidate]:
    table = {}
    for kernel in (3, 5):
        for act in ("relu", "leaky", "mish"):
            assert act in ACTIVATIONS
            name = f"k{kernel}_{act}"
            table[name] = Candidate(name, kernel, act)
    return table


# Ordered: the position of a candidate is its index in mixture weights and architecture logits.
CANDIDATE_OPS: dict[str, Candidate] = _candidates()
CANDIDATES: tuple[str, ...] = tuple(CANDIDATE_OPS)
BASE_CANDIDATE = "k3_mish"  # Scaled-YOLOv4's own choice
SEARCHABLE_MODULE = "MBottleneckCSP2"  # the YAML module name of a searchable block
CONCRETE_MODULE = "BottleneckCSP2"  # what a searchable row becomes once a candidate is chosen


class ArchitectureError(ValueError):
    """An architecture that does not fit a model: unknown/missing labels or unknown candidates."""


def candidate(name: str) -> Candidate:
    try:
        return CANDIDATE_OPS[name]
    except KeyError:
        raise ArchitectureError(f"unknown candidate {name!r}; valid candidates: {', '.join(CANDIDATES)}") from None


def block_label(layer_index: int) -> str:
    """The label of the searchable block at a layer index, e.g. 16 -> 'm_16'."""
    return f"m_{layer_index}"


def label_sort_key(label: str) -> tuple:
    """Order labels by layer index (m_9 before m_16), falling back to the text for other labels."""
    prefix, _, suffix = label.rpartition("_")
    return (prefix, int(suffix), "") if suffix.isdigit() else (label, -1, label)


def validate_choices(choices: Mapping[str, str], labels: Iterable[str]) -> None:
    """Raise ArchitectureError unless `choices` names exactly `labels`, each with a known candidate."""
    labels = sorted(labels, key=label_sort_key)
    valid = ", ".join(labels) or "(none)"
    unknown = [label for label in choices if label not in labels]
    if unknown:
        raise ArchitectureError(f"unknown block label(s) {', '.join(unknown)}; this model's searchable blocks: {valid}")
    missing = [label for label in labels if label not in choices]
    if missing:
        raise ArchitectureError(f"no candidate chosen for block(s) {', '.join(missing)}; every block needs one of: {', '.join(CANDIDATES)}")
    for label, name in choices.items():
        if name not in CANDIDATE_OPS:
            raise ArchitectureError(f"block {label}: unknown candidate {name!r}; valid candidates: {', '.join(CANDIDATES)}")
