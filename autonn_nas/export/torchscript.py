"""TorchScript export (a trace of the eval-mode decoded prediction) and loading it back."""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autonn_nas.utils.files import atomic_write_bytes

META_FILE = "meta.json"
CONFIG_FILE = "config.txt"  # what YOLOv5/v9's DetectMultiBackend (TANGO's pytorch template) reads: shape, stride, names
# _quiet_deprecation: torch 2.14 marks torch.jit as deprecated in favour of torch.export, but TorchScript is
# still what libtorch (C++) and TANGO's pytorch deployment load; the warning would only confuse users.  # stored inside the archive: names, strides, input size


def export_torchscript(module: nn.Module, example: torch.Tensor, path: str | Path, metadata: dict[str, Any] | None = None,
                       config: dict[str, Any] | None = None) -> Path:
    """Trace `module` on `example` and save it to `path` atomically. The trace records shapes as size
    ops (views use the input's batch and grid sizes), so other batch sizes and multiples of the largest
    stride run too."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)  # see _quiet_deprecation
        traced = torch.jit.trace(module, example, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={META_FILE: json.dumps(metadata or {}), CONFIG_FILE: json.dumps(config or {})})
    return atomic_write_bytes(path, buffer.getvalue())


def load_torchscript(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """(module in eval mode, metadata) of a file written by export_torchscript."""
    extra = {META_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # see _quiet_deprecation
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    module.eval()
    return module, json.loads(extra[META_FILE] or "{}")
