"""Logging, the library way: the package logs to the `autonn_nas` logger and installs no handler of its own
(a NullHandler, in autonn_nas/__init__.py), so a Python user routes its records as for any library. Entry
points (the CLI, the stage's job process) call `configure_logging`; runs add a file handler in their folder."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOGGER_NAME = "autonn_nas"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str | None = None) -> logging.Logger:
    """The package logger (or a child of it). Configures nothing: see configure_logging."""
    root = logging.getLogger(LOGGER_NAME)
    return root.getChild(name) if name else root


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (as logging.lastResort does), so a handler made
    once keeps working when stderr is swapped (test capture, a redirected job log)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """For applications only (the CLI, the stage's processes): the package's records at `level` and above, and
    other libraries' warnings, on stderr. Through the root logger, so that a library calling
    logging.basicConfig() later (waitress does) adds no second copy. Calling it again changes nothing more."""
    root = logging.getLogger()
    if not any(isinstance(handler, _StderrHandler) for handler in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
    get_logger().setLevel(level)


@contextmanager
def log_to_file(path: str | Path) -> Iterator[logging.Handler]:
    """Also write the package log to `path` (appending) while the block runs, e.g. a run's own log file. The
    file gets INFO records even when nothing configured logging (a Python caller): the package logger's level
    is lowered to INFO for the block when it would drop them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    logger = get_logger()
    previous_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        handler.close()


@contextmanager
def quieter(level: int) -> Iterator[None]:
    """Only records at `level` or above from the package while the block runs (e.g. the ranks other than 0
    of a distributed search, so that one voice logs); the previous level comes back after."""
    logger = get_logger()
    previous = logger.level
    logger.setLevel(max(logger.getEffectiveLevel(), level))
    try:
        yield
    finally:
        logger.setLevel(previous)
