"""The label cache: what a scan found per image, kept next to the labels so the next load skips the scan.

One cache file per label folder (`labels/train2017` -> `labels/train2017.cache`), holding one entry per image,
keyed by the image path and valid only while the image's and its label file's size and modification time
are unchanged; any change rescans just that image. Subsets of a folder (a held-out part of train) share the
file. The cache is JSON (never pickle: a dataset folder may be shared with other users). A read-only dataset
folder falls back to `cache_dir` when given, else the scan simply is not cached.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from autonn_nas.utils.files import atomic_write_text
from autonn_nas.utils.log import get_logger

log = get_logger("data.cache")

CACHE_VERSION = 1  # bump when the entry layout or the label rules change
CACHE_SUFFIX = ".cache"


def file_signature(path: Path) -> list[int] | None:
    """[size, mtime in ns] of a file, or None when it does not exist."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def cache_locations(label_dir: Path, cache_dir: str | Path | None) -> list[Path]:
    """Where the cache of a label folder may be, in order of preference."""
    locations = [label_dir.parent / f"{label_dir.name}{CACHE_SUFFIX}"]
    if cache_dir is not None:
        digest = hashlib.sha1(str(label_dir).encode()).hexdigest()[:16]
        locations.append(Path(cache_dir) / f"{label_dir.name}-{digest}{CACHE_SUFFIX}")
    return locations


def read_cache(label_dir: Path, nc: int | None, cache_dir: str | Path | None = None) -> dict[str, Any]:
    """Entries of the first readable cache of `label_dir` written for the same rules and nc; {} if none."""
    for location in cache_locations(label_dir, cache_dir):
        try:
            data = json.loads(location.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as error:
            log.warning("ignoring unreadable label cache %s (%s)", location, error)
            continue
        if isinstance(data, dict) and data.get("version") == CACHE_VERSION and data.get("nc") == nc and isinstance(data.get("entries"), dict):
            return data["entries"]
    return {}


def write_cache(label_dir: Path, nc: int | None, entries: dict[str, Any], cache_dir: str | Path | None = None) -> Path | None:
    """Save entries to the first writable location; returns it, or None when none is (a warning, not an error)."""
    text = json.dumps({"version": CACHE_VERSION, "nc": nc, "entries": entries}, separators=(",", ":"))
    for i, location in enumerate(cache_locations(label_dir, cache_dir)):
        if i == 0 and not location.parent.is_dir():
            continue  # never create folders inside a dataset; cache_dir (i > 0) is created on demand
        try:
            atomic_write_text(location, text)
            return location
        except OSError as error:
            log.debug("cannot write label cache %s (%s)", location, error)
    log.info("label cache for %s not saved (folder not writable%s); the next load scans again", label_dir,
             "" if cache_dir else "; pass cache_dir to keep it elsewhere")
    return None
