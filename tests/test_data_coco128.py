"""The embedded coco128_mini dataset and the real coco128 (its quirks are real and stay in)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autonn_nas.data import YoloDataset, load_dataset_config

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "shared_volume" / "datasets" / "coco128_mini" / "dataset.yaml"
COCO128 = REPO.parent / "shared" / "datasets" / "coco128" / "dataset.yaml"

needs_coco128 = pytest.mark.skipif(not COCO128.is_file(), reason=f"coco128 not found at {COCO128}")


@pytest.fixture(scope="module")
def mini():
    return load_dataset_config(MINI)


def test_mini_config(mini):
    assert mini.nc == 80 and len(mini.names) == 80
    assert mini.names[12] == "parking meter"  # the YAML wraps this name over two lines
    assert len(mini.train) == 32 and len(mini.val) == 32
    assert all(p.is_absolute() and p.is_file() for p in mini.train + mini.val)
    assert mini.root == MINI.parent


@pytest.mark.parametrize(
    "split, usable, backgrounds, boxes, grayscale",
    [("train", 32, 1, 214, "000000000086.jpg"), ("val", 32, 0, 172, "000000007888.jpg")],
)
def test_mini_counts(mini, split, usable, backgrounds, boxes, grayscale, tmp_path):
    dataset = YoloDataset.from_config(mini, split, img_size=128, cache_dir=tmp_path)
    report = dataset.report
    assert (report.images, report.usable_images, report.background_images, report.boxes) == (32, usable, backgrounds, boxes)
    assert sum(report.class_counts.values()) == boxes
    assert report.skipped_images == [] and report.skipped_rows == []
    assert len(dataset.labels) == len(dataset.shapes) == len(dataset.image_files) == usable
    index = [p.name for p in dataset.image_files].index(grayscale)
    image, targets, path, ((h0, w0), _) = dataset[index]
    assert image.dtype == torch.uint8 and image.shape == (3, 128, 128)
    assert path.endswith(grayscale) and (w0, h0) == tuple(dataset.shapes[index])
    assert targets.shape == (len(dataset.labels[index]), 6)


def test_mini_background_image_has_no_targets(mini, tmp_path):
    dataset = YoloDataset.from_config(mini, "train", img_size=128, cache_dir=tmp_path)
    index = [p.name for p in dataset.image_files].index("000000000250.jpg")
    assert dataset.labels[index].shape == (0, 5)
    assert dataset[index][1].shape == (0, 6)


@needs_coco128
def test_coco128_quirks():
    config = load_dataset_config(COCO128)
    assert len(config.train) == 128 and len(config.val) == 128
    train = YoloDataset.from_config(config, "train", img_size=64, cache=False)
    report = train.report
    assert report.usable_images == 128 and report.boxes == 929
    assert report.background_images == 2
    backgrounds = sorted(p.stem for p, boxes in zip(train.image_files, train.labels) if len(boxes) == 0)
    assert backgrounds == ["000000000250", "000000000508"]
    assert sorted(Path(p).stem for p in report.labels_without_image) == ["000000000656", "000000000659"]
    assert "label files without an image" in report.format()
    gray = [p.name for p in train.image_files].index("000000000086.jpg")
    assert train[gray][0].shape == (3, 64, 64)
    sizes = {tuple(s) for s in train.shapes.tolist()}
    assert {(640, 426), (640, 480), (500, 375)} <= sizes
    val = YoloDataset.from_config(config, "val", img_size=64, cache=False)
    assert (val.report.usable_images, val.report.boxes, val.report.background_images) == (128, 898, 0)
    assert np.all(np.concatenate(val.labels)[:, 1:] <= 1)
