"""The stage's products in the project folder: the derived YAML, its weights, the exports the project's
engine needs, the model code (neck_nas_models/) and neural_net_info.yaml.

Each file is written atomically (temp file + rename); the model YAML, the stage's main product, is placed
last, so a job killed part-way never leaves a neck_nas_model.yaml without the files that go with it.

Which export goes with which TANGO `engine` (project_info.yaml) is the table ENGINE_FORMATS: every
runtime that converts from ONNX gets bestmodel.onnx, the pytorch engine (libtorch / torch.jit.load)
gets bestmodel.torchscript; no engine, or one not in the table, gets no export (logged). The TANGO hand-off
(output layout yolov9, NAS_PROFILE=tango) always carries both, as TANGO's AutoNN does: its code generator
takes the `weight_file` entries without `.pt` in their name as the ONNX model, the last one winning, so the
list is ordered bestmodel.pt, bestmodel.torchscript, bestmodel.onnx.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from autonn_nas.models.yolo import build_model, load_cfg
from autonn_nas.service.paths import MODEL_PACKAGE, MODEL_YAML, NET_INFO, ONNX_FILE, TORCHSCRIPT_FILE, WEIGHTS, ProjectPaths
from autonn_nas.utils.files import atomic_write_bytes, atomic_write_yaml
from autonn_nas.utils.log import get_logger

log = get_logger("service.handoff")

CONF_THRES = 0.25
IOU_THRES = 0.45
# TANGO engine -> export formats. TensorRT (trtexec/onnx-parser), tflite (onnx2tf), TVM (relay.frontend.from_onnx),
# ARM ACL (armnn onnx parser), RKNN (rknn-toolkit2 load_onnx), OpenVINO and onnxruntime all start from ONNX.
ENGINE_FORMATS: dict[str, tuple[str, ...]] = {
    "pytorch": ("torchscript",),
    "tensorrt": ("onnx",),
    "tflite": ("onnx",),
    "tvm": ("onnx",),
    "acl": ("onnx",),
    "rknn": ("onnx",),
    "openvino": ("onnx",),
    "onnx": ("onnx",),
    "onnxruntime": ("onnx",),
}
EXPORT_FILES = {"onnx": ONNX_FILE, "torchscript": TORCHSCRIPT_FILE}
TANGO_LAYOUT = "yolov9"  # the output layout TANGO's current code generator parses
TANGO_FORMATS = ("torchscript", "onnx")  # what TANGO's AutoNN hands off, whatever the engine
CHECK_IMAGES = 4  # val images every export is compared with PyTorch on
# output_pred_format, TANGO's description of one predicted box per layout
PRED_FORMATS = {"yolov5": ["x", "y", "w", "h", "confidence", "probability_of_classes"],
                "yolov9": ["x", "y", "w", "h", "probability_of_classes"]}


def export_formats(engine: Any, layout: str = "yolov5") -> tuple[str, ...]:
    """The export formats the hand-off carries: TANGO's pair for its layout, else what the project's `engine`
    key asks for (empty when it names none we know)."""
    if layout == TANGO_LAYOUT:
        return TANGO_FORMATS
    return ENGINE_FORMATS.get(str(engine or "").strip().lower(), ())


def export_device(half: bool) -> tuple[str, str | None]:
    """(device, note) for the exports: an fp16 hand-off needs CUDA (fp16 convolutions do not run on CPU);
    without it the exports stay fp32 and the note says why, for the log and neural_net_info.yaml."""
    import torch

    if not half:
        return "cpu", None
    if torch.cuda.is_available():
        return "cuda", None
    return "cpu", ("fp16 was asked for (acc cuda) but this machine has no CUDA device to export and check an fp16 "
                   "model on: the exports are fp32; a TensorRT build can still make an fp16 engine from them")


def export_for_engine(weights: Path, engine: Any, img_size: int, out_dir: Path, check_images: Sequence[Path] = (),
                      layout: str = "yolov5", half: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """Export `weights` into `out_dir` for the engine; returns (format -> ExportResult, format -> reason skipped).

    A missing optional package (onnx/onnxruntime) skips that export with its reason (the YAML and weights,
    the stage's product, are still delivered). An fp16 export that does not reproduce PyTorch is made again in
    fp32, every format (the exports share one precision), and each result's note says why: measured on an H200,
    a barely trained network's boxes moved by over 1000 px between fp16 and fp32 PyTorch itself. An fp32 export
    that does not reproduce PyTorch raises."""
    from autonn_nas.export.exporter import ExportMismatch

    formats = export_formats(engine, layout)
    if not formats:
        log.info("engine %r asks for no export (known engines: %s)", engine, ", ".join(ENGINE_FORMATS))
    device, note = export_device(half)
    if note:
        log.warning("%s", note)
    try:
        return _export_formats(weights, formats, img_size, out_dir, check_images, layout, device, half=device == "cuda")
    except ExportMismatch as error:
        if device != "cuda":
            raise
        reason = f"the fp16 export did not reproduce the PyTorch model ({error}); the exports are fp32 instead"
        log.warning("%s", reason)
        done, skipped = _export_formats(weights, formats, img_size, out_dir, check_images, layout, "cpu", half=False)
        for result in done.values():
            result.note = reason
        return done, skipped


def _export_formats(weights: Path, formats: Sequence[str], img_size: int, out_dir: Path, check_images: Sequence[Path],
                    layout: str, device: str, half: bool) -> tuple[dict[str, Any], dict[str, str]]:
    from autonn_nas.export.dependencies import MissingDependencyError
    from autonn_nas.export.exporter import export_weights

    done, skipped = {}, {}
    for fmt in formats:
        try:
            result = export_weights(weights, fmt, img_size=img_size, out=out_dir / EXPORT_FILES[fmt], device=device,
                                    half=half, check_images=list(check_images[:CHECK_IMAGES]) or None, layout=layout)
        except MissingDependencyError as error:
            log.warning("%s export skipped: %s", fmt, error)
            skipped[fmt] = str(error)
            continue
        log.info("%s export: %s", fmt, result.agreement.describe())
        done[fmt] = result
    return done, skipped


def _box_count(detect: Any, size: int) -> int:
    return int(detect.na) * sum((size // int(s)) ** 2 for s in detect.stride.tolist())


def _export_entry(result: Any, detect: Any) -> dict[str, Any]:
    from autonn_nas.export.onnx import INPUT_NAME, OPSET, OUTPUT_NAME

    size = result.img_size
    boxes = _box_count(detect, size)
    yolov9 = result.layout == TANGO_LAYOUT
    entry = {
        "file": EXPORT_FILES[result.format],
        "input_tensor_shape": [1, 3, size, size],
        "input_data_type": "fp16" if result.half else "fp32",
        "layout": result.layout,
        "output_shape": [1, 4 + int(detect.nc), boxes] if yolov9 else [1, boxes, int(detect.no)],
        "output": ("decoded: xywh in input pixels, then class scores (objectness x class probability); apply NMS" if yolov9 else
                   "decoded: xywh in input pixels, objectness, class probabilities (sigmoid applied); apply NMS"),
        "bn_folded": True,  # every Conv's BN, into its convolution; not the one below
        "bn_kept": "the CSP blocks' BatchNorm after the concatenation of their two branches (a per-channel affine)",
        "max_abs_diff_vs_pytorch": {"boxes_px": result.agreement.box_px, "boxes_relative": result.agreement.box_rel,
                                    "probabilities": result.agreement.score, "images": result.agreement.images},
    }
    if result.format == "onnx":
        entry.update(opset=OPSET, input_name=INPUT_NAME, output_name=OUTPUT_NAME, runtime="onnxruntime / TensorRT / onnx2tf ...")
    else:
        entry.update(runtime="torch.jit.load (Python) or torch::jit::load (libtorch C++)")
    return entry


def neural_net_info(model_yaml: Path, img_size: int, names: Sequence[str] | None = None,
                    exports: dict[str, Any] | None = None, skipped: dict[str, str] | None = None,
                    layout: str = "yolov5", precision_note: str | None = None) -> dict[str, Any]:
    """TANGO AutoNN's neural_net_info keys, filled from the model that `model_yaml` builds, plus what each
    export is and how to rebuild the network in Python from the project folder alone. `layout` is the
    exports' output layout; `precision_note` why an fp16 hand-off that was asked for is fp32."""
    from autonn_nas.export.standalone import model_source_files

    model = build_model(model_yaml)
    detect = model.detect
    strides = [int(s) for s in detect.stride.tolist()]
    if any(img_size % s for s in strides):
        raise ValueError(f"input size {img_size} is not a multiple of the model's strides {strides}")
    nc = int(detect.nc)
    names = [str(n) for n in names] if names is not None else [str(i) for i in range(nc)]
    if len(names) != nc:
        raise ValueError(f"{model_yaml}: nc is {nc} but the dataset names {len(names)} classes")
    exports = exports or {}
    model_files = [f"{MODEL_PACKAGE}/{p.name}" for p in model_source_files()]
    info = {
        # TANGO AutoNN's order: code_gen takes the entry with .pt as the PyTorch model and the last other one as ONNX
        "weight_file": [WEIGHTS, *(EXPORT_FILES[fmt] for fmt in TANGO_FORMATS if fmt in exports)],
        "config_file": MODEL_YAML,
        # how code_gen rebuilds the network: base_dir_autonn (relative to the project folder) goes on sys.path,
        # class_file[0] names the module, class_name the callable and its cfg; the package needs torch and PyYAML
        "base_dir_autonn": ".",
        "class_file": [f"{MODEL_PACKAGE}/yolo.py", *(f for f in model_files if f != f"{MODEL_PACKAGE}/yolo.py")],
        "class_name": f"build_model(cfg='{MODEL_YAML}')",
        "model_package": MODEL_PACKAGE,
        "model_files": model_files,
        "build": (f"sys.path.insert(0, <project folder>); from {MODEL_PACKAGE} import build_model; "
                  f"model = build_model('{MODEL_YAML}'); "
                  f"model.load_state_dict(torch.load('{WEIGHTS}', map_location='cpu', weights_only=True)['state_dict']); model.eval()"),
        "weight_file_keys": "state_dict (weights), model_yaml (the config as a dict), nc, names, arch, metrics, img_size",
        "nc": nc,
        "names": names,
        "input_tensor_shape": [1, 3, img_size, img_size],
        # the exports' input; all exports share one precision
        "input_data_type": "fp16" if any(result.half for result in exports.values()) else "fp32",
        "anchors": load_cfg(model_yaml)["anchors"],
        # output_number: detection levels; output_size: yolov5, the PyTorch model's raw per-level maps (as TANGO's
        # anchor-based entries); yolov9, the exports' decoded (1, 4 + nc, boxes) output (as its anchor-free ones)
        "output_number": int(detect.nl),
        "output_size": ([[1, 4 + nc, _box_count(detect, img_size)]] if layout == TANGO_LAYOUT else
                        [[1, int(detect.na), img_size // s, img_size // s, int(detect.no)] for s in strides]),
        "output_pred_format": PRED_FORMATS[layout],
        "output_layout": layout,
        "stride": strides,
        "need_nms": True,
        "conf_thres": CONF_THRES,
        "iou_thres": IOU_THRES,
    }
    notes = [precision_note, *{result.note for result in exports.values() if getattr(result, "note", None)}]
    if any(notes):
        info["precision_note"] = "; ".join(note for note in notes if note)
    for fmt, result in exports.items():
        info[f"{fmt}_file"] = EXPORT_FILES[fmt]
    if exports:
        info["exports"] = {fmt: _export_entry(result, detect) for fmt, result in exports.items()}
    if skipped:
        info["exports_skipped"] = dict(skipped)
    return info


def search_img_size(report: Path | None, metrics: dict[str, Any], fallback: int) -> int:
    """The image size the search trained at: from its metrics, else its report's settings, else `fallback`."""
    if isinstance(metrics.get("img_size"), int):
        return metrics["img_size"]
    if report is not None and report.is_file():
        try:
            data = json.loads(report.read_text())
        except ValueError:
            data = {}
        for holder in (data, data.get("settings") or {}):
            if isinstance(holder, dict) and isinstance(holder.get("img_size"), int):
                return holder["img_size"]
    return fallback


def place_outputs(paths: ProjectPaths, model_yaml: Path, weights: Path, info: dict[str, Any],
                  export_files: Sequence[Path] = ()) -> dict[str, str]:
    """Copy the run's products into the project folder atomically; returns name -> path.

    export_files are placed under their own names (bestmodel.onnx, bestmodel.torchscript)."""
    from autonn_nas.export.standalone import place_model_package

    atomic_write_bytes(paths.output(WEIGHTS), weights.read_bytes())
    for export in export_files:
        atomic_write_bytes(paths.output(export.name), export.read_bytes())
    place_model_package(paths.project_dir, MODEL_PACKAGE, config_file=MODEL_YAML, weight_file=WEIGHTS)
    atomic_write_yaml(paths.output(NET_INFO), info)
    atomic_write_bytes(paths.output(MODEL_YAML), model_yaml.read_bytes())
    return paths.outputs()
