"""Requests the stage answers `failed`, as exceptions that app.py maps to HTTP: the reason and the status code.

The reason is logged by the server and, where the project folder can be written, in /status and job.log."""
from __future__ import annotations


class Refused(Exception):
    """A request that cannot be done; `code` is its HTTP status (400: the caller's or the project's fault,
    500: the disk or the server, 503: try again)."""

    def __init__(self, reason: str, code: int = 400):
        super().__init__(reason)
        self.reason = reason
        self.code = code


class StartRefused(Refused):
    """/start or /resume started nothing."""


class StopRefused(Refused):
    """/stop has no job to stop (an unknown project)."""
