"""The label cache: reused when nothing changed, invalidated per file when an image or label changes,
and a read-only dataset folder falls back to cache_dir or to no cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import autonn_nas.data.cache as cache_module
import autonn_nas.data.scan as scan_module
from autonn_nas.data import YoloDataset
from test_data_support import make_split, write_labels


@pytest.fixture
def scans(monkeypatch):
    """Paths scanned (not served from the cache) during the test."""
    seen: list[str] = []
    real = scan_module.scan_image

    def counting(path, nc):
        seen.append(Path(path).name)
        return real(path, nc)

    monkeypatch.setattr(scan_module, "scan_image", counting)
    return seen


def _bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_cache_reused_then_invalidated_per_file(tmp_path, scans):
    files = make_split(tmp_path, "train", 3)
    YoloDataset(files, 64, nc=2)
    assert sorted(scans) == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert (tmp_path / "labels" / "train.cache").is_file()

    scans.clear()
    again = YoloDataset(files, 64, nc=2)
    assert scans == [] and again.report.boxes == 4

    label = write_labels(files[1], ["1 0.5 0.5 0.2 0.2"])  # was two boxes
    _bump_mtime(label)
    changed = YoloDataset(files, 64, nc=2)
    assert scans == ["img1.jpg"]
    assert changed.labels[1].tolist() == [pytest.approx([1.0, 0.5, 0.5, 0.2, 0.2])] and changed.report.boxes == 3

    scans.clear()
    _bump_mtime(files[2])  # an image changed
    YoloDataset(files, 64, nc=2)
    assert scans == ["img2.jpg"]

    scans.clear()
    label.unlink()  # a label file removed: the image becomes a background image
    removed = YoloDataset(files, 64, nc=2)
    assert scans == ["img1.jpg"] and len(removed.labels[1]) == 0


def test_cache_keeps_skipped_rows_and_other_nc_rescans(tmp_path, scans):
    files = make_split(tmp_path, "train", 2)
    write_labels(files[0], ["0 0.5 0.5 0.2 0.2", "0 0.5 0.5 0.2"])
    first = YoloDataset(files, 64, nc=2)
    scans.clear()
    cached = YoloDataset(files, 64, nc=2)
    assert scans == [] and cached.report.skipped_rows == first.report.skipped_rows and len(first.report.skipped_rows) == 1
    YoloDataset(files, 64, nc=1)  # class 1 rows become invalid: the cache of nc=2 must not be used
    assert sorted(scans) == ["img0.jpg", "img1.jpg"]


def test_subset_files_share_the_cache(tmp_path, scans):
    files = make_split(tmp_path, "train", 4)
    YoloDataset(files, 64, nc=2)
    scans.clear()
    YoloDataset(files[:2], 64, nc=2)
    YoloDataset(files[2:], 64, nc=2)
    assert scans == []


def test_corrupt_cache_is_ignored(tmp_path, scans):
    files = make_split(tmp_path, "train", 2)
    (tmp_path / "labels" / "train.cache").write_text("{not json")
    assert YoloDataset(files, 64, nc=2).report.boxes == 3
    assert len(scans) == 2


@pytest.fixture
def read_only_dataset(monkeypatch, tmp_path):
    """Writes into the dataset folder fail (tests may run as root, where chmod does not stop writes)."""
    dataset_root = tmp_path / "data"
    real_write = cache_module.atomic_write_text

    def guarded(path, text):
        if Path(path).is_relative_to(dataset_root):
            raise PermissionError(13, "Read-only file system", str(path))
        return real_write(path, text)

    monkeypatch.setattr(cache_module, "atomic_write_text", guarded)
    return dataset_root


def test_read_only_folder_uses_cache_dir(read_only_dataset, tmp_path, scans):
    files = make_split(read_only_dataset, "train", 2)
    cache_dir = tmp_path / "cache"
    YoloDataset(files, 64, nc=2, cache_dir=cache_dir)
    assert not (read_only_dataset / "labels" / "train.cache").exists()
    assert len(list(cache_dir.glob("train-*.cache"))) == 1
    scans.clear()
    YoloDataset(files, 64, nc=2, cache_dir=cache_dir)
    assert scans == []


def test_read_only_folder_without_cache_dir_still_loads(read_only_dataset, scans):
    files = make_split(read_only_dataset, "train", 2)
    assert YoloDataset(files, 64, nc=2).report.boxes == 3
    assert YoloDataset(files, 64, nc=2).report.boxes == 3
    assert len(scans) == 4  # nothing cached: scanned each time, no error


def test_cache_off_writes_nothing(tmp_path):
    files = make_split(tmp_path, "train", 2)
    YoloDataset(files, 64, nc=2, cache=False)
    assert not list(tmp_path.rglob("*.cache"))
