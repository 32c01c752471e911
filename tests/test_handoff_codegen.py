"""The TANGO hand-off read the way TANGO's current code generator and its templates read it: the
`weight_file` list (the entry with `.pt` is the PyTorch model, the last other one the ONNX model),
`torch.jit.load(w, _extra_files={'config.txt': ''})` for stride and names, and the YOLOv9 output layout
`(batch, 4 + nc, anchors)` parsed as its templates do. The boxes must be the PyTorch model's, through this
project's own NMS."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
import yaml

from autonn_nas.export.images import image_batch
from autonn_nas.service.handoff import export_for_engine, neural_net_info, place_outputs
from autonn_nas.service.paths import ProjectPaths
from autonn_nas.train.checkpoint import load_checkpoint, model_from_checkpoint
from autonn_nas.train.nms import non_max_suppression
from test_export_support import NAMES, VAL_IMAGES, make_bestmodel

IMG = 64


@pytest.fixture(scope="module")
def tango_project(tmp_path_factory):
    """A project folder as a completed job in the TANGO profile leaves it (layout yolov9, engine tensorrt)."""
    paths = ProjectPaths.of(tmp_path_factory.mktemp("shared"), "u1", "p1")
    model_yaml, weights = make_bestmodel(paths.run_dir, img_size=IMG, score_shift=6.0)
    exports, skipped = export_for_engine(weights, "tensorrt", IMG, paths.run_dir, check_images=VAL_IMAGES, layout="yolov9")
    assert not skipped and set(exports) == {"torchscript", "onnx"}  # TANGO's pair, whatever the engine
    info = neural_net_info(model_yaml, IMG, NAMES, exports, skipped, layout="yolov9")
    place_outputs(paths, model_yaml, weights, info, [e.path for e in exports.values()])
    return paths, weights


def _codegen_files(info: dict) -> tuple[str, str, str]:
    """(pt, onnx, torchscript) as TANGO's code generator picks them from weight_file."""
    pt = onnx = None
    for entry in info["weight_file"]:
        if ".pt" in entry:
            pt = entry
        else:
            onnx = entry  # the last entry without .pt wins
    torchscript = next(e for e in info["weight_file"] if e.endswith(".torchscript"))
    return pt, onnx, torchscript


def _template_boxes(output: np.ndarray, conf_thres: float, iou_thres: float) -> torch.Tensor:
    """TANGO's YOLOv9 template post-processing: (1, 4 + nc, N) -> rows, xywh -> xyxy, best class score as the
    confidence, a threshold, NMS per class. (n, 6) [x1, y1, x2, y2, confidence, class], by confidence."""
    rows = torch.from_numpy(np.asarray(output))[0].T.float()
    xywh, scores = rows[:, :4], rows[:, 4:]
    confidence, classes = scores.max(1)
    keep = confidence > conf_thres
    xyxy = torch.cat([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)[keep]
    confidence, classes = confidence[keep], classes[keep]
    chosen = torchvision.ops.batched_nms(xyxy, confidence, classes, iou_thres)
    return torch.cat([xyxy[chosen], confidence[chosen, None], classes[chosen, None].float()], 1)


def _by_class_and_corner(detections: torch.Tensor) -> torch.Tensor:
    order = np.lexsort((detections[:, 1].numpy(), detections[:, 0].round().numpy(), detections[:, 5].numpy()))
    return detections[torch.from_numpy(order)]


def _same_detections(found: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert len(expected) > 0, "the reference finds no box: the comparison would prove nothing"
    assert found.shape == expected.shape, f"{what}: {len(found)} boxes, PyTorch {len(expected)}"
    found, expected = _by_class_and_corner(found), _by_class_and_corner(expected)  # near-tied confidences may swap
    assert torch.equal(found[:, 5], expected[:, 5]), f"{what}: other classes"
    # folded BN in float32: errors relative to the coordinates, which an untrained model makes large
    assert torch.allclose(found[:, :4], expected[:, :4], rtol=1e-4, atol=1e-3 * IMG), f"{what}: boxes differ"
    assert torch.allclose(found[:, 4], expected[:, 4], atol=1e-4), f"{what}: confidences differ"


def test_codegen_reads_the_tango_handoff_and_gets_pytorchs_boxes(tango_project):
    paths, weights = tango_project
    info = yaml.safe_load((paths.project_dir / "neural_net_info.yaml").read_text())
    pt, onnx_file, torchscript = _codegen_files(info)
    assert (pt, onnx_file, torchscript) == ("bestmodel.pt", "bestmodel.onnx", "bestmodel.torchscript")
    nc = info["nc"]
    assert info["output_pred_format"] == ["x", "y", "w", "h", "probability_of_classes"]
    assert info["output_size"] == [[1, 4 + nc, sum((IMG // s) ** 2 for s in (8, 16, 32)) * 4]]
    conf, iou = info["conf_thres"], info["iou_thres"]

    extra = {"config.txt": ""}
    module = torch.jit.load(str(paths.project_dir / torchscript), _extra_files=extra)
    config = json.loads(extra["config.txt"])
    assert int(config["stride"]) == max(info["stride"]) and config["shape"] == info["input_tensor_shape"]
    assert [config["names"][str(i)] if isinstance(config["names"], dict) else config["names"][i] for i in range(nc)] == NAMES

    import onnxruntime

    session = onnxruntime.InferenceSession(str(paths.project_dir / onnx_file), providers=["CPUExecutionProvider"])
    reference = model_from_checkpoint(load_checkpoint(weights))
    boxes_seen = 0
    for image_path in VAL_IMAGES[:4]:
        image = image_batch([image_path], IMG)
        with torch.no_grad():
            expected = non_max_suppression(reference(image)[0], conf, iou)[0]
            traced = module(image).numpy()
        onnx_output = session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]
        assert traced.shape == onnx_output.shape == (1, 4 + nc, info["output_size"][0][2])
        _same_detections(_template_boxes(traced, conf, iou), expected, f"torchscript on {image_path.name}")
        _same_detections(_template_boxes(onnx_output, conf, iou), expected, f"onnx on {image_path.name}")
        boxes_seen += len(expected)
    assert boxes_seen >= 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only path: with CUDA the hand-off is fp16")
def test_an_fp16_handoff_without_cuda_stays_fp32_and_says_why(tango_project):
    from autonn_nas.service.handoff import export_device

    device, note = export_device(True)
    assert device == "cpu" and "no CUDA device" in note and export_device(False) == ("cpu", None)
    paths, _ = tango_project
    info = neural_net_info(paths.project_dir / "neck_nas_model.yaml", IMG, NAMES, precision_note=note)
    assert info["input_data_type"] == "fp32" and info["precision_note"] == note
