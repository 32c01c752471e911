"""Create a project on the shared volume from the embedded demo volume, as a PM does before /start."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

# The repository's embedded demo volume (shared_volume/), next to this package.
DEFAULT_DEMO_VOLUME = Path(__file__).resolve().parent.parent / "shared_volume"
DEFAULT_TEMPLATE = "demo_user/demo_project"
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]*")  # as the stage: Django usernames, beginning with a letter or digit


def _plain(kind: str, value: str) -> str:
    if not _PLAIN.fullmatch(value or "") or ".." in value:
        raise ValueError(f"{kind} {value!r} is not a plain name")
    return value


def project_dataset(project_info: Path) -> str | None:
    """The `dataset : name` line of a PM-style project_info.yaml."""
    for line in project_info.read_text(encoding="utf-8").splitlines():
        key, colon, value = line.strip().partition(":")
        if colon and key.strip() == "dataset":
            return value.strip().strip("'\"") or None
    return None


def create_project(shared: Path, user_id: str, project_id: str, demo_volume: Path = DEFAULT_DEMO_VOLUME,
                   template: str = DEFAULT_TEMPLATE, overwrite: bool = True) -> Path:
    """Copy the template project (and its dataset, when the shared volume lacks it) into `shared`. The template is a
    `user/project` folder of the demo volume's common/; a path that leads anywhere else is refused."""
    templates = (demo_volume / "common").resolve()
    source = (templates / template).resolve()
    if templates not in source.parents:
        raise ValueError(f"template {template!r} is not a project folder of {templates}")
    if not (source / "project_info.yaml").is_file():
        raise FileNotFoundError(f"template project {source} has no project_info.yaml")
    target = shared / "common" / _plain("user_id", user_id) / _plain("project_id", project_id)
    if target.exists() and overwrite:
        shutil.rmtree(target)
    shutil.copytree(source, target, dirs_exist_ok=True)
    dataset = project_dataset(source / "project_info.yaml")
    if dataset:
        dataset_source = demo_volume / "datasets" / _plain("dataset", dataset)
        dataset_target = shared / "datasets" / dataset
        if dataset_source.is_dir() and not dataset_target.exists():
            shutil.copytree(dataset_source, dataset_target)
    return target
