"""Logging: one package logger; runs add a file handler in their output folder."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOGGER_NAME = "autonn_nas"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str | None = None) -> logging.Logger:
    """The package logger (or a child of it); configures a stderr handler once."""
    root = logging.getLogger(LOGGER_NAME)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return root.getChild(name) if name else root


@contextmanager
def log_to_file(path: str | Path) -> Iterator[logging.Handler]:
    """Also write the package log to `path` (appending) while the block runs, e.g. a run's own log file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    get_logger().addHandler(handler)
    try:
        yield handler
    finally:
        get_logger().removeHandler(handler)
        handler.close()


@contextmanager
def quieter(level: int) -> Iterator[None]:
    """Only records at `level` or above from the package while the block runs (e.g. the ranks other than 0
    of a distributed search, so that one voice logs); the previous level comes back after."""
    logger = get_logger()
    previous = logger.level
    logger.setLevel(max(previous, level))
    try:
        yield
    finally:
        logger.setLevel(previous)
