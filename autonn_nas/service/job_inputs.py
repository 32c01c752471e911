"""Turn a project folder into search settings, or a `failed` reason that names the file and the problem.

Checked before a job is spawned (so /start can answer `failed` at once) and again by the job itself. The
server's check (build=False) is bounded: files are read with models/bounded_yaml.py, every value is checked
for type and range, and the model by arithmetic (service/model_inputs.py); only the job builds anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autonn_nas.models.bounded_yaml import load_yaml_file
from autonn_nas.search.settings import SearchSettings
from autonn_nas.service.model_inputs import check_cfg_arithmetic, search_space_of
from autonn_nas.service.paths import BASEMODEL, PROJECT_INFO, SETTINGS_FILE, ProjectPaths, is_within, links_leading_outside
from autonn_nas.service.project_info import read_project_info
from autonn_nas.service.target import level, project_file, target_choices

SUPPORTED_TASK = "detection"
# Set by the stage from the project; a neck_nas.yaml may not point them elsewhere.
STAGE_OWNED_SETTINGS = ("data", "out", "latency_cache")  # latency_cache: a file the job would write, possibly outside the volume
# Settings that name files: resolved relative to the project folder and kept inside the shared volume.
PATH_SETTINGS = ("cfg", "weights", "teacher", "latency_table")
BASEMODEL_SEARCH = "basemodel_search.yaml"  # in the run folder: basemodel.yaml with searchable neck blocks


class JobInputError(ValueError):
    """A project that cannot be searched; the message is shown by /status and written to the job log."""


@dataclass(frozen=True)
class JobInputs:
    project_info: dict[str, Any]
    dataset_yaml: Path
    settings: SearchSettings
    search_cfg: dict | None = None  # from basemodel.yaml; the job writes it to settings.cfg before searching
    half: bool = False  # export the hand-off in fp16 (from project_info's acc / precision_level)
    notes: tuple[str, ...] = ()  # what the project's keys did (service/target.py), for the log and the report


def _read_settings_file(path: Path) -> dict[str, Any]:
    try:
        data = load_yaml_file(path)
    except OSError as exc:
        raise JobInputError(f"{path}: cannot be read: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise JobInputError(f"{path}: expected a mapping of search settings, got a YAML {type(data).__name__}")
    owned = [key for key in STAGE_OWNED_SETTINGS if key in data]
    if owned:
        raise JobInputError(f"{path}: {', '.join(owned)} cannot be set here: the stage takes the dataset from "
                            f"{PROJECT_INFO} and writes only to the project's run folder and its own latency cache")
    return data


def _resolve_path_setting(paths: ProjectPaths, key: str, value: Any, source: Path) -> str:
    if key == "cfg" and isinstance(value, str) and "/" not in value and not paths.input(value).is_file():
        return value  # a built-in config name such as yolov4-p5-search.yaml
    try:
        return str(project_file(paths, key, value, source))
    except ValueError as exc:
        raise JobInputError(str(exc)) from None


def load_job_inputs(paths: ProjectPaths, resume: bool = False, nproc: int = 1, build: bool = True) -> JobInputs:
    """Read and check every input of the project; raises JobInputError (or a ValueError subclass) with the reason.
    `nproc` (the stage's NAS_NPROC) applies when neck_nas.yaml sets none. build=False (the server) checks the
    model config by arithmetic only; build=True (the job) also turns basemodel.yaml into the search space."""
    if not paths.project_dir.is_dir():
        raise JobInputError(f"project folder {paths.project_dir} does not exist")
    _check_run_folder(paths)
    info_path = paths.input(PROJECT_INFO)
    info = read_project_info(info_path)

    task = str(info.get("task_type") or "").strip().lower()
    if not task:
        raise JobInputError(f"{info_path}: task_type is missing; this stage handles task_type : {SUPPORTED_TASK}")
    if task != SUPPORTED_TASK:
        raise JobInputError(f"{info_path}: task_type is '{info['task_type']}', but the neck NAS stage handles only "
                            f"'{SUPPORTED_TASK}'")

    dataset = info.get("dataset")
    if dataset is None or str(dataset).strip() == "":
        raise JobInputError(f"{info_path}: dataset is missing (a folder name under {paths.shared_dir / 'datasets'})")
    try:
        dataset_yaml = paths.dataset_yaml(str(dataset).strip())
    except ValueError as exc:
        raise JobInputError(f"{info_path}: dataset: {exc}") from None
    if not dataset_yaml.is_file():
        raise JobInputError(f"{info_path}: dataset '{dataset}' has no {dataset_yaml}")

    values: dict[str, Any] = {}
    settings_path = paths.input(SETTINGS_FILE)
    if settings_path.is_file():
        values = _read_settings_file(settings_path)
        for key in PATH_SETTINGS:
            if values.get(key) is not None:
                values[key] = _resolve_path_setting(paths, key, values[key], settings_path)
    explicit = dict(values)
    notes: list[str] = []
    basemodel = paths.input(BASEMODEL)
    from_base = "cfg" not in values and basemodel.is_file()
    model_file = Path(values["cfg"]) if "/" in str(values.get("cfg", "")) else None  # a project file, not a built-in name
    if from_base:
        model_file = basemodel
        values["cfg"] = str(paths.run_dir / BASEMODEL_SEARCH)  # the job writes the search space there
    try:
        lightweight = level(info, "lightweight_level", info_path)
        choices = target_choices(info, info_path, paths, explicit)
    except ValueError as exc:
        raise JobInputError(str(exc)) from None
    if "lightweight_level" not in values and lightweight is not None:
        values["lightweight_level"] = lightweight
    for key, value in choices.settings.items():
        values.setdefault(key, value)
    notes.extend(choices.notes)
    if "progress" in SearchSettings.field_names() and "progress" not in values:
        values["progress"] = False  # per-batch progress bars would flood the job log
    values.setdefault("nproc", nproc)
    values.update(data=str(dataset_yaml), out=str(paths.run_dir), resume=resume)
    try:
        settings = SearchSettings.from_mapping(values, source=str(settings_path))
    except TypeError as exc:
        raise JobInputError(f"{settings_path}: {exc}") from None
    search_cfg, other_family = None, None
    try:
        if model_file is not None:
            check_cfg_arithmetic(model_file, settings)
        if from_base and build:
            search_cfg, other_family = search_space_of(model_file)
    except ValueError as exc:
        raise JobInputError(str(exc)) from None
    if other_family:
        notes.append(f"{BASEMODEL}: {other_family}; the built-in {SearchSettings.cfg} is searched instead")
        settings = settings.replace(cfg=SearchSettings.cfg)
    return JobInputs(project_info=info, dataset_yaml=dataset_yaml, settings=settings, search_cfg=search_cfg,
                     half=choices.half, notes=tuple(notes))


def _check_run_folder(paths: ProjectPaths) -> None:
    """The job writes everything under the run folder: no symlink there may lead it outside the volume."""
    leaks = links_leading_outside(paths.shared_dir, paths.run_dir) if paths.run_dir.is_dir() else []
    if leaks:
        raise JobInputError(f"run folder {paths.run_dir}: {len(leaks)} symlink(s) lead outside the shared volume "
                            f"({leaks[0]}); remove them")


def check_dataset_inside(paths: ProjectPaths, dataset_yaml: Path) -> None:
    """Every file of the dataset a search would read or write (its images, their label files and the label
    folders' caches) must resolve inside the shared volume: a symlink leading outside refuses the dataset,
    with the count and the first one, before anything is read.

    Run by the job, not by /start: it lists the dataset's images, which can take a while."""
    from autonn_nas.data import load_dataset_config
    from autonn_nas.data.cache import cache_locations
    from autonn_nas.data.labels import image_to_label_path

    config = load_dataset_config(dataset_yaml)
    images = sorted({*config.train, *config.val})
    labels = [image_to_label_path(image) for image in images]
    caches = [cache_locations(folder, None)[0] for folder in sorted({label.parent for label in labels})]
    for what, files in (("image", images), ("label file", labels), ("label cache", caches)):
        outside = _outside(paths.shared_dir, files)
        if outside:
            raise JobInputError(f"{dataset_yaml}: {len(outside)} {what}(s) of the dataset resolve outside the shared volume "
                                f"{paths.shared_dir}, e.g. {outside[0]} -> {outside[0].resolve()}; the stage reads only files "
                                "on the volume: copy them in")


def _outside(root: Path, files: list[Path]) -> list[Path]:
    """The files that resolve (symlinks followed) outside `root`; each folder is resolved once (a dataset has many files)."""
    root = root.resolve()
    folders: dict[Path, Path] = {}
    outside = []
    for path in files:
        if path.parent not in folders:
            folders[path.parent] = path.parent.resolve()
        if not is_within(root, path.resolve() if path.is_symlink() else folders[path.parent] / path.name):
            outside.append(path)
    return outside
