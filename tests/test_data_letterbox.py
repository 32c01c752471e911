"""Letterbox resize and the mapping back to original pixels (what evaluation relies on)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autonn_nas.data import YoloDataset
from autonn_nas.data.boxes import xywhn_to_xyxy, xyxy_to_xywhn
from autonn_nas.data.letterbox import letterbox, scale_boxes_to_original
from test_data_support import make_split


@pytest.mark.parametrize("shape0", [(48, 64), (64, 48), (37, 101), (128, 128), (300, 20)])
@pytest.mark.parametrize("new_shape", [64, 96, (64, 128)])
def test_letterbox_round_trip(shape0, new_shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (*shape0, 3), dtype=np.uint8)
    out, (ratio_h, ratio_w), (pad_w, pad_h) = letterbox(img, new_shape)
    expected_hw = (new_shape, new_shape) if isinstance(new_shape, int) else new_shape
    assert out.shape == (*expected_hw, 3)
    h0, w0 = shape0
    xy = rng.uniform(0, 1, (20, 2)) * [w0, h0]
    boxes = np.concatenate((xy, xy + rng.uniform(1, 10, (20, 2))), axis=1).clip(0, [w0, h0, w0, h0])
    moved = boxes * [ratio_w, ratio_h, ratio_w, ratio_h] + [pad_w, pad_h, pad_w, pad_h]
    assert np.all(moved[:, [0, 2]] <= out.shape[1] + 1e-6) and np.all(moved[:, [1, 3]] <= out.shape[0] + 1e-6)
    back = scale_boxes_to_original(moved, out.shape[:2], shape0, ((ratio_h, ratio_w), (pad_w, pad_h)))
    np.testing.assert_allclose(back, boxes, atol=1e-6)
    # without ratio_pad the same mapping is derived from the shapes
    np.testing.assert_allclose(scale_boxes_to_original(moved, out.shape[:2], shape0), boxes, atol=1e-6)
    tensor_back = scale_boxes_to_original(torch.tensor(moved, dtype=torch.float32), out.shape[:2], shape0, ((ratio_h, ratio_w), (pad_w, pad_h)))
    assert isinstance(tensor_back, torch.Tensor)
    np.testing.assert_allclose(tensor_back.numpy(), boxes, atol=1e-3)


def test_letterbox_padding_colour_auto_and_scaleup():
    img = np.zeros((50, 100, 3), np.uint8)
    out, ratio, pad = letterbox(img, 200)
    assert out.shape == (200, 200, 3) and ratio == (2.0, 2.0) and pad == (0.0, 50.0)
    assert tuple(out[0, 0]) == (114, 114, 114) and tuple(out[100, 100]) == (0, 0, 0)
    out, ratio, _ = letterbox(img, 200, scaleup=False)
    assert ratio == (1.0, 1.0) and out.shape == (200, 200, 3)
    out, _, pad = letterbox(img, 96, auto=True, stride=32)
    assert out.shape[0] % 32 == 0 and out.shape[1] == 96 and pad[0] == 0


def test_box_conversions_invert():
    boxes = np.array([[0.5, 0.5, 0.2, 0.4], [0.1, 0.9, 0.2, 0.2]], np.float32)
    pixel = xywhn_to_xyxy(boxes, 200, 100, 3, 7)
    np.testing.assert_allclose(pixel[0], [80 + 3, 30 + 7, 120 + 3, 70 + 7])
    pixel[:, [0, 2]] -= 3
    pixel[:, [1, 3]] -= 7
    np.testing.assert_allclose(xyxy_to_xywhn(pixel, 200, 100), boxes, atol=1e-6)
    np.testing.assert_allclose(xywhn_to_xyxy(torch.from_numpy(boxes), 200, 100).numpy(), xywhn_to_xyxy(boxes, 200, 100))


def test_dataset_targets_map_back_to_labels(tmp_path):
    """A val sample's targets, mapped through its shapes, are the original labels in original pixels."""
    files = make_split(tmp_path, "val", 2, size=(90, 50)) + make_split(tmp_path / "tall", "val", 1, size=(30, 70))
    dataset = YoloDataset(files, img_size=64, nc=2, cache=False)
    for index in range(len(dataset)):
        image, targets, _, ((h0, w0), ratio_pad) = dataset[index]
        assert image.shape == (3, 64, 64)
        in_input = xywhn_to_xyxy(targets[:, 2:].numpy(), 64, 64)
        back = scale_boxes_to_original(in_input, (64, 64), (h0, w0), ratio_pad)
        expected = xywhn_to_xyxy(dataset.labels[index][:, 1:], w0, h0)
        np.testing.assert_allclose(back, expected, atol=1e-3)
        assert targets[:, 1].tolist() == dataset.labels[index][:, 0].tolist()
