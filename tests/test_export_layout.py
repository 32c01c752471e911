"""Output layouts (yolov5 / yolov9) for both export formats, checked against PyTorch by a real
onnxruntime / torch.jit.load run, and the TorchScript config.txt that TANGO's pytorch template reads."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from autonn_nas.export.exporter import export_weights
from autonn_nas.export.images import image_batch
from autonn_nas.export.onnx import onnx_session, run_onnx
from test_export_support import EXPORT_IMG as IMG
from test_export_support import VAL_IMAGES


def _run(fmt, path, images):
    if fmt == "onnx":
        return torch.from_numpy(run_onnx(onnx_session(path), images.numpy()))
    return torch.jit.load(str(path))(images)


@pytest.mark.parametrize("layout", ["yolov5", "yolov9"])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_layout_matches_pytorch(weights, model, fmt, layout, tmp_path):
    result = export_weights(weights, fmt, out=tmp_path / f"m.{fmt}", device="cpu", layout=layout)
    assert result.agreement.ok and result.layout == layout
    images = image_batch(VAL_IMAGES[:1], IMG)
    with torch.no_grad():
        pred = model(images)[0]  # (1, N, 5 + nc)
        out = _run(fmt, result.path, images)
    nc = int(model.detect.nc)
    if layout == "yolov5":
        assert out.shape == pred.shape
        torch.testing.assert_close(out, pred, atol=1e-2, rtol=1e-3)
    else:
        assert out.shape == (1, 4 + nc, pred.shape[1])
        torch.testing.assert_close(out[:, :4].transpose(1, 2), pred[..., :4], atol=1e-2, rtol=1e-3)
        # class score = objectness x class probability, so the max class score ranks boxes like our NMS
        torch.testing.assert_close(out[:, 4:].transpose(1, 2), pred[..., 5:] * pred[..., 4:5], atol=1e-3, rtol=1e-3)


def test_torchscript_config_txt_is_what_the_template_reads(weights, model, tmp_path):
    path = export_weights(weights, "torchscript", out=tmp_path / "c.torchscript", device="cpu", layout="yolov9").path
    extra = {"config.txt": "", "meta.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    # as the template: json.loads with int keys, then int(d['stride']), d['names'][class id]
    d = json.loads(extra["config.txt"], object_hook=lambda d: {int(k) if k.isdigit() else k: v for k, v in d.items()})
    assert int(d["stride"]) == int(max(model.detect.stride.tolist()))
    assert [d["names"][i] for i in range(int(model.detect.nc))] == list(model.names)
    assert d["shape"] == [1, 3, IMG, IMG] and d["layout"] == "yolov9"
    assert json.loads(extra["meta.json"])["layout"] == "yolov9"


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_predict_reads_a_yolov9_export_as_it_reads_a_yolov5_one(fmt, tmp_path):
    from autonn_nas.export.predict import load_predictor, predict_files
    from test_export_support import make_bestmodel

    _yaml, boxing = make_bestmodel(tmp_path, img_size=64, score_shift=6.0)  # untrained, but it finds boxes
    detections = {}
    for layout in ("yolov5", "yolov9"):
        path = export_weights(boxing, fmt, out=tmp_path / f"{layout}.{fmt}", device="cpu", layout=layout).path
        found = list(predict_files(load_predictor(path, device="cpu"), VAL_IMAGES[:2], 64))
        detections[layout] = [p.detections for p in found]
    assert sum(len(d) for d in detections["yolov5"]) > 0
    for a, b in zip(detections["yolov5"], detections["yolov9"]):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-3)
