"""Label files: path mirroring, row-by-row parsing with file:line reports, and the dataset report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autonn_nas.data import DatasetError, DatasetReport, YoloDataset, image_to_label_path
from autonn_nas.data.labels import parse_label_text
from test_data_support import make_split, write_image, write_labels


def test_image_to_label_path_replaces_last_images_folder():
    assert image_to_label_path(Path("/d/images/x/images/train/a.b.JPG")) == Path("/d/images/x/labels/train/a.b.txt")
    assert image_to_label_path(Path("/d/pics/a.png")) == Path("/d/pics/a.txt")  # labels next to the images


@pytest.mark.parametrize(
    "row, reason",
    [
        ("0 0.5 0.5 0.2", "expected 5 columns"),
        ("0 0.5 0.5 0.2 0.2 0.9", "expected 5 columns"),
        ("0 0.5 abc 0.2 0.2", "not a number"),
        ("0 0.5 nan 0.2 0.2", "not a finite number"),
        ("3 0.5 0.5 0.2 0.2", "class 3 is not an integer in 0..2"),
        ("-1 0.5 0.5 0.2 0.2", "class -1 is not an integer"),
        ("1.5 0.5 0.5 0.2 0.2", "class 1.5 is not an integer"),
        ("0 1.2 0.5 0.2 0.2", "coordinates outside 0..1"),
        ("0 0.95 0.5 0.2 0.2", "coordinates outside 0..1"),  # right edge at 1.05
        ("0 0.5 0.5 0 0.2", "width and height must be positive"),
        ("0 0.5 0.5 0.2 -0.1", "width and height must be positive"),
    ],
)
def test_bad_rows_are_skipped_with_file_and_line(row, reason):
    text = "1 0.5 0.5 0.2 0.2\n" + row + "\n2 0.25 0.25 0.1 0.1\n"
    boxes, skipped = parse_label_text(text, "lab.txt", nc=3)
    assert boxes[:, 0].tolist() == [1, 2]
    assert len(skipped) == 1 and skipped[0].line == 2 and reason in skipped[0].reason
    assert str(skipped[0]).startswith("lab.txt:2: ")


def test_coordinates_within_tolerance_are_clipped():
    boxes, skipped = parse_label_text("0 0.5 0.5 1.0005 0.5\n0 0.0004 0.5 0.0006 0.2\n", "l.txt", nc=1)
    assert skipped == []
    assert np.all(boxes[:, 1:] >= 0) and np.all(boxes[:, 1] + boxes[:, 3] / 2 <= 1 + 1e-6)
    assert boxes[0, 3] == pytest.approx(1.0, abs=1e-6)


def test_duplicates_dropped_and_empty_text():
    boxes, skipped = parse_label_text("0 0.5 0.5 0.2 0.2\n\n0 0.5 0.5 0.2 0.2\n0 0.50 0.5 0.2 0.20\n", "l.txt", nc=1)
    assert len(boxes) == 1 and [(s.line, s.reason) for s in skipped] == [(3, "duplicate of line 1"), (4, "duplicate of line 1")]
    boxes, skipped = parse_label_text("", "l.txt", nc=1)
    assert boxes.shape == (0, 5) and skipped == []


def test_dataset_report_counts_and_serialises(tmp_path):
    files = make_split(tmp_path, "train", 4, nc=2)
    write_labels(files[0], ["0 0.3 0.4 0.3 0.4", "7 0.5 0.5 0.1 0.1", "0 0.3 0.4 0.3 0.4"])  # bad class, duplicate
    write_labels(files[1], [])  # empty label file: a background image
    background = write_image(tmp_path / "images" / "train" / "nolabel.jpg")  # no label file at all
    orphan = write_labels(tmp_path / "images" / "train" / "gone.jpg", ["0 0.5 0.5 0.1 0.1"])
    dataset = YoloDataset(files + [background], 64, nc=2, names=["cat", "dog"], cache=False)
    report = dataset.report
    assert (report.images, report.usable_images, report.background_images) == (5, 5, 2)
    assert report.boxes == 1 + 1 + 2 == sum(report.class_counts.values())
    assert report.class_counts == {"cat": 3, "dog": 1}  # img0 keeps its first row; img1 is emptied
    assert [(Path(s.path).name, s.line) for s in report.skipped_rows] == [("img0.txt", 2), ("img0.txt", 3)]
    assert report.labels_without_image == [str(orphan)]
    text = report.format()
    assert "5 images, 5 usable (2 background), 4 boxes in 2 classes" in text and "img0.txt:2: class 7" in text
    restored = DatasetReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert restored == report


def test_all_backgrounds_is_an_error(tmp_path):
    files = [write_image(tmp_path / "images" / "t" / f"{i}.jpg") for i in range(2)]
    write_labels(files[0], ["5 0.5 0.5 0.1 0.1"])  # only an invalid row
    with pytest.raises(DatasetError, match="no boxes"):
        YoloDataset(files, 64, nc=1, cache=False)


def test_no_usable_image_is_an_error(tmp_path):
    broken = tmp_path / "images" / "t" / "a.jpg"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match="no usable images among 1") as error:
        YoloDataset([broken], 64, nc=1, cache=False)
    assert "a.jpg" in str(error.value)
