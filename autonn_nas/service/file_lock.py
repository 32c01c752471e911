"""The stage's one file lock: an exclusive flock on a file, shared by threads, server workers and job processes.

The kernel releases it when the holder's process ends, however it ends. Used for a project's state
(state.locked: short read-modify-writes, with a timeout where an answer is due) and for the machine's
search queue (queue.queue_turn: held for a whole search, waited for as long as it takes).
"""
from __future__ import annotations

import contextlib
import fcntl
import time
from pathlib import Path
from typing import Callable, Iterator

POLL_S = 0.01  # flock has no timeout: a bounded wait polls a non-blocking try


class LockTimeout(TimeoutError):
    """The lock was not free within the time given (its holder may be frozen: SIGSTOP, a stalled disk)."""


@contextlib.contextmanager
def file_lock(path: Path, timeout: float | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created, with its folder) for the block. timeout None waits as long as it
    takes; otherwise LockTimeout after `timeout` seconds. `on_wait` is called once when the lock is taken by another."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        _acquire(handle, path, timeout, on_wait)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _acquire(handle, path: Path, timeout: float | None, on_wait: Callable[[], None] | None) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if on_wait:
        on_wait()
    if timeout is None:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(f"{path} stayed locked for {timeout:g}s") from None
            time.sleep(POLL_S)
