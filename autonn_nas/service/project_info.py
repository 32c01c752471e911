"""Read project_info.yaml as a TANGO project manager writes it.

The PM writes flat `key : value` lines (spaces around the colon), comments some keys out (`#basemodel : ...`)
and adds keys this stage does not know. Valid YAML is read as YAML; anything else falls back to a line
parser that accepts the PM's flat form and names the file and line of what it cannot read. The file is read
with the bounds of models/bounded_yaml.py, and no message quotes a line of it.

The keys the stage reads (KNOWN_KEYS) must be plain values (a word or a number); unknown keys are kept as
they are, whatever they hold.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from autonn_nas.models.bounded_yaml import YamlBoundsError, YamlInputError, load_yaml_text, read_bounded_text, shown

# the keys this stage reads (job_inputs.py, target.py); each must be a plain value of at most MAX_VALUE characters
KNOWN_KEYS = ("task_type", "dataset", "target_info", "acc", "precision_level", "lightweight_level", "learning_type",
              "weight_file", "weights", "engine")
MAX_VALUE = 256


class ProjectInfoError(ValueError):
    """project_info.yaml is missing or unreadable; the message names the file and the problem."""


def _scalar(text: str) -> Any:
    """'5' -> 5, 'true' -> True, quoted strings unquoted; anything odd stays the plain string."""
    text = text.strip()
    if not text:
        return None
    try:
        value = load_yaml_text(text, "value")
    except YamlInputError:
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
            raise ProjectInfoError(f"{source}, line {number}: expected 'key : value'" + ("" if colon else " (the line has no colon)"))
        if " #" in value:  # trailing comment
            value = value.split(" #", 1)[0]
        values[key.strip()] = _scalar(value)
    return values


def read_project_info(path: Path) -> dict[str, Any]:
    """The key -> value mapping of a project_info.yaml; commented keys are absent, unknown keys kept."""
    if not path.is_file():
        raise ProjectInfoError(f"{path}: not found (the project manager writes project_info.yaml before /start)")
    try:
        text = read_bounded_text(path)
    except OSError as exc:
        raise ProjectInfoError(f"{path}: cannot be read: {exc.strerror}") from None
    except YamlInputError as exc:
        raise ProjectInfoError(str(exc)) from None
    try:
        data = load_yaml_text(text, str(path))
    except YamlBoundsError as exc:
        raise ProjectInfoError(str(exc)) from None  # never read around the bounds with the line parser
    except YamlInputError:
        data = None  # the PM's flat form, which is not always valid YAML
    if isinstance(data, dict):
        info = {str(k).strip(): v for k, v in data.items()}
    elif data is not None and not isinstance(data, str):
        raise ProjectInfoError(f"{path}: expected 'key : value' lines, got a YAML {type(data).__name__}")
    else:
        info = parse_flat(text, str(path))
    _check_known_values(info, path)
    return info


def _check_known_values(info: dict[str, Any], path: Path) -> None:
    for key in KNOWN_KEYS:
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (dict, list)):
            raise ProjectInfoError(f"{path}: {key} must be a single value (a word or a number), got a YAML {type(value).__name__}")
        if len(str(value)) > MAX_VALUE:
            raise ProjectInfoError(f"{path}: {key} is {len(str(value))} characters long; at most {MAX_VALUE}: {shown(value)}")
