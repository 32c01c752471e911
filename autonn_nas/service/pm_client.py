"""Calls to the project manager: the end-of-job status_report and optional status_update events.

The PM may be down or slow; neither may hang or fail a job. status_report retries with back-off within a
bounded total time (attempts x timeout + the back-off sum); status_update is one short best-effort call.

A report counts as delivered only when the PM acknowledges it: a 2xx reply whose body is JSON (TANGO's PM
answers a report it takes with a small JSON body), empty, or an acknowledgement word (older PMs, the stub).
TANGO's PM answers a report under a container id it does not know with HTTP 200 and the error's text:
that is not delivered. What is not delivered stays in the project's outbox and is sent again
(service/outbox.py).
"""
from __future__ import annotations

import json
import time
from typing import Any

import requests

from autonn_nas.service.config import ServiceConfig
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

    def status_report(self, user_id: str, project_id: str, status: str, attempts: int | None = None) -> tuple[bool, str]:
        """GET {PM}/status_report, up to `attempts` tries (default NAS_PM_ATTEMPTS) with back-off; (True, "") when
        the PM acknowledged it, else (False, the last problem). Never raises."""
        if status not in REPORT_WORDS:
            raise ValueError(f"status_report status must be one of {REPORT_WORDS}, got {status!r}")
        url = f"{self.config.pm_url}/status_report"
        params = {"container_id": self.config.container_id, "user_id": user_id, "project_id": project_id, "status": status}
        attempts = attempts or self.config.pm_attempts
        delay = self.config.pm_backoff_s
        problem = "not tried"
        for attempt in range(1, attempts + 1):
            try:
                response = requests.get(url, params=params, timeout=self.config.pm_timeout_s, headers={"Content-Type": "text/plain"})
                if acknowledged(response):
                    log.info("reported %s for %s/%s to %s as %s", status, user_id, project_id, url, self.config.container_id)
                    return True, ""
                problem = f"HTTP {response.status_code}, not an acknowledgement: {response.text.strip()[:REPLY_LOGGED]!r}"
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"[:REPLY_LOGGED]
            log.warning("status_report %s to %s failed (attempt %d/%d): %s", status, url, attempt, attempts, problem)
            if attempt < attempts:
                time.sleep(delay)
                delay *= 2
        return False, problem

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
