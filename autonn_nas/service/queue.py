"""One search at a time per machine: a job waits for an exclusive lock on a file before it searches.

A second project's /start while a search runs is accepted (`started`) and its job waits here with phase
`queued`; jobs then run one at a time. The lock is released by the kernel when the process ends, however it
ends. Among several waiting jobs the order is not guaranteed (the kernel wakes the waiters and one wins).
"""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Callable, Iterator


@contextlib.contextmanager
def queue_turn(lock_path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
