"""Pick the compute device: CUDA when present, else CPU."""
from __future__ import annotations

import torch


def select_device(spec: str | None = None) -> torch.device:
    """Resolve a user device string ('', 'auto', 'cpu', 'cuda', '0', 'cuda:1') to a torch.device.

    An explicit CUDA request on a machine without CUDA is an error rather than a silent CPU run,
    because the user asked for it and would otherwise wait hours without knowing why.
    """
    spec = (spec or "auto").strip().lower()
    if spec in ("auto", ""):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.isdigit():
        spec = f"cuda:{spec}"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device '{spec}' requested but CUDA is not available on this machine; use --device cpu")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device '{spec}' requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return device
    raise ValueError(f"unknown device '{spec}': use auto, cpu, cuda, cuda:N or N")
