"""Calls to the project manager: the end-of-job status_report and optional status_update events.

The PM may be down or slow; neither may hang or fail a job. status_report retries with back-off within a
bounded total time (attempts x timeout + the back-off sum); status_update is one short best-effort call.

A report counts as delivered only when the PM acknowledges it: a 2xx reply whose body is JSON (TANGO's PM
answers a report it takes with a small JSON body), empty, or an acknowledgement word (older PMs, the stub).
TANGO's PM answers a report under a container id it does not know with HTTP 200 and the error's text:
that is not delivered. A report that could not be delivered is kept in the project's run folder
(paths.OUTBOX_FILE) with the PM's last reply, and sent again by the next /start of the project or the next
server start (deliver_outbox), until the PM takes it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from autonn_nas.service.config import ServiceConfig
from autonn_nas.utils.files import atomic_write_json
from autonn_nas.utils.log import get_logger

log = get_logger("service.pm")

REPORT_WORDS = ("completed", "failed")
ACK_WORDS = ("", "ok", "success", "completed", "received", "done")  # plain-text acknowledgements (quotes stripped)
REPLY_LOGGED = 300  # characters of a refusing reply kept in the log and the outbox


def acknowledged(response: requests.Response) -> bool:
    """True when the PM took the report (see the module docstring); False for an error text or a non-2xx."""
    if not response.ok:
        return False
    body = response.text.strip()
    try:
        json.loads(body)
        return bool(body)
    except ValueError:
        return body.strip("\"'").strip().lower() in ACK_WORDS


class PMClient:
    def __init__(self, config: ServiceConfig):
        self.config = config

    def status_report(self, user_id: str, project_id: str, status: str, outbox: Path | None = None) -> bool:
        """GET {PM}/status_report; True when the PM acknowledged it. Never raises. When it is not delivered
        and `outbox` is given, the report is kept there for a later try; a delivered one removes it."""
        if status not in REPORT_WORDS:
            raise ValueError(f"status_report status must be one of {REPORT_WORDS}, got {status!r}")
        url = f"{self.config.pm_url}/status_report"
        params = {"container_id": self.config.container_id, "user_id": user_id, "project_id": project_id, "status": status}
        delay = self.config.pm_backoff_s
        problem = "not tried"
        for attempt in range(1, self.config.pm_attempts + 1):
            try:
                response = requests.get(url, params=params, timeout=self.config.pm_timeout_s, headers={"Content-Type": "text/plain"})
                if acknowledged(response):
                    log.info("reported %s for %s/%s to %s as %s", status, user_id, project_id, url, self.config.container_id)
                    if outbox is not None:
                        outbox.unlink(missing_ok=True)
                    return True
                problem = f"HTTP {response.status_code}, not an acknowledgement: {response.text.strip()[:REPLY_LOGGED]!r}"
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.warning("status_report %s to %s failed (attempt %d/%d): %s", status, url, attempt, self.config.pm_attempts, problem)
            if attempt < self.config.pm_attempts:
                time.sleep(delay)
                delay *= 2
        log.error("gave up reporting %s for %s/%s as %s to %s: %s%s", status, user_id, project_id, self.config.container_id,
                  url, problem, f"; kept in {outbox} for the next start" if outbox is not None else "")
        if outbox is not None:
            try:
                atomic_write_json(outbox, {"user_id": user_id, "project_id": project_id, "status": status,
                                           "container_id": self.config.container_id, "last_reply": problem, "time": time.time()})
            except OSError as exc:
                log.error("could not keep the report in %s: %s", outbox, exc)
        return False

    def deliver_outbox(self, user_id: str, project_id: str, outbox: Path) -> bool:
        """Send again the report of project `user_id/project_id` kept in `outbox`, under this server's container
        id; True when none is left. The ids come from the caller (the folder's), only the status from the file."""
        try:
            kept = json.loads(outbox.read_text())
        except FileNotFoundError:
            return True
        except (OSError, ValueError) as exc:
            log.warning("unreadable report outbox %s left alone: %s", outbox, exc)
            return False
        status = kept.get("status") if isinstance(kept, dict) else None
        if status not in REPORT_WORDS:
            log.warning("report outbox %s holds no report (status %r); left alone", outbox, status)
            return False
        log.info("delivering the report kept in %s (%s; before: %s)", outbox, status, kept.get("last_reply"))
        return self.status_report(user_id, project_id, status, outbox)

    def status_update(self, user_id: str, project_id: str, update_id: str, content: dict[str, Any]) -> bool:
        """POST {PM}/status_update when NAS_STATUS_UPDATES is on; one try, never raises."""
        if not self.config.status_updates:
            return False
        body = {
            "container_id": self.config.container_id,
            "user_id": user_id,
            "project_id": project_id,
            "update_id": update_id,
            "update_content": json.dumps(content, default=str),
        }
        try:
            response = requests.post(f"{self.config.pm_url}/status_update", json=body, timeout=min(self.config.pm_timeout_s, 2.0))
            return response.ok
        except requests.RequestException as exc:
            log.debug("status_update %s not delivered: %s", update_id, exc)
            return False
