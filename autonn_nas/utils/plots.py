"""matplotlib without a display (servers, containers) and figures saved atomically: the one way plots are made."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from autonn_nas.utils.files import atomic_write_bytes


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (imported on first use: matplotlib is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write `fig` as a PNG at `path` (temp file + rename) and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
