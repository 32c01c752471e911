"""One search at a time per machine: a job waits for an exclusive lock on a file before it searches.

A second project's /start while a search runs is accepted (`started`) and its job waits here with phase
`queued`; jobs then run one at a time. The lock is released by the kernel when the process ends, however it
ends. Among several waiting jobs the order is not guaranteed (the kernel wakes the waiters and one wins).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

from autonn_nas.service.file_lock import file_lock


@contextlib.contextmanager
def queue_turn(lock_path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Wait (as long as it takes) for the machine's search turn; `on_wait` is called once if another search holds it."""
    with file_lock(lock_path, on_wait=on_wait):
        yield
