"""Helpers for the data tests: small synthetic YOLO datasets written into a tmp folder (no tests here)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import yaml
from PIL import Image

RED = (220, 20, 20)


def draw_image(size: tuple[int, int], boxes: Iterable[Sequence[float]] = (), background=(40, 90, 160)) -> Image.Image:
    """An RGB image of (width, height) with a red rectangle for each normalised [cx, cy, w, h] box."""
    width, height = size
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = background
    for cx, cy, w, h in boxes:
        x1, x2 = round((cx - w / 2) * width), round((cx + w / 2) * width)
        y1, y2 = round((cy - h / 2) * height), round((cy + h / 2) * height)
        pixels[y1:y2, x1:x2] = RED
    return Image.fromarray(pixels)


def write_image(path: Path, size=(64, 48), boxes: Iterable[Sequence[float]] = (), **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_image(size, boxes).save(path, **save)
    return path


def write_labels(image: Path, rows: Iterable[str]) -> Path:
    """The label file of `image` (labels/ mirroring images/) with these text rows."""
    from autonn_nas.data import image_to_label_path

    path = image_to_label_path(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{row}\n" for row in rows))
    return path


def make_split(root: Path, split: str, count: int, size=(64, 48), nc: int = 2, suffix: str = ".jpg") -> list[Path]:
    """images/<split>/img<i> with one or two boxes each (classes cycle through 0..nc-1), and their labels."""
    files = []
    for i in range(count):
        boxes = [(0.3, 0.4, 0.3, 0.4)] + ([(0.75, 0.7, 0.3, 0.3)] if i % 2 else [])
        image = write_image(root / "images" / split / f"img{i}{suffix}", size, boxes)
        write_labels(image, [f"{(i + j) % nc} {cx} {cy} {w} {h}" for j, (cx, cy, w, h) in enumerate(boxes)])
        files.append(image)
    return files


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def make_dataset(root: Path, train: int = 4, val: int = 2, nc: int = 2, size=(64, 48)) -> Path:
    """A folder dataset with a dataset.yaml (relative train/val folders); returns the YAML's path."""
    make_split(root, "train", train, size, nc)
    make_split(root, "val", val, size, nc)
    return write_yaml(root / "dataset.yaml", {"train": "images/train", "val": "images/val", "nc": nc, "names": [f"c{i}" for i in range(nc)]})
