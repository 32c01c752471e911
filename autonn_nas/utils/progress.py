"""Progress bars only where a person watches them: on a terminal. Written to a log file or a pipe, a bar is
noise (carriage returns, a line every refresh); there the callers log one line per phase instead."""
from __future__ import annotations

import sys
from typing import Any, Iterable


def bars_wanted(enabled: bool = True) -> bool:
    """True when `enabled` and stderr is a terminal."""
    return enabled and sys.stderr.isatty()


def progress(iterable: Iterable, description: str, enabled: bool = True, total: int | None = None, leave: bool = True) -> Any:
    """`iterable` behind a tqdm bar on a terminal (a no-op wrapper elsewhere, or when not `enabled`)."""
    from tqdm import tqdm

    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    return tqdm(iterable, total=total, desc=description, disable=not bars_wanted(enabled), file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5, leave=leave)
