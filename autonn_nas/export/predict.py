"""Inference on image files with a checkpoint (.pt) or an export (.onnx, .torchscript): letterbox, NMS,
boxes mapped back to the original pixels; YOLO txt labels, COCO-style JSON and drawn pictures."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from autonn_nas.data.letterbox import scale_boxes_to_original
from autonn_nas.export.images import PreparedImage, prepare_image
from autonn_nas.train.coco_eval import detections_to_coco
from autonn_nas.train.nms import non_max_suppression
from autonn_nas.utils.device import select_device


@dataclass
class Predictor:
    """images (bs, 3, S, S) float 0..1 -> decoded prediction (bs, N, nc+5) on the CPU."""

    run: Callable[[torch.Tensor], torch.Tensor]
    names: list[str]
    img_size: int  # default input size (an ONNX export without --dynamic accepts only this one)
    fixed_size: bool = False
    description: str = ""


@dataclass
class ImagePrediction:
    image: PreparedImage
    detections: np.ndarray  # (n, 6) [x1, y1, x2, y2, conf, cls] in original-image pixels
    milliseconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def load_predictor(weights: str | Path, device: str = "auto", half: bool = False) -> Predictor:
    """A predictor for a checkpoint (.pt), an ONNX file or a TorchScript file, chosen by the file suffix."""
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"weights {weights} do not exist")
    suffix = weights.suffix.lower()
    if suffix == ".onnx":
        return _onnx_predictor(weights)
    torch_device = select_device(device)
    if half and torch_device.type != "cuda":
        raise ValueError(f"--half needs a CUDA device, this run uses {torch_device}; drop --half")
    dtype = torch.float16 if half else torch.float32
    if suffix == ".torchscript":
        from autonn_nas.export.torchscript import load_torchscript

        module, meta = load_torchscript(weights, torch_device)
        if meta.get("input_data_type") == "fp16":  # exported with --half: takes fp16 input only
            if torch_device.type != "cuda":
                raise ValueError(f"{weights} is an fp16 export and runs on CUDA only; export it again without --half for {torch_device}")
            dtype = torch.float16
        elif half:
            module = module.half()
        size = int(meta.get("input_tensor_shape", [0, 0, 0, 640])[-1])
        runner = _torch_runner(module, torch_device, dtype)
        return Predictor(_in_rows(runner, meta), list(meta.get("names") or []), size,
                         description=f"TorchScript on {torch_device}")
    from autonn_nas.export.exporter import load_model_for_export
    from autonn_nas.export.fuse import fuse_conv_bn
    from autonn_nas.train.checkpoint import checkpoint_img_size

    model, checkpoint = load_model_for_export(weights, torch_device)
    names = list(model.names)
    fused = fuse_conv_bn(model, inplace=True).to(dtype)
    return Predictor(_torch_runner(lambda x: fused(x)[0], torch_device, dtype), names, checkpoint_img_size(checkpoint),
                     description=f"PyTorch on {torch_device}{' fp16' if half else ''}")


def _torch_runner(module: Callable, device: torch.device, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return module(images.to(device, dtype)).float().cpu()

    return run


def _onnx_predictor(path: Path) -> Predictor:
    import json

    from autonn_nas.export.onnx import onnx_input_dtype, onnx_session, run_onnx

    session = onnx_session(path)
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    dtype = onnx_input_dtype(session)
    height = session.get_inputs()[0].shape[2]
    fixed = isinstance(height, int)
    size = height if fixed else int(meta.get("input_tensor_shape", [0, 0, 0, 640])[-1])
    run = lambda images: torch.from_numpy(run_onnx(session, images.numpy().astype(dtype))).float()  # noqa: E731
    return Predictor(_in_rows(run, meta), list(meta.get("names") or []), size, fixed_size=fixed, description="onnxruntime (CPU)")


def _in_rows(run: Callable[[torch.Tensor], torch.Tensor], meta: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """An export's runner giving (bs, N, 5 + nc) rows whatever layout it was exported in (meta's layout)."""
    from autonn_nas.export.exporter import from_layout

    layout = meta.get("layout", "yolov5")
    return run if layout == "yolov5" else (lambda images: from_layout(run(images), layout))


def predict_files(predictor: Predictor, files: Sequence[Path], img_size: int, conf: float = 0.25, iou: float = 0.45,
                  max_det: int = 300) -> Iterator[ImagePrediction]:
    """Image by image: letterbox to img_size, predict, NMS, map boxes to the original image."""
    for path in files:
        image = prepare_image(path, img_size)
        started = time.perf_counter()
        pred = predictor.run(image.tensor[None])
        detections = non_max_suppression(pred, conf_thres=conf, iou_thres=iou, max_det=max_det)[0]
        elapsed = (time.perf_counter() - started) * 1000
        if len(detections):
            detections[:, :4] = torch.as_tensor(scale_boxes_to_original(detections[:, :4], (img_size, img_size), image.original_hw,
                                                                        image.ratio_pad), dtype=detections.dtype)
        yield ImagePrediction(image, detections.numpy().astype(np.float64), elapsed)


def yolo_label_lines(detections: np.ndarray, width: int, height: int) -> list[str]:
    """YOLO format with confidence: 'cls cx cy w h conf', coordinates normalised to the original image."""
    lines = []
    for x1, y1, x2, y2, conf, cls in np.asarray(detections).reshape(-1, 6):
        cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
        lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f} {conf:.5f}")
    return lines


def coco_image_id(path: Path, index: int) -> int:
    """COCO's own ids for COCO file names (000000000139.jpg -> 139), else the image's position."""
    return int(path.stem) if path.stem.isdigit() else index


def coco_results(prediction: ImagePrediction, image_id: int) -> list[dict[str, Any]]:
    results = detections_to_coco(prediction.detections, image_id)
    for result in results:
        result["file_name"] = prediction.image.path.name
    return results

