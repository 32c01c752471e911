"""Calls to the project manager: the end-of-job status_report and optional status_update events.

The PM may be down or slow; neither may hang or fail a job. status_report retries with back-off within a
bounded total time (attempts x timeout + the back-off sum); status_update is one short best-effort call.
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


class PMClient:
    def __init__(self, config: ServiceConfig):
        self.config = config

    def status_report(self, user_id: str, project_id: str, status: str) -> bool:
        """GET {PM}/status_report; True when the PM answered 2xx. Never raises."""
        if status not in REPORT_WORDS:
            raise ValueError(f"status_report status must be one of {REPORT_WORDS}, got {status!r}")
        url = f"{self.config.pm_url}/status_report"
        params = {"container_id": self.config.container_id, "user_id": user_id, "project_id": project_id, "status": status}
        delay = self.config.pm_backoff_s
        for attempt in range(1, self.config.pm_attempts + 1):
            try:
                response = requests.get(url, params=params, timeout=self.config.pm_timeout_s)
                if response.ok:
                    log.info("reported %s for %s/%s to %s", status, user_id, project_id, url)
                    return True
                problem = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.warning("status_report %s to %s failed (attempt %d/%d): %s", status, url, attempt, self.config.pm_attempts, problem)
            if attempt < self.config.pm_attempts:
                time.sleep(delay)
                delay *= 2
        log.error("gave up reporting %s for %s/%s: the project manager at %s did not answer", status, user_id, project_id, url)
        return False

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
