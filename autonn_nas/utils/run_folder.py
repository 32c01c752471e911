"""Run folders as YOLO users know them: runs/<kind>/exp, exp2, exp3, ... and a reused folder that never mixes
two runs (the previous run's artefacts are removed first, and the caller says so)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Iterable


def next_run_folder(project: str | Path, name: str, exist_ok: bool = False) -> Path:
    """project/name when it does not exist yet or `exist_ok`; else project/nameN with N one more than the
    highest number in use (2 after the first), so the newest run always has the highest number."""
    project = Path(project)
    folder = project / name
    if exist_ok or not folder.exists():
        return folder
    numbered = re.compile(re.escape(name) + r"(\d+)")
    used = [int(match.group(1)) for path in project.iterdir() if (match := numbered.fullmatch(path.name))]
    return project / f"{name}{max(used, default=1) + 1}"


def latest_run_folder(project: str | Path, marker: str = "last.pt") -> Path | None:
    """The folder directly under `project` whose `marker` file was written last (the run to resume); None if none."""
    candidates = [path.parent for path in Path(project).glob(f"*/{marker}") if path.is_file()]
    return max(candidates, key=lambda folder: (folder / marker).stat().st_mtime, default=None)


def clear_previous_run(out: str | Path, artefacts: Iterable[str]) -> list[str]:
    """Remove what a previous run of the same kind left in `out`: the files and folders named in `artefacts`
    (names relative to `out`). Anything else in the folder is left alone. Returns the names removed, sorted,
    for the caller to say."""
    out = Path(out)
    removed = set()
    for name in artefacts:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.add(name)
    return sorted(removed)


def reuse_note(out: str | Path, removed: list[str], shown: int = 6) -> str:
    """The sentence that says a reused folder was emptied of an earlier run's files (removed: clear_previous_run's)."""
    names = ", ".join(removed[:shown]) + (f" and {len(removed) - shown} more" if len(removed) > shown else "")
    return f"{out} held an earlier run: removed its {names}"
