"""A job's state on disk: <project>/neck_nas/status.json, written atomically under a file lock.

The file, not the server's memory, is the truth: a restarted server or another worker reads the same
state, and every transition is a read-modify-write under an exclusive flock so two writers never race.
In memory the state is a JobState; on disk it is its fields as one JSON object.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
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
REQUEST_LOCK_WAIT_S = 0.3  # the longest a request waits for a project's state lock (a job may be frozen holding it)
FINISHED = (COMPLETED, FAILED, STOPPED)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class JobState:
    """One project's job as status.json holds it. Changed only by `replace` (a new value), written by write_status."""

    status: str = READY
    phase: str | None = None
    user_id: str | None = None
    project_id: str | None = None
    log: str | None = None
    job_id: str | None = None
    resumed: bool = False
    pid: int | None = None
    pgid: int | None = None  # the job's process group (its own session): /stop signals all of it
    pid_start: int | None = None  # the job process's start time (/proc ticks): tells it from a reused pid
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    error: str | None = None
    epoch: int | None = None  # supernet epochs finished
    epochs: int | None = None
    progress: float | None = None  # 0..1
    eta_s: float | None = None
    last_event: str | None = None  # the search's last progress event
    running_since_ts: float | None = None  # epoch seconds when this run's search began (for the ETA)
    progress_at_run_start: float | None = None  # progress already made before it (a resumed run)
    input_notes: list[str] | None = None  # what the project's keys did
    outputs: dict[str, str] | None = None  # a completed job's products, name -> path
    architecture: str | None = None
    report: str | None = None
    metrics: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None  # what shipped and why
    extra: dict[str, Any] = field(default_factory=dict)  # keys of another version's status.json, kept as they are

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def replace(self, **changes: Any) -> "JobState":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JobState":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in names}, extra={k: v for k, v in data.items() if k not in names})


def locked(paths: ProjectPaths, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
    """Exclusive lock on the project's state (blocks other threads, workers and the job); held only for short
    read-modify-writes. With `timeout`, file_lock.LockTimeout when it is not free in time."""
    return file_lock(paths.lock_file, timeout)


def read_status(paths: ProjectPaths) -> JobState | None:
    """The last written state, or None when no job was ever started here."""
    try:
        data = json.loads(paths.status_file.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        return JobState.from_dict(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        # A status.json that someone else corrupted: report it instead of crashing the endpoint.
        return JobState(status=FAILED, error=f"{paths.status_file}: unreadable ({str(exc)[:200]})")


def write_status(paths: ProjectPaths, state: JobState) -> JobState:
    state = state.replace(updated_at=now_iso())
    atomic_write_json(paths.status_file, state.to_dict())
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


def progress_eta(state: JobState, epoch: int, epochs: int) -> tuple[float, float | None]:
    """Fraction done after `epoch` (1-based) of `epochs`, and the seconds left at this run's pace so far
    (a resumed run counts only the progress it made itself)."""
    progress = max(0.0, min(1.0, epoch / epochs)) if epochs else 0.0
    started = state.running_since_ts
    made = progress - float(state.progress_at_run_start or 0.0)
    if not started or made <= 0:
        return progress, None
    elapsed = time.time() - started
    return progress, round(elapsed * (1 - progress) / made, 1)


def append_to_log(paths: ProjectPaths, message: str) -> None:
    """A line of the server's in the project's job.log."""
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    with open(paths.job_log, "a", encoding="utf-8") as handle:
        handle.write(f"{now_iso()} [server] {message}\n")


def signal_group(pgid: int | None, sig: int) -> None:
    """Signal a job's process group; one that is gone (or not ours) is left alone."""
    if pgid:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
