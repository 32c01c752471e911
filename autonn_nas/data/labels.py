"""YOLO label files: where they live, parsing them row by row, and the report of what a dataset holds.

A label file holds one box a line: `class cx cy w h`, normalised to the image. A row that cannot be a box is
skipped and reported with its file and line; the rest of the file is still used.
"""
from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

COORD_TOLERANCE = 1e-3  # coordinates this far outside 0..1 are rounding noise and are clipped, not rejected
_COLUMNS = 5


def image_to_label_path(image: str | Path) -> Path:
    """labels/ mirrors images/: the last '/images/' of the path becomes '/labels/', the extension '.txt'."""
    text = str(image)
    marker = f"{os.sep}images{os.sep}"
    if marker in text:
        head, tail = text.rsplit(marker, 1)
        text = f"{head}{os.sep}labels{os.sep}{tail}"
    return Path(text).with_suffix(".txt")


@dataclass(frozen=True)
class Skipped:
    """One thing left out of the dataset: an image, or a row of a label file (line counted from 1)."""

    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.reason}"


def parse_label_text(text: str, path: str, nc: int) -> tuple[np.ndarray, list[Skipped]]:
    """(boxes (n, 5) float32 [cls, cx, cy, w, h], rows skipped) of a label file's text.

    A row is skipped when it has the wrong number of columns, a value that is not a finite number, a class
    that is not an integer in 0..nc-1, a coordinate outside 0..1 by more than COORD_TOLERANCE, a box edge
    outside the image by more than that, or a width or height that is not positive. Exact duplicates of an
    earlier row are dropped.
    """
    rows: list[tuple[float, ...]] = []
    skipped: list[Skipped] = []
    first_line_of: dict[tuple[float, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        row, problem = _parse_row(fields, nc)
        if problem is not None:
            skipped.append(Skipped(path, problem, number))
        elif row in first_line_of:
            skipped.append(Skipped(path, f"duplicate of line {first_line_of[row]}", number))
        else:
            first_line_of[row] = number
            rows.append(row)
    boxes = np.array(rows, dtype=np.float32).reshape(-1, _COLUMNS)
    return boxes, skipped


def _parse_row(fields: Sequence[str], nc: int) -> tuple[tuple[float, ...], str | None]:
    if len(fields) != _COLUMNS:
        return (), f"expected {_COLUMNS} columns 'class cx cy w h', got {len(fields)}"
    try:
        values = [float(f) for f in fields]
    except ValueError:
        return (), f"not a number in {' '.join(fields)!r}"
    if not all(math.isfinite(v) for v in values):
        return (), f"not a finite number in {' '.join(fields)!r}"
    cls, cx, cy, w, h = values
    if cls != int(cls) or not 0 <= cls < nc:
        return (), f"class {fields[0]} is not an integer in 0..{nc - 1}"
    if w <= 0 or h <= 0:
        return (), f"width and height must be positive, got w={fields[3]} h={fields[4]}"
    edges = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    if any(v < -COORD_TOLERANCE or v > 1 + COORD_TOLERANCE for v in (cx, cy, w, h, *edges)):
        return (), f"coordinates outside 0..1 in {' '.join(fields)!r}"
    if any(v < 0 or v > 1 for v in edges):
        # within the tolerance: clip the box to the image
        x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in edges)
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    return (float(int(cls)), cx, cy, w, h), None


def read_label_file(path: Path, nc: int) -> tuple[np.ndarray, list[Skipped]]:
    """Parse a label file; an unreadable file is one skipped item (the image then counts as background)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return np.zeros((0, _COLUMNS), np.float32), [Skipped(str(path), f"unreadable label file ({error})")]
    return parse_label_text(text, str(path), nc)


@dataclass
class DatasetReport:
    """What a dataset load found. images counts every listed image; usable ones are those that decode;
    backgrounds are usable images without any box (no label file, or no valid row)."""

    source: str = ""
    images: int = 0
    usable_images: int = 0
    background_images: int = 0
    boxes: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    skipped_images: list[Skipped] = field(default_factory=list)
    skipped_rows: list[Skipped] = field(default_factory=list)
    labels_without_image: list[str] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        source: str,
        images: int,
        labels: Sequence[np.ndarray],
        names: Sequence[str],
        skipped_images: list[Skipped],
        skipped_rows: list[Skipped],
        labels_without_image: list[str],
    ) -> "DatasetReport":
        counts: Counter[int] = Counter()
        for boxes in labels:
            counts.update(int(c) for c in boxes[:, 0])
        return cls(
            source=source,
            images=images,
            usable_images=len(labels),
            background_images=sum(1 for boxes in labels if len(boxes) == 0),
            boxes=sum(counts.values()),
            class_counts={_name(names, c): n for c, n in sorted(counts.items())},
            skipped_images=skipped_images,
            skipped_rows=skipped_rows,
            labels_without_image=labels_without_image,
        )

    def format(self, examples: int = 5) -> str:
        """A few lines for the log: totals, the most frequent classes, and what was skipped (with examples)."""
        lines = [
            f"{self.source}: {self.images} images, {self.usable_images} usable "
            f"({self.background_images} background), {self.boxes} boxes in {len(self.class_counts)} classes"
        ]
        if self.class_counts:
            top = sorted(self.class_counts.items(), key=lambda kv: -kv[1])[:10]
            lines.append("  classes: " + ", ".join(f"{name} {count}" for name, count in top) + (", ..." if len(self.class_counts) > 10 else ""))
        for title, items in (("images skipped", self.skipped_images), ("label rows skipped", self.skipped_rows)):
            if items:
                lines.append(f"  {title}: {len(items)}")
                lines.extend(f"    {item}" for item in items[:examples])
                if len(items) > examples:
                    lines.append(f"    ... and {len(items) - examples} more")
        if self.labels_without_image:
            shown = ", ".join(self.labels_without_image[:examples]) + (", ..." if len(self.labels_without_image) > examples else "")
            lines.append(f"  label files without an image (ignored): {len(self.labels_without_image)}: {shown}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DatasetReport":
        data = dict(data)
        for key in ("skipped_images", "skipped_rows"):
            data[key] = [Skipped(**item) for item in data.get(key, [])]
        return cls(**data)


def _name(names: Sequence[str], index: int) -> str:
    return str(names[index]) if 0 <= index < len(names) else str(index)
