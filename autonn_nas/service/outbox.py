"""A project's end-of-job report to the PM, kept on disk until the PM takes it.

Whoever ends a job (the job itself, or the server for a job found dead) writes its report to
<run folder>/outbox.json in the same locked step that writes the final state, so every end has a report
however the process dies afterwards. That writer tries to deliver it at once (the job with its bounded
retries); what is not delivered is re-sent by the server's Courier with back-off (NAS_PM_BACKOFF_S doubling
up to NAS_PM_RETRY_MAX_S) for as long as it takes: when the PM comes back while the server runs, and after a
server restart. A report is removed only once the PM acknowledged it, and only if it is still the same
report (a newer job's report replaces an older one; the PM cares about the last end). /status shows a
pending report under `report_pending`.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from autonn_nas.service import state as st
from autonn_nas.service.config import ServiceConfig
from autonn_nas.service.file_lock import LockTimeout
from autonn_nas.service.paths import ProjectPaths, all_outboxes
from autonn_nas.service.pm_client import PMClient
from autonn_nas.utils.files import atomic_write_json
from autonn_nas.utils.log import get_logger

log = get_logger("service.outbox")

POLL_S = 1.0  # how often the courier looks for reports written by jobs
LOCK_WAIT_S = 2.0  # the courier never waits long for a project's lock: the next round tries again
_IDENTITY = ("job_id", "status", "since")  # what makes a report the same report


def keep(paths: ProjectPaths, status: str, job_id: str | None) -> dict[str, Any]:
    """Write the report of job `job_id`'s end (`completed` or `failed`). Call it under the project's state lock,
    before writing the final state."""
    report = {"user_id": paths.user_id, "project_id": paths.project_id, "status": status, "job_id": job_id,
              "since": st.now_iso(), "tries": 0, "last_reply": None, "last_try": None}
    atomic_write_json(paths.outbox_file, report)
    return report


def drop(paths: ProjectPaths, job_id: str | None) -> None:
    """Under the project's state lock: forget job `job_id`'s report (it was stopped: the PM asked, and was told)."""
    report = pending(paths)
    if report is not None and report.get("job_id") == job_id:
        paths.outbox_file.unlink(missing_ok=True)
        log.info("the %s report of stopped job %s is not sent", report["status"], job_id)


def pending(paths: ProjectPaths) -> dict[str, Any] | None:
    """The report waiting for the PM, or None."""
    try:
        report = json.loads(paths.outbox_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("unreadable report outbox %s left alone: %s", paths.outbox_file, exc)
        return None
    return report if isinstance(report, dict) and report.get("status") in ("completed", "failed") else None


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(key) == b.get(key) for key in _IDENTITY)


def deliver(pm: PMClient, paths: ProjectPaths, attempts: int | None = None) -> bool:
    """Send the project's pending report (ids from the folder, under this process's container id); True when
    none is left. A delivered report is removed, a refused one keeps the PM's reply, unless a newer report
    replaced it meanwhile."""
    report = pending(paths)
    if report is None:
        return True
    delivered, problem = pm.status_report(paths.user_id, paths.project_id, report["status"], attempts)
    try:
        with st.locked(paths, timeout=LOCK_WAIT_S):
            current = pending(paths)
            if current is not None and _same(current, report):
                if delivered:
                    paths.outbox_file.unlink(missing_ok=True)
                else:
                    atomic_write_json(paths.outbox_file, current | {
                        "tries": int(current.get("tries") or 0) + (attempts or pm.config.pm_attempts),
                        "last_reply": problem, "last_try": st.now_iso()})
    except LockTimeout:
        log.warning("report outbox %s: the state lock stayed taken; the next round updates it", paths.outbox_file)
    except OSError as exc:
        log.error("report outbox %s could not be updated: %s", paths.outbox_file, exc)
    if not delivered:
        log.warning("the %s report of %s/%s is kept in %s until the PM takes it (last reply: %s)", report["status"],
                    paths.user_id, paths.project_id, paths.outbox_file, problem)
    return delivered


def _owned_by_live_job(paths: ProjectPaths, report: dict[str, Any]) -> bool:
    """The job that wrote the report still runs: it is still delivering it itself."""
    state = st.read_status(paths) or st.JobState()
    return state.job_id == report.get("job_id") and st.process_alive(state.pid, state.pid_start)


class Courier:
    """The server's one thread that re-sends pending reports, each with its own back-off."""

    def __init__(self, config: ServiceConfig, pm: PMClient):
        self.config = config
        self.pm = pm
        self._due: dict[Path, tuple[tuple, int, float]] = {}  # outbox -> (report identity, failed rounds, next try)
        self._wake = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="report-courier").start()

    def wake(self) -> None:
        """Look at once (a report was just written, or a /start may mean the PM is back)."""
        self._due.clear()
        self._wake.set()

    def next_try_in(self, paths: ProjectPaths) -> float | None:
        entry = self._due.get(paths.outbox_file)
        return None if entry is None else round(max(0.0, entry[2] - time.monotonic()), 1)

    def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                self.deliver_due()
            except Exception:  # noqa: BLE001 - the courier must outlive any one bad project
                log.exception("report courier round failed")
            self._wake.wait(POLL_S)

    def deliver_due(self) -> None:
        for outbox in all_outboxes(self.config.shared_dir):
            project_dir = outbox.parent.parent
            try:
                paths = ProjectPaths.of(self.config.shared_dir, project_dir.parent.name, project_dir.name)
            except ValueError:
                continue
            report = pending(paths)
            if report is None or _owned_by_live_job(paths, report):
                continue
            identity = tuple(report.get(key) for key in _IDENTITY)
            known, rounds, due = self._due.get(outbox, (None, 0, 0.0))
            if known == identity and due > time.monotonic():
                continue
            if deliver(self.pm, paths, attempts=1):
                self._due.pop(outbox, None)
                continue
            rounds = rounds + 1 if known == identity else 1
            delay = min(self.config.pm_backoff_s * 2 ** (rounds - 1), self.config.pm_retry_max_s)
            self._due[outbox] = (identity, rounds, time.monotonic() + delay)
