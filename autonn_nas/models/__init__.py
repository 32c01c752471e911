"""Model core: building blocks, the YAML parser, the neck search space and the choice block."""
from importlib import import_module
from typing import Any

from .bounded_yaml import YamlInputError, load_yaml_file
from .search_space import BASE_CANDIDATE, CANDIDATES, ArchitectureError

# imported on first use (PEP 562): they need torch, and what reads only YAML or names (the CLI's --help, the stage's
# checks of a project at /start) must not pay for it. Relative to this package's own name: the same file serves
# the copy of this package that every hand-off carries (export/standalone.py), under another name.
_LAZY = {
    "MBottleneckCSP2": "choice", "active_architecture": "choice", "clear_mixture": "choice", "searchable_blocks": "choice",
    "set_architecture": "choice", "ConfigError": "yolo", "Model": "yolo", "build_model": "yolo", "load_cfg": "yolo",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BASE_CANDIDATE",
    "CANDIDATES",
    "ArchitectureError",
    "ConfigError",
    "MBottleneckCSP2",
    "Model",
    "YamlInputError",
    "active_architecture",
    "build_model",
    "clear_mixture",
    "load_cfg",
    "load_yaml_file",
    "searchable_blocks",
    "set_architecture",
]
