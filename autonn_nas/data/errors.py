"""The one error type for data problems a user can fix (bad dataset.yaml, unusable images or labels)."""
from __future__ import annotations


class DatasetError(ValueError):
    """A dataset problem; the message names the file (and line) and what to change."""
