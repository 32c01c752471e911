"""onnx and onnxruntime are optional extras: imported only where they are used, with an actionable error."""
from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "pip install 'autonn-nas[export]'"


class MissingDependencyError(ValueError):
    """An optional package is not installed (a ValueError so the CLI prints the one-line message)."""


def require(module: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(f"{purpose} needs the '{module}' package, which is not installed ({error}); "
                                     f"install the export extra: {INSTALL_HINT}") from None
