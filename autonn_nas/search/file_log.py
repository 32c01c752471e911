"""Which image files each phase of a search reads, recorded from the batches themselves.

Loaders are wrapped so every batch's image paths are added to the phase's set; the report lists the
counts and files_read.json the paths, and a test checks that architecture decisions never read a
validation image (the prior art's architecture steps drew from the split that then reported mAP).
"""
from __future__ import annotations

from typing import Any, Iterator

PHASES = (
    "weight_training",  # weight steps: the training part of the train split
    "architecture",  # architecture steps and spos scoring: the held-out part of the train split
    "bn_recalibration",  # BN statistics of evaluated sub-networks: the training part
    "confirmation",  # the searched architecture against the base: the rest of the held-out part
    "report",  # the final val mAP of the derived and the base architecture: the val split
)


class FilesRead:
    def __init__(self, state: dict[str, list[str]] | None = None):
        self.phases: dict[str, set[str]] = {phase: set() for phase in PHASES}
        for phase, paths in (state or {}).items():
            self.phases.setdefault(phase, set()).update(paths)

    def add(self, phase: str, paths: Any) -> None:
        self.phases[phase].update(str(p) for p in paths)

    def state_dict(self) -> dict[str, list[str]]:
        return {phase: sorted(paths) for phase, paths in self.phases.items()}

    def counts(self) -> dict[str, int]:
        return {phase: len(paths) for phase, paths in self.phases.items()}


class RecordingLoader:
    """A loader that records the paths of the batches it yields (batch[2]); everything else, such as
    len(), .dataset and .generator, is the wrapped loader's."""

    def __init__(self, loader: Any, files: FilesRead, phase: str):
        if phase not in files.phases:
            raise ValueError(f"unknown phase {phase!r}; phases: {', '.join(files.phases)}")
        self.loader, self.files, self.phase = loader, files, phase

    def __iter__(self) -> Iterator:
        for batch in self.loader:
            self.files.add(self.phase, batch[2])
            yield batch

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)
