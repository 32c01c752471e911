"""ONNX export (TorchScript-based exporter, dynamo=False: the dynamo exporter needs onnxscript) and an
onnxruntime session to run the result."""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autonn_nas.export.dependencies import require
from autonn_nas.utils.files import atomic_write_bytes

# 17: the newest opset that TensorRT 8.x, onnx2tf (tflite), TVM and RKNN-Toolkit2 all read; Mish is
# exported as x * tanh(softplus(x)) (the Mish op only exists from opset 18).
OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "output"


def export_onnx(module: nn.Module, example: torch.Tensor, path: str | Path, dynamic: bool = False,
                metadata: dict[str, Any] | None = None) -> Path:
    """Write `module` (traced on `example`) as ONNX to `path`, atomically, after onnx's checker passed.

    dynamic: batch, height and width become symbolic (height and width must still be multiples of the
    largest stride). `metadata` is stored as JSON strings in the model's metadata_props."""
    onnx = require("onnx", "ONNX export")
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch", 1: "boxes"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # tracing warns about Python ints taken from shapes; the shapes stay symbolic in the graph
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=OPSET, do_constant_folding=True,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=dynamic_axes)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), json.dumps(value)
    return atomic_write_bytes(path, proto.SerializeToString())


def onnx_session(path: str | Path, threads: int | None = None, device: str = "cpu") -> Any:
    """An onnxruntime session on the CPU, or with device "cuda" on the GPU (threads: intra-op threads, None =
    onnxruntime's default)."""
    ort = require("onnxruntime", "Running an ONNX model")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError("this onnxruntime has no CUDA provider (install onnxruntime-gpu), so it cannot run on the GPU")
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def run_onnx(session: Any, images: np.ndarray) -> np.ndarray:
    """The model's (bs, N, nc+5) prediction for an (bs, 3, H, W) array of the model's input dtype."""
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def onnx_input_dtype(session: Any) -> np.dtype:
    return np.float16 if "float16" in session.get_inputs()[0].type else np.float32
