"""onnx and onnxruntime are optional extras: imported only where they are used, with an actionable error."""
from __future__ import annotations

import importlib
from types import ModuleType

# the package is installed from its clone (it is on no index): the extra is named as the README installs it
INSTALL_HINT = "pip install -c constraints.txt -e '.[export]' in the autonn-nas clone"


class MissingDependencyError(ValueError):
    """An optional package is not installed (a ValueError so the CLI prints the one-line message)."""


def require(module: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(f"{purpose} needs the '{module}' package, which is not installed ({error}); "
                                     f"install the export extra: {INSTALL_HINT}") from None
