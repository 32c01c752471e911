"""A job's state on disk: <project>/neck_nas/status.json, written atomically under a file lock.

The file, not the server's memory, is the truth: a restarted server or another worker reads the same
state, and every transition is a read-modify-write under an exclusive flock so two writers never race.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autonn_nas.service.file_lock import file_lock
from autonn_nas.service.paths import ProjectPaths
from autonn_nas.utils.files import atomic_write_json

READY, STARTED, RUNNING, COMPLETED, FAILED, STOPPED = "ready", "started", "running", "completed", "failed", "stopped"
# In every job process's environment, inherited by its loader workers and ranks: it tells the job's processes
# from others that, after a restart, reuse the recorded process group id.
JOB_ID_ENV = "NAS_JOB_ID"
ACTIVE = (STARTED, RUNNING)
FINISHED = (COMPLETED, FAILED, STOPPED)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def locked(paths: ProjectPaths, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
    """Exclusive lock on the project's state (blocks other threads, workers and the job); held only for short
    read-modify-writes. With `timeout`, file_lock.LockTimeout when it is not free in time."""
    return file_lock(paths.lock_file, timeout)


def read_status(paths: ProjectPaths) -> dict[str, Any] | None:
    """The last written state, or None when no job was ever started here."""
    try:
        return json.loads(paths.status_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # A status.json that someone else corrupted: report it instead of crashing the endpoint.
        return {"status": FAILED, "error": f"{paths.status_file}: unreadable ({exc})"}


def write_status(paths: ProjectPaths, state: dict[str, Any]) -> dict[str, Any]:
    state = dict(state, updated_at=now_iso())
    atomic_write_json(paths.status_file, state)
    return state


def process_start_ticks(pid: int) -> int | None:
    """Start time of a process (clock ticks since boot, from /proc), to tell a live job from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])  # field 22 of stat; the first two fields precede ")"


def process_alive(pid: int | None, start_ticks: int | None = None) -> bool:
    """True when `pid` runs and (if known) is the same process that was recorded; zombies count as dead."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
    except OSError:
        return True  # no /proc (not Linux): trust kill(0)
    return start_ticks is None or process_start_ticks(pid) == start_ticks


def _carries_job_id(pid: str, job_id: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False  # gone, or another user's: not the job's
    return f"{JOB_ID_ENV}={job_id}".encode() in environ


def group_alive(pgid: int | None, job_id: str | None = None) -> bool:
    """True while a live (non-zombie) process of the job's process group is left; with `job_id`, only the
    processes that carry it count (without /proc nothing can be told apart: any member counts).

    Zombies are ignored: after a server restart the job is no longer our child, and where the server is
    PID 1 of a container nobody may reap it.
    """
    if not pgid:
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X") and (job_id is None or _carries_job_id(entry.name, job_id)):
            return True
    return False


def progress_eta(state: dict[str, Any], epoch: int, epochs: int) -> tuple[float, float | None]:
    """Fraction done after `epoch` (1-based) of `epochs`, and the seconds left at this run's pace so far
    (a resumed run counts only the progress it made itself)."""
    progress = max(0.0, min(1.0, epoch / epochs)) if epochs else 0.0
    started = state.get("running_since_ts")
    made = progress - float(state.get("progress_at_run_start") or 0.0)
    if not started or made <= 0:
        return progress, None
    elapsed = time.time() - started
    return progress, round(elapsed * (1 - progress) / made, 1)
