"""The value a search returns, and its portable form (plain values) to send to other processes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonn_nas.search.arch import Architecture


@dataclass
class SearchResult:
    out_dir: Path
    arch: Architecture
    model_yaml: Path  # <out>/neck_nas_model.yaml
    weights: Path  # <out>/bestmodel.pt
    report: Path  # <out>/report.json
    metrics: dict


def portable_result(result: SearchResult) -> dict[str, Any]:
    """A SearchResult as plain values, to send to other processes (Architecture refuses pickling's attribute setting)."""
    return {**vars(result), "arch": result.arch.to_dict()}


def result_from_portable(fields: dict[str, Any]) -> SearchResult:
    return SearchResult(**{**fields, "arch": Architecture(fields["arch"])})


PATH_FIELDS = ("out_dir", "model_yaml", "weights", "report")


def result_to_json(result: SearchResult) -> dict[str, Any]:
    """A SearchResult as JSON values (paths as strings), to keep in a file."""
    return {k: str(v) if k in PATH_FIELDS else v for k, v in portable_result(result).items()}


def result_from_json(fields: dict[str, Any]) -> SearchResult:
    return result_from_portable({k: Path(v) if k in PATH_FIELDS else v for k, v in fields.items()})
