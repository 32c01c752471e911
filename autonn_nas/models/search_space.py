"""The neck search spaces, defined once: the candidate ops a searchable block chooses from.

A candidate is a complete BottleneckCSP2 whose bottlenecks use a k x k spatial conv and whose every
convolution (and the post-BN activation) uses one activation function. The seed's space (the default)
has six: kernel 3|5 x relu|leaky|mish. The extended space (opt-in: `search_space: extended` in the search
YAML) also lets each block choose fewer bottlenecks than its row (`n1`, `n2`: the YAML number 1 or 2
instead of the row's 3) and half the hidden width (`h50`), so architectures cheaper than the base exist
under every cost measure. A candidate without a suffix keeps the row's own depth and full hidden width,
so `k3_mish` is the base block in both spaces.

A space is resolved for a model (`SearchSpace.resolve`): the depth multiple rounds YAML numbers, and
candidates that would build the same block (at depth_multiple 0.33 every depth is one bottleneck) are
dropped, keeping the row's own depth, so no two candidates of a block are the same network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

# the activations a candidate may use (activations.py builds them; this module stays free of torch)
SEARCHED_ACTIVATIONS = ("relu", "leaky", "mish")

BASE_CANDIDATE = "k3_mish"  # Scaled-YOLOv4's own choice, in every space
SEARCHABLE_MODULE = "MBottleneckCSP2"  # the YAML module name of a searchable block
CONCRETE_MODULE = "BottleneckCSP2"  # what a searchable row becomes once a candidate is chosen
SPACE_KEY = "search_space"  # the search YAML's top-level key naming its space (absent: the seed's)


class ArchitectureError(ValueError):
    """An architecture that does not fit a model: unknown/missing labels or unknown candidates."""


@dataclass(frozen=True)
class Candidate:
    name: str
    kernel: int
    act: str
    depth: int | None = None  # YAML number of bottlenecks (before depth_multiple); None: the row's own
    hidden: float = 1.0  # hidden channels relative to the block's output channels (Scaled-YOLOv4: 1.0)


def scale_depth(number: int, depth_multiple: float) -> int:
    """Repeats of a YAML row's `number` under depth_multiple, as YOLOv5 / Scaled-YOLOv4 compute them."""
    return max(round(number * depth_multiple), 1) if number > 1 else number


def _name(kernel: int, act: str, depth: int | None, hidden: float) -> str:
    return f"k{kernel}_{act}" + (f"_n{depth}" if depth else "") + (f"_h{round(hidden * 100)}" if hidden != 1.0 else "")


def _grid(depths: Iterable[int | None], hiddens: Iterable[float]) -> tuple[Candidate, ...]:
    table = []
    for hidden in hiddens:
        for depth in depths:
            for kernel in (3, 5):
                for act in SEARCHED_ACTIVATIONS:
                    table.append(Candidate(_name(kernel, act, depth, hidden), kernel, act, depth, hidden))
    return tuple(table)


@dataclass(frozen=True)
class SearchSpace:
    """An ordered set of candidates: the position of a candidate is its index in mixture weights and logits."""

    name: str
    candidates: tuple[Candidate, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.candidates)

    def __len__(self) -> int:
        return len(self.candidates)

    def candidate(self, name: str) -> Candidate:
        for op in self.candidates:
            if op.name == name:
                return op
        raise ArchitectureError(f"unknown candidate {name!r}; valid candidates: {', '.join(self.names)}")

    def index(self, name: str) -> int:
        return self.names.index(self.candidate(name).name)

    def repeats(self, op: Candidate, row_number: int, depth_multiple: float) -> int:
        """Bottlenecks a candidate builds in a row of YAML number `row_number`."""
        return scale_depth(op.depth or row_number, depth_multiple)

    def resolve(self, row_number: int, depth_multiple: float) -> "SearchSpace":
        """The candidates of a row of YAML number `row_number` under `depth_multiple`: a block never gets more
        bottlenecks than its row, and of candidates that would build the same block only the first one stays
        (the row's own depth comes first)."""
        kept, built = [], set()
        for op in sorted(self.candidates, key=lambda op: op.depth is not None):  # stable: the row's depth first
            if op.depth is not None and op.depth >= row_number:
                continue
            structure = (op.kernel, op.act, self.repeats(op, row_number, depth_multiple), op.hidden)
            if structure not in built:
                built.add(structure)
                kept.append(op)
        order = {op.name: i for i, op in enumerate(self.candidates)}
        return SearchSpace(self.name, tuple(sorted(kept, key=lambda op: order[op.name])))


SEED_SPACE = SearchSpace("seed", _grid([None], [1.0]))
EXTENDED_SPACE = SearchSpace("extended", _grid([None, 1, 2], [1.0, 0.5]))
SEARCH_SPACES: dict[str, SearchSpace] = {space.name: space for space in (SEED_SPACE, EXTENDED_SPACE)}

# The seed's space, the default (kept as module constants: most code and tests speak of it).
CANDIDATE_OPS: dict[str, Candidate] = {op.name: op for op in SEED_SPACE.candidates}
CANDIDATES: tuple[str, ...] = SEED_SPACE.names


def search_space(name: str | None) -> SearchSpace:
    """The space a search YAML names (None: the seed's)."""
    if name is None:
        return SEED_SPACE
    try:
        return SEARCH_SPACES[str(name)]
    except KeyError:
        raise ArchitectureError(f"unknown {SPACE_KEY} {name!r}; valid: {', '.join(SEARCH_SPACES)}") from None


def candidate(name: str, space: SearchSpace = SEED_SPACE) -> Candidate:
    return space.candidate(name)


def block_label(layer_index: int) -> str:
    """The label of the searchable block at a layer index, e.g. 16 -> 'm_16'."""
    return f"m_{layer_index}"


def label_sort_key(label: str) -> tuple:
    """Order labels by layer index (m_9 before m_16), falling back to the text for other labels."""
    prefix, _, suffix = label.rpartition("_")
    return (prefix, int(suffix), "") if suffix.isdigit() else (label, -1, label)


def validate_choices(choices: Mapping[str, str], labels: Iterable[str], space: SearchSpace = SEED_SPACE) -> None:
    """Raise ArchitectureError unless `choices` names exactly `labels`, each with a candidate of `space`."""
    labels = sorted(labels, key=label_sort_key)
    valid = ", ".join(labels) or "(none)"
    unknown = [label for label in choices if label not in labels]
    if unknown:
        raise ArchitectureError(f"unknown block label(s) {', '.join(unknown)}; this model's searchable blocks: {valid}")
    missing = [label for label in labels if label not in choices]
    if missing:
        raise ArchitectureError(f"no candidate chosen for block(s) {', '.join(missing)}; every block needs one of: {', '.join(space.names)}")
    names = set(space.names)
    for label, name in choices.items():
        if name not in names:
            raise ArchitectureError(f"block {label}: unknown candidate {name!r}; valid candidates: {', '.join(space.names)}")
