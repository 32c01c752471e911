"""Export a checkpoint (bestmodel.pt, best.pt) to ONNX or TorchScript and verify the file against PyTorch.

What is exported is the eval-mode decoded prediction (bs, N, nc+5) only, with BN folded into the convs;
the raw per-level maps are training-time outputs and are left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from autonn_nas.export.formats import FORMATS, LAYOUTS
from autonn_nas.export.fuse import fuse_conv_bn
from autonn_nas.export.verify import Agreement, compare
from autonn_nas.models.yolo import Model
from autonn_nas.train.checkpoint import checkpoint_img_size, load_checkpoint, model_from_checkpoint, reject_supernet
from autonn_nas.utils.device import select_device

SYNTHETIC_SEED = 0
SYNTHETIC_IMAGES = 2


def to_layout(prediction: torch.Tensor, layout: str) -> torch.Tensor:
    """The decoded (bs, N, 5 + nc) prediction in `layout`."""
    if layout == "yolov5":
        return prediction
    if layout == "yolov9":
        scores = prediction[..., 5:] * prediction[..., 4:5]
        return torch.cat([prediction[..., :4], scores], -1).transpose(1, 2)
    raise ValueError(f"unknown output layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")


def as_rows(prediction: torch.Tensor, layout: str) -> torch.Tensor:
    """One row per box (xywh first, then scores), the form verify.compare reads, from either layout."""
    return prediction.transpose(1, 2) if layout == "yolov9" else prediction


def from_layout(prediction: torch.Tensor, layout: str) -> torch.Tensor:
    """An export's output in `layout` back as (bs, N, 5 + nc) rows for the project's NMS: a yolov9 box's class
    scores already hold the objectness, so it is 1 (the NMS confidence, objectness x class, stays the score)."""
    if layout != "yolov9":
        return prediction
    rows = prediction.transpose(1, 2)
    return torch.cat([rows[..., :4], torch.ones_like(rows[..., :1]), rows[..., 4:]], -1)


class DecodedPrediction(nn.Module):
    """The exported graph: image batch in, decoded prediction in `layout` out."""

    def __init__(self, model: Model, layout: str = "yolov5"):
        super().__init__()
        self.model = model
        self.layout = layout

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return to_layout(self.model(images)[0], self.layout)


class ExportMismatch(ValueError):
    """The exported file does not reproduce the PyTorch model within the tolerance (the file is removed)."""


@dataclass
class ExportResult:
    path: Path
    format: str
    img_size: int
    half: bool
    dynamic: bool
    agreement: Agreement
    layout: str = "yolov5"
    note: str | None = None  # e.g. why an fp16 export that was asked for is fp32

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "img_size": self.img_size, "half": self.half,
                "dynamic": self.dynamic, "layout": self.layout, "agreement": self.agreement.to_dict()}


def default_output(weights: str | Path, fmt: str) -> Path:
    return Path(weights).with_suffix(FORMATS[fmt])


OUTPUT_DESCRIPTION = {
    "yolov5": "(batch, boxes, nc+5): xywh in input pixels, objectness, class probabilities; needs NMS",
    "yolov9": "(batch, 4+nc, boxes): xywh in input pixels, class scores (objectness x class probability); needs NMS",
}


def export_metadata(model: Model, img_size: int, half: bool, dynamic: bool, layout: str = "yolov5") -> dict[str, Any]:
    detect = model.detect
    return {"names": list(model.names), "nc": int(detect.nc), "stride": [int(s) for s in detect.stride.tolist()],
            "input_tensor_shape": [1, 3, img_size, img_size], "input_data_type": "fp16" if half else "fp32",
            "dynamic": dynamic, "layout": layout, "output": OUTPUT_DESCRIPTION[layout]}


def torchscript_config(model: Model, img_size: int, layout: str) -> dict[str, Any]:
    """config.txt as YOLOv5/v9's DetectMultiBackend (TANGO's pytorch template) reads it: int(d['stride'])
    (the largest stride, one int) and d['names'] indexed by class id (a dict, keys as JSON strings)."""
    return {"shape": [1, 3, img_size, img_size], "stride": int(max(model.detect.stride.tolist())),
            "names": {str(i): str(n) for i, n in enumerate(model.names)}, "layout": layout}


def check_inputs(check_images: Sequence[str | Path] | None, img_size: int) -> tuple[torch.Tensor, str]:
    """Letterboxed real images when given, else a few seeded random images (and a word saying which)."""
    if check_images:
        from autonn_nas.export.images import image_batch, list_images

        files = list_images(check_images)
        return image_batch(files, img_size), "images"
    generator = torch.Generator().manual_seed(SYNTHETIC_SEED)
    return torch.rand(SYNTHETIC_IMAGES, 3, img_size, img_size, generator=generator), "synthetic random inputs"


def _check_img_size(img_size: int, model: Model) -> None:
    stride = int(max(model.detect.stride.tolist()))
    if img_size <= 0 or img_size % stride:
        raise ValueError(f"--img must be a positive multiple of the model's largest stride {stride}, got {img_size}")


def load_model_for_export(weights: str | Path, device: torch.device) -> tuple[Model, dict[str, Any]]:
    checkpoint = load_checkpoint(weights)
    reject_supernet(checkpoint, weights)
    return model_from_checkpoint(checkpoint, device), checkpoint


@torch.no_grad()
def predict_exported(fmt: str, path: Path, images: torch.Tensor, dynamic: bool, half: bool, device: torch.device) -> torch.Tensor:
    """Run the exported file on `images` (one call when dynamic, else image by image at batch 1)."""
    batches = [images] if dynamic else list(images.split(1))
    if fmt == "onnx":
        from autonn_nas.export.onnx import onnx_input_dtype, onnx_session, run_onnx

        session = onnx_session(path)
        dtype = onnx_input_dtype(session)
        return torch.cat([torch.from_numpy(run_onnx(session, b.numpy().astype(dtype))).float() for b in batches])
    from autonn_nas.export.torchscript import load_torchscript

    module, _meta = load_torchscript(path, device)
    dtype = torch.float16 if half else torch.float32
    return torch.cat([module(b.to(device, dtype)).float().cpu() for b in batches])


def export_weights(
    weights: str | Path,
    fmt: str,
    img_size: int | None = None,
    half: bool = False,
    dynamic: bool = False,
    out: str | Path | None = None,
    device: str | torch.device | None = "auto",
    check_images: Sequence[str | Path] | None = None,
    layout: str = "yolov5",
) -> ExportResult:
    """Export `weights` to `fmt` (onnx | torchscript) and verify it; raises ValueError when the exported
    model's prediction differs from PyTorch's by more than the tolerance (the file is then removed)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown output layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    device = device if isinstance(device, torch.device) else select_device(device)
    if half and device.type != "cuda":
        raise ValueError(f"--half exports an fp16 model and needs a CUDA device (fp16 convolutions are not supported on {device.type}); "
                         "drop --half, or run on a machine with CUDA (--device cuda)")
    model, checkpoint = load_model_for_export(weights, device)
    img_size = img_size or checkpoint_img_size(checkpoint)
    _check_img_size(img_size, model)
    path = Path(out) if out else default_output(weights, fmt)
    dtype = torch.float16 if half else torch.float32

    deployable = DecodedPrediction(fuse_conv_bn(model), layout).to(device, dtype).eval()
    example = torch.zeros(1, 3, img_size, img_size, device=device, dtype=dtype)
    metadata = export_metadata(model, img_size, half, dynamic, layout)
    if fmt == "onnx":
        from autonn_nas.export.onnx import export_onnx

        export_onnx(deployable, example, path, dynamic=dynamic, metadata=metadata)
    else:
        from autonn_nas.export.torchscript import export_torchscript

        export_torchscript(deployable, example, path, metadata=metadata, config=torchscript_config(model, img_size, layout))

    images, source = check_inputs(check_images, img_size)
    with torch.no_grad():
        reference = to_layout(model(images.to(device))[0].float(), layout).cpu()
    exported = predict_exported(fmt, path, images, dynamic, half, device)
    if exported.shape != reference.shape:
        raise ExportMismatch(f"{fmt} export of {weights} gives shape {tuple(exported.shape)}, PyTorch's {tuple(reference.shape)}")
    agreement = compare(as_rows(reference, layout), as_rows(exported, layout), img_size, "fp16" if half else "fp32", source)
    if not agreement.ok:
        path.unlink(missing_ok=True)
        raise ExportMismatch(f"{fmt} export of {weights} does not reproduce PyTorch ({agreement.describe()}); {path} was removed")
    return ExportResult(path, fmt, img_size, half, dynamic, agreement, layout)
