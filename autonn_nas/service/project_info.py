"""Read project_info.yaml as a TANGO project manager writes it.

The PM writes flat `key : value` lines (spaces around the colon), comments some keys out (`#basemodel : ...`)
and adds keys this stage does not know. Valid YAML is read as YAML; anything else falls back to a line
parser that accepts the PM's flat form and names the file and line of what it cannot read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ProjectInfoError(ValueError):
    """project_info.yaml is missing or unreadable; the message names the file and the problem."""


def _scalar(text: str) -> Any:
    """'5' -> 5, 'true' -> True, quoted strings unquoted; anything odd stays the plain string."""
    text = text.strip()
    if not text:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def parse_flat(text: str, source: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line == "---":
            continue
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            raise ProjectInfoError(f"{source}, line {number}: expected 'key : value', got {raw.strip()!r}")
        if " #" in value:  # trailing comment
            value = value.split(" #", 1)[0]
        values[key.strip()] = _scalar(value)
    return values


def read_project_info(path: Path) -> dict[str, Any]:
    """The key -> value mapping of a project_info.yaml; commented keys are absent, unknown keys kept."""
    if not path.is_file():
        raise ProjectInfoError(f"{path}: not found (the project manager writes project_info.yaml before /start)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectInfoError(f"{path}: cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        return {str(k).strip(): v for k, v in data.items()}
    if data is not None and not isinstance(data, str):
        raise ProjectInfoError(f"{path}: expected 'key : value' lines, got a YAML {type(data).__name__}")
    return parse_flat(text, str(path))
