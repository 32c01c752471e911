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


def latency_device(spec: str | None, search_device: torch.device) -> torch.device | None:
    """Where latency costs are measured for a `latency_device` setting (None: on the search's device).

    A CUDA target on a machine without CUDA cannot be measured here: the search's device stands in, and the
    cost table's source (in the log and the report) says which device it was."""
    if spec is None:
        return None
    if spec == "cpu":
        return torch.device("cpu")
    if search_device.type == "cuda":
        return search_device
    if torch.cuda.is_available():
        return torch.device("cuda:0")
    from autonn_nas.utils.log import get_logger

    get_logger("utils.device").warning("latency_device cuda: this machine has no CUDA device, so latencies are measured on %s",
                                       search_device)
    return None
