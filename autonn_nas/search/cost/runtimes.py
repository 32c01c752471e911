"""How a module is run for a latency measurement: by PyTorch itself, or by ONNX Runtime (what most
deployments run: the module is exported to ONNX as `autonn-nas export` does and run in a session on the
same device). A runner is a no-argument callable; latency.measure_ms times it."""
from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

RUNTIMES = ("torch", "onnxruntime")


def available_runtimes() -> tuple[str, ...]:
    """The runtimes installed here (onnxruntime and onnx are the optional export extra)."""
    ort = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
    return RUNTIMES if ort else ("torch",)


def runtime_version(runtime: str) -> str:
    if runtime == "torch":
        return f"torch {torch.__version__}"
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


class _FirstOutput(nn.Module):
    """The module with one tensor output (a detector in eval mode returns (prediction, raw levels))."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.module(x)
        return y[0] if isinstance(y, (tuple, list)) else y


def make_runner(module: nn.Module, example: torch.Tensor, device: torch.device, runtime: str = "torch") -> Callable[[], object]:
    """A callable that runs `module` (in eval mode, on `device`) on `example` once through `runtime`."""
    if runtime == "torch":
        return lambda: module(example)
    if runtime != "onnxruntime":
        raise ValueError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    from autonn_nas.export.onnx import INPUT_NAME, export_onnx, onnx_session

    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(_FirstOutput(module).eval(), example, Path(folder) / "module.onnx")
        session = onnx_session(path, threads=torch.get_num_threads(), device=device.type)
    feed = {INPUT_NAME: example.detach().cpu().numpy()}
    return lambda: session.run(None, feed)
