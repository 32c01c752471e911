"""Where a project's files live on the shared volume, with ids checked and every path kept inside it.

Paths are resolved with symlinks followed: a project folder, run folder, status/log/lock file or input that
is a symlink leading outside the shared volume is refused (OutsideSharedDirError, with the path and where it
leads, never what it holds) before anything reads or writes it.
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

# TANGO's PM takes user ids from Django usernames: letters, digits and @ . + - _ (never a path separator); the
# first a letter or digit, so that no id reads as an option (-h, --resume) or a hidden file
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}")

RUN_DIR_NAME = "neck_nas"
PROJECT_INFO = "project_info.yaml"
BASEMODEL = "basemodel.yaml"
SETTINGS_FILE = "neck_nas.yaml"
MODEL_YAML = "neck_nas_model.yaml"
WEIGHTS = "bestmodel.pt"
NET_INFO = "neural_net_info.yaml"
ONNX_FILE = "bestmodel.onnx"  # written when the project's engine wants ONNX (service/handoff.py ENGINE_FORMATS)
TORCHSCRIPT_FILE = "bestmodel.torchscript"  # ... or TorchScript
MODEL_PACKAGE = "neck_nas_models"  # a folder: the model code that rebuilds config_file without autonn_nas
OUTPUT_NAMES = (MODEL_YAML, WEIGHTS, NET_INFO, ONNX_FILE, TORCHSCRIPT_FILE)
OUTBOX_FILE = "outbox.json"  # in the run folder: the project's status_report the PM has not taken yet (pm_client.py)


class InvalidIdError(ValueError):
    """A user or project id that is not a plain name; nothing on disk is touched for it."""


class OutsideSharedDirError(ValueError):
    """A path that would leave the shared volume."""


def check_id(kind: str, value: str | None) -> str:
    """A user/project id must be a plain folder name: letters, digits, '_', '-', '.', '@', '+' (Django's
    usernames), beginning with a letter or digit; never anything with '..' in it."""
    if not value:
        raise InvalidIdError(f"{kind} is missing")
    if not _ID_PATTERN.fullmatch(value) or ".." in value:
        raise InvalidIdError(f"{kind} {value[:140]!r} is not a plain name (a letter or digit, then letters, digits, '_', '-', "
                             "'.', '@', '+'; no '..', no slashes)")
    return value


def is_within(root: Path, resolved: Path) -> bool:
    """True when the resolved path `resolved` is the resolved folder `root` or below it."""
    return resolved == root or root in resolved.parents


def inside(root: Path, path: Path, what: str = "path") -> Path:
    """`path` resolved (symlinks followed); an error when it is not inside `root`."""
    root = root.resolve()
    resolved = path.resolve()
    if not is_within(root, resolved):
        raise OutsideSharedDirError(f"{what} {str(path)!r} resolves to {str(resolved)!r}, outside the shared volume {str(root)!r}")
    return resolved


@dataclass(frozen=True)
class ProjectPaths:
    """Every file of one project; built only from checked ids."""

    shared_dir: Path
    user_id: str
    project_id: str

    @classmethod
    def of(cls, shared_dir: Path, user_id: str | None, project_id: str | None) -> "ProjectPaths":
        paths = cls(shared_dir.resolve(), check_id("user_id", user_id), check_id("project_id", project_id))
        inside(paths.shared_dir, paths.project_dir, "project folder")
        inside(paths.shared_dir, paths.run_dir, "run folder")
        for path in (paths.status_file, paths.lock_file, paths.job_log, paths.outbox_file, paths.search_checkpoint):
            inside(paths.shared_dir, path, path.name)
        return paths

    @property
    def project_dir(self) -> Path:
        return self.shared_dir / "common" / self.user_id / self.project_id

    @property
    def run_dir(self) -> Path:
        return self.project_dir / RUN_DIR_NAME

    @property
    def status_file(self) -> Path:
        return self.run_dir / "status.json"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / ".status.lock"

    @property
    def job_log(self) -> Path:
        return self.run_dir / "job.log"

    @property
    def outbox_file(self) -> Path:
        return self.run_dir / OUTBOX_FILE

    @property
    def search_checkpoint(self) -> Path:
        """The search's resumable checkpoint (the run folder is the search's out folder: job_inputs.py)."""
        return self.run_dir / "last.pt"

    def input(self, name: str) -> Path:
        """A file of the project folder to read, resolved; OutsideSharedDirError when it leads outside the volume."""
        return inside(self.shared_dir, self.project_dir / name, name)

    def output(self, name: str) -> Path:
        return self.project_dir / name

    def dataset_yaml(self, dataset: str) -> Path:
        check_id("dataset", dataset)
        return inside(self.shared_dir, self.shared_dir / "datasets" / dataset / "dataset.yaml", "dataset.yaml")

    def outputs(self) -> dict[str, str]:
        """The stage's products that exist now, name -> absolute path (files, and the model package folder)."""
        found = {name: str(self.output(name)) for name in OUTPUT_NAMES if self.output(name).is_file()}
        if self.output(MODEL_PACKAGE).is_dir():
            found[MODEL_PACKAGE] = str(self.output(MODEL_PACKAGE))
        return found

    def remove_outputs(self) -> None:
        """Delete the products (the YAML first), so that only a completed job leaves them, and what a placement
        killed part-way (SIGKILL, out of memory) leaves behind: the temp files of utils/files.py's atomic writes
        (.<name>.*.tmp) and the model package's staging folders (.neck_nas_models.*)."""
        for name in (MODEL_YAML, *[n for n in OUTPUT_NAMES if n != MODEL_YAML]):
            self.output(name).unlink(missing_ok=True)
        package = self.output(MODEL_PACKAGE)
        if package.is_symlink():
            package.unlink()  # the link, never what it points to
        shutil.rmtree(package, ignore_errors=True)
        for name in OUTPUT_NAMES:
            for leftover in self.project_dir.glob(f".{name}.*.tmp"):
                leftover.unlink(missing_ok=True)
        for leftover in self.project_dir.glob(f".{MODEL_PACKAGE}.*"):
            shutil.rmtree(leftover, ignore_errors=True)


def links_leading_outside(root: Path, folder: Path) -> list[str]:
    """Symlinks anywhere under `folder` (not followed) whose target resolves outside `root`: `link -> target` each."""
    root = root.resolve()
    found = []
    for parent, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(parent) / name
            if path.is_symlink() and not is_within(root, path.resolve()):
                found.append(f"{path} -> {path.resolve()}")
    return found


def all_outboxes(shared_dir: Path) -> list[Path]:
    """Every project's pending report (outbox.json), for the server's courier."""
    return sorted((shared_dir / "common").glob(f"*/*/{RUN_DIR_NAME}/{OUTBOX_FILE}"))


def all_status_files(shared_dir: Path) -> list[Path]:
    """Every project's status.json (for the start-up scan of jobs that died with the previous server)."""
    return sorted((shared_dir / "common").glob(f"*/*/{RUN_DIR_NAME}/status.json"))
