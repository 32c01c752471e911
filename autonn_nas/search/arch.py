"""An architecture as a value: searchable-block label -> candidate name, e.g.
{"m_16": "k5_leaky", "m_21": "k3_mish", ...}. Frozen, hashable, ordered by layer index; saved as JSON,
printed, compared, enumerated, and turned into YAML rows by search/derive.py."""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from autonn_nas.models.search_space import (
    BASE_CANDIDATE,
    SEED_SPACE,
    ArchitectureError,
    SearchSpace,
    label_sort_key,
    validate_choices,
)
from autonn_nas.utils.files import atomic_write_text

__all__ = ["Architecture", "ArchitectureError", "base_architecture", "enumerate_space"]


class Architecture(Mapping[str, str]):
    __slots__ = ("_items",)

    def __init__(self, choices: Mapping[str, str] | Iterable[tuple[str, str]] = ()):
        items = dict(choices)
        for label, name in items.items():
            if not isinstance(label, str) or not isinstance(name, str):
                raise ArchitectureError(f"an architecture maps block labels to candidate names (strings), got {label!r}: {name!r}")
        object.__setattr__(self, "_items", tuple(sorted(items.items(), key=lambda item: label_sort_key(item[0]))))

    def __setattr__(self, name, value):
        raise AttributeError("Architecture is immutable; build a new one (e.g. arch.replace(m_16='k5_mish'))")

    # Mapping protocol
    def __getitem__(self, label: str) -> str:
        for key, name in self._items:
            if key == label:
                return name
        raise KeyError(f"{label!r} is not a block of this architecture; blocks: {', '.join(self.labels) or '(none)'}")

    def __iter__(self) -> Iterator[str]:
        return (label for label, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other) -> bool:
        if isinstance(other, Architecture):
            return self._items == other._items
        return isinstance(other, Mapping) and dict(self._items) == dict(other)

    def __repr__(self) -> str:
        return f"Architecture({dict(self._items)!r})"

    def __str__(self) -> str:
        return " ".join(f"{label}={name}" for label, name in self._items)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label, _ in self._items)

    def replace(self, **choices: str) -> "Architecture":
        """A copy with some blocks' candidates changed."""
        return Architecture({**dict(self._items), **choices})

    def indices(self, space: SearchSpace = SEED_SPACE) -> tuple[int, ...]:
        """Each block's candidate as its index in the space (the order of mixture weights and logits)."""
        return tuple(space.index(name) for _, name in self._items)

    @classmethod
    def from_indices(cls, labels: Sequence[str], indices: Sequence[int], space: SearchSpace = SEED_SPACE) -> "Architecture":
        if len(labels) != len(indices):
            raise ArchitectureError(f"{len(labels)} labels but {len(indices)} candidate indices")
        names = space.names
        for label, index in zip(labels, indices):
            if not 0 <= int(index) < len(names):
                raise ArchitectureError(f"block {label}: candidate index {index} out of range 0..{len(names) - 1} ({', '.join(names)})")
        return cls({label: names[int(index)] for label, index in zip(labels, indices)})

    def validate(self, labels: Iterable[str], space: SearchSpace = SEED_SPACE) -> "Architecture":
        """Check that this names exactly `labels` (a model's searchable blocks), each with a candidate of `space`."""
        validate_choices(dict(self._items), labels, space)
        return self

    # serialisation
    def to_dict(self) -> dict[str, str]:
        return dict(self._items)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "<json>") -> "Architecture":
        """Parse {"m_16": "k3_mish", ...}; a JSON object with an "architecture" key (e.g. a search report) also works."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"{source}: not valid JSON: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("architecture"), dict):
            data = data["architecture"]
        if not isinstance(data, dict):
            raise ArchitectureError(f'{source}: expected a JSON object like {{"m_16": "{BASE_CANDIDATE}", ...}}')
        try:
            arch = cls(data)
        except ArchitectureError as exc:
            raise ArchitectureError(f"{source}: {exc}") from None
        return arch

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Architecture":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ArchitectureError(f"cannot read architecture file {path}: {exc.strerror}") from None
        return cls.from_json(text, source=str(path))


def base_architecture(labels: Iterable[str]) -> Architecture:
    """Every block runs Scaled-YOLOv4's own choice (BASE_CANDIDATE)."""
    return Architecture({label: BASE_CANDIDATE for label in labels})


def enumerate_space(labels: Iterable[str], space: SearchSpace = SEED_SPACE) -> Iterator[Architecture]:
    """Every architecture of the space, len(space) ** len(labels) of them, in candidate order."""
    labels = sorted(labels, key=label_sort_key)
    for names in itertools.product(space.names, repeat=len(labels)):
        yield Architecture(zip(labels, names))
