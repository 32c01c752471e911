"""predict: boxes mapped back to the original pixels (checked with an oracle that predicts the ground truth),
YOLO txt / COCO JSON / drawn pictures from the CLI, for a checkpoint and for each export format."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from autonn_nas.cli import main
from autonn_nas.data.images import load_image
from autonn_nas.data.letterbox import letterbox
from autonn_nas.export.draw import class_color, draw_detections
from autonn_nas.export.exporter import export_weights
from autonn_nas.export.predict import Predictor, predict_files, yolo_label_lines
from test_export_support import DATASET, NAMES, VAL_IMAGES, make_bestmodel

IMG = 96


def _labels(image_path):
    text = (DATASET / "labels" / "val2017" / f"{image_path.stem}.txt").read_text()
    return np.array([[float(v) for v in line.split()] for line in text.splitlines() if line.strip()]).reshape(-1, 5)


def _labelled_images(n):
    return [p for p in VAL_IMAGES if len(_labels(p))][:n]


def oracle_predictor(files, img_size):
    """Predicts each image's ground truth (in letterboxed input pixels), as a perfect model would."""
    queue = list(files)

    def run(images):
        path = queue.pop(0)
        original = load_image(path)
        h0, w0 = original.shape[:2]
        _, (ratio_h, ratio_w), (pad_w, pad_h) = letterbox(original, img_size)
        labels = _labels(path)
        pred = torch.zeros(1, len(labels), 5 + len(NAMES))
        for i, (cls, cx, cy, w, h) in enumerate(labels):
            pred[0, i, :4] = torch.tensor([cx * w0 * ratio_w + pad_w, cy * h0 * ratio_h + pad_h, w * w0 * ratio_w, h * h0 * ratio_h])
            pred[0, i, 4] = 0.9
            pred[0, i, 5 + int(cls)] = 1.0
        return pred

    return Predictor(run, list(NAMES), img_size)


@pytest.mark.parametrize("img_size", [320, 640])
def test_boxes_come_back_in_original_pixels(img_size):
    files = _labelled_images(3)
    predictions = list(predict_files(oracle_predictor(files, img_size), files, img_size, conf=0.25, iou=0.99))
    for path, prediction in zip(files, predictions):
        labels = _labels(path)
        height, width = prediction.image.original_hw
        got = np.array([[float(v) for v in line.split()] for line in yolo_label_lines(prediction.detections, width, height)])
        assert len(got) == len(labels), path
        # match by sorting (class, then centre x): NMS reorders by confidence
        order = lambda a: a[np.lexsort((a[:, 1], a[:, 0]))]  # noqa: E731
        got, labels = order(got[:, :5]), order(labels)
        np.testing.assert_array_equal(got[:, 0], labels[:, 0])
        # a letterbox pixel is up to 1/ratio original pixels: allow one of those, normalised
        ratio = img_size / max(width, height)
        np.testing.assert_allclose(got[:, 1:], labels[:, 1:], atol=1.0 / ratio / min(width, height))


def test_drawing_puts_class_coloured_boxes_where_the_detections_are():
    image = np.full((200, 300, 3), 40, dtype=np.uint8)
    drawn = np.asarray(draw_detections(image, np.array([[50, 80, 250, 180, 0.9, 16]]), NAMES))
    assert tuple(drawn[130, 50]) == class_color(16) and tuple(drawn[180, 150]) == class_color(16)  # left and bottom edges
    assert tuple(drawn[130, 150]) == (40, 40, 40)  # inside stays untouched
    assert (drawn[60:80, 50:120] == 255).any()  # the white label text above the box


@pytest.mark.parametrize("box", [(0, 0, 120, 60), (285, 2, 299, 60)], ids=["top-left", "top-right"])
def test_a_label_at_the_image_edge_stays_whole_inside_the_image(box):
    image = np.full((200, 300, 3), 40, dtype=np.uint8)

    def text_pixels(detection: list) -> int:  # neither background nor the class colour of the box and label patch
        drawn = np.asarray(draw_detections(image, np.array([detection]), NAMES))
        return int((np.any(drawn != 40, axis=-1) & np.any(drawn != class_color(16), axis=-1)).sum())

    # the same label drawn in the middle of the image, where nothing can clip it, has as many text pixels
    assert text_pixels([*box, 0.87, 16]) == text_pixels([100, 100, 200, 150, 0.87, 16]) > 0


def test_label_origin_keeps_the_label_inside_the_image():
    from autonn_nas.export.draw import label_origin

    assert label_origin((50, 80), (60, 14), (300, 200)) == (50, 66)  # above the box when there is room
    assert label_origin((50, 5), (60, 14), (300, 200)) == (50, 5)  # inside the box at the top edge
    assert label_origin((280, 5), (60, 14), (300, 200)) == (240, 5)  # pushed in from the right edge
    assert label_origin((10, 195), (60, 14), (300, 200)) == (10, 181)  # and from the bottom (an image-high label row)


@pytest.fixture(scope="module")
def weights_by_format(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict")
    _yaml, weights = make_bestmodel(folder, img_size=IMG, score_shift=6.0)
    files = {"pt": weights}
    for fmt in ("onnx", "torchscript"):
        files[fmt] = export_weights(weights, fmt, device="cpu").path
    return files


@pytest.mark.parametrize("fmt", ["pt", "onnx", "torchscript"])
def test_cli_writes_labels_json_and_pictures(weights_by_format, fmt, tmp_path, capsys):
    sources = [str(p) for p in VAL_IMAGES[:2]]
    out = tmp_path / "out"
    assert main(["predict", "--weights", str(weights_by_format[fmt]), "--source", *sources, "--conf", "0.3", "--save",
                 "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "2 image(s)" in printed and f"{IMG} px" in printed
    results = json.loads((out / "predictions.json").read_text())
    for path in VAL_IMAGES[:2]:
        lines = (out / "labels" / f"{path.stem}.txt").read_text().splitlines()
        rows = [r for r in results if r["file_name"] == path.name]
        assert len(rows) == len(lines) and all(r["image_id"] == int(path.stem) for r in rows)
        values = np.array([[float(v) for v in line.split()] for line in lines]).reshape(-1, 6)
        assert ((values[:, 1:5] >= 0) & (values[:, 1:5] <= 1)).all() and (values[:, 5] > 0.3).all()
        with Image.open(path) as original, Image.open(out / f"{path.stem}.jpg") as drawn:
            assert drawn.size == original.size
    assert results and {"image_id", "category_id", "bbox", "score", "file_name"} <= set(results[0])


def test_exports_predict_what_the_checkpoint_predicts(weights_by_format, tmp_path):
    found = {}
    for fmt, weights in weights_by_format.items():
        out = tmp_path / fmt
        assert main(["predict", "--weights", str(weights), "--source", str(VAL_IMAGES[0]), "--conf", "0.01", "--out", str(out),
                     "--device", "cpu"]) == 0
        found[fmt] = sorted(json.loads((out / "predictions.json").read_text()), key=lambda r: -r["score"])[:5]
    for fmt in ("onnx", "torchscript"):
        assert [r["category_id"] for r in found[fmt]] == [r["category_id"] for r in found["pt"]]
        np.testing.assert_allclose([r["bbox"] for r in found[fmt]], [r["bbox"] for r in found["pt"]], atol=0.05)


def test_static_onnx_refuses_another_size(weights_by_format, tmp_path, capsys):
    assert main(["predict", "--weights", str(weights_by_format["onnx"]), "--source", str(VAL_IMAGES[0]), "--img", "128",
                 "--out", str(tmp_path)]) == 2
    assert "--dynamic" in capsys.readouterr().err
