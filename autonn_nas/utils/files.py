"""Atomic file writes: a reader never sees a half-written output.

Everything is written to a temporary file in the destination's folder and renamed over the
destination (rename is atomic within one file system). A write that fails for the disk's sake (full,
read-only, not ours) raises an OSError that names the cause by its errno and the file (disk_problem words it).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

# the errnos of a disk that cannot take a write, and what to say about each
DISK_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
_FULL_BELOW = 1 << 20  # bytes free under which a write that failed without an errno is put down to a full disk


def disk_problem(exc: BaseException | None) -> str | None:
    """'no space left on the device (ENOSPC): /shared/x' when `exc`, or an exception it was raised from, is an
    OSError of the disk (DISK_ERRNOS); else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            where = f": {exc.filename}" if exc.filename else ""
            return f"{DISK_ERRNOS[exc.errno]} ({errno.errorcode[exc.errno]}){where}"
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        # mkstemp creates 0600; outputs on a shared volume must be readable by the other stages' users.
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        full = isinstance(exc, (OSError, RuntimeError)) and _nearly_full(path.parent)  # before the temp file goes
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        if full:  # e.g. torch.save's zip writer: "unexpected pos", no errno
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise
    return path


def _naming(exc: OSError, path: Path) -> OSError:
    """The same error with the file it was writing, when it did not say (a write() on a full disk does not)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror, str(path))


def _nearly_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _FULL_BELOW
    except OSError:
        return False


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe later on.
_UMASK = _read_umask()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic_write(path, lambda f: f.write(text), "w")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic_write(path, lambda f: f.write(data), "wb")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_yaml(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, default_flow_style=None))


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    return _atomic_write(path, lambda f: torch.save(obj, f), "wb")
