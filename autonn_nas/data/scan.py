"""Scanning a list of images once: which decode, their sizes, their parsed labels, and what was skipped.

Results are per image (ImageRecord) so that a subset of a dataset needs no new scan, and so that the cache
can revalidate each image on its own.
"""
from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from autonn_nas.data.cache import file_signature, read_cache, write_cache
from autonn_nas.data.config import is_image_file
from autonn_nas.data.images import ImageProblem, check_image
from autonn_nas.data.labels import Skipped, image_to_label_path, read_label_file

_SCAN_THREADS = min(8, os.cpu_count() or 1)


@dataclass
class ImageRecord:
    """What the scan found for one image. shape is (width, height); problem is set when the image is unusable."""

    path: Path
    shape: tuple[int, int] | None
    boxes: np.ndarray  # (n, 5) [cls, cx, cy, w, h] normalised
    skipped_rows: list[Skipped] = field(default_factory=list)
    problem: str | None = None
    image_signature: list[int] | None = None
    label_signature: list[int] | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None

    def to_entry(self) -> dict[str, Any]:
        return {
            "image": self.image_signature,
            "label": self.label_signature,
            "shape": list(self.shape) if self.shape else None,
            "problem": self.problem,
            "boxes": self.boxes.tolist(),
            "skipped": [[s.line, s.reason] for s in self.skipped_rows],
        }

    @classmethod
    def from_entry(cls, path: Path, entry: dict[str, Any]) -> "ImageRecord":
        label_path = str(image_to_label_path(path))
        return cls(
            path=path,
            shape=tuple(entry["shape"]) if entry["shape"] else None,
            boxes=np.array(entry["boxes"], dtype=np.float32).reshape(-1, 5),
            skipped_rows=[Skipped(label_path, reason, line) for line, reason in entry["skipped"]],
            problem=entry["problem"],
            image_signature=entry["image"],
            label_signature=entry["label"],
        )


def scan_image(path: Path, nc: int | None) -> ImageRecord:
    """Check one image and parse its label file (a missing label file makes it a background image)."""
    label_path = image_to_label_path(path)
    image_signature, label_signature = file_signature(path), file_signature(label_path)
    try:
        shape = check_image(path)
    except ImageProblem as problem:
        return ImageRecord(path, None, np.zeros((0, 5), np.float32), [], str(problem), image_signature, label_signature)
    if label_signature is None:
        boxes, skipped = np.zeros((0, 5), np.float32), []
    else:
        boxes, skipped = read_label_file(label_path, nc if nc is not None else 2**31)
    return ImageRecord(path, shape, boxes, skipped, None, image_signature, label_signature)


def scan_images(files: Sequence[Path], nc: int | None, cache: bool = True, cache_dir: str | Path | None = None) -> list[ImageRecord]:
    """One record per file, in order; unchanged files come from the label cache when `cache` is on."""
    files = [Path(f) for f in files]
    by_label_dir: dict[Path, list[Path]] = defaultdict(list)
    for path in files:
        by_label_dir[image_to_label_path(path).parent].append(path)

    records: dict[Path, ImageRecord] = {}
    for label_dir, group in by_label_dir.items():
        entries = read_cache(label_dir, nc, cache_dir) if cache else {}
        stale = []
        for path in group:
            entry = entries.get(str(path))
            if entry is not None and entry["image"] == file_signature(path) and entry["label"] == file_signature(image_to_label_path(path)):
                records[path] = ImageRecord.from_entry(path, entry)
            else:
                stale.append(path)
        if stale:
            with ThreadPoolExecutor(_SCAN_THREADS) as pool:
                for record in pool.map(lambda p: scan_image(p, nc), stale):
                    records[record.path] = record
                    entries[str(record.path)] = record.to_entry()
            if cache:
                write_cache(label_dir, nc, entries, cache_dir)
    return [records[path] for path in files]


def labels_without_image(files: Iterable[Path]) -> list[str]:
    """Label files, in the label folders of `files`, for which no image with the same name exists on disk."""
    orphans = []
    for label_dir in sorted({image_to_label_path(p).parent for p in files}):
        if not label_dir.is_dir():
            continue
        image_dir = _mirrored_image_dir(label_dir)
        image_stems = {p.stem for p in image_dir.iterdir() if is_image_file(p)} if image_dir.is_dir() else set()
        orphans.extend(str(p) for p in sorted(label_dir.glob("*.txt")) if p.stem not in image_stems)
    return orphans


def _mirrored_image_dir(label_dir: Path) -> Path:
    parts = list(label_dir.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "labels":
            parts[i] = "images"
            return Path(*parts)
    return label_dir  # labels next to the images
