"""Read a YOLO dataset.yaml into resolved lists of image files (the format is described in design/contract.md).

`train` and `val` are each an image folder, a text file listing images, or a list of either. Relative paths are
relative to `path` when the YAML gives one (itself relative to the YAML's folder), else to the YAML's folder;
absolute paths are used as they are. In list files, lines starting with './' are relative to the list file's
folder (YOLOv5's convention); other relative lines are relative to the dataset root.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autonn_nas.data.errors import DatasetError
from autonn_nas.models.bounded_yaml import YamlInputError, load_yaml_file, shown
from autonn_nas.utils.log import get_logger

log = get_logger("data.config")

# lower-case suffixes; matched case-insensitively so that IMG_01.JPG counts
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
SPLITS = ("train", "val")
KNOWN_KEYS = ("path", "train", "val", "test", "nc", "names")  # test: YOLO's convention; nothing here reads it
IGNORED_KEYS = ("download", "roboflow")  # what other tools put in their dataset.yaml files; not a typo, not used
_said: set[str] = set()  # warnings already given in this process (a dataset.yaml is read several times per run)
MAX_CLASSES = 100_000  # far above any detection dataset (LVIS has 1203); an absurd nc is refused, not allocated


@dataclass(frozen=True)
class DatasetConfig:
    """A dataset.yaml with every path resolved: train/val are the image files of each split, sorted."""

    yaml_path: Path
    root: Path
    train: list[Path] = field(repr=False)
    val: list[Path] = field(repr=False)
    nc: int
    names: list[str]

    def split(self, name: str) -> list[Path]:
        if name not in SPLITS:
            raise DatasetError(f"unknown split '{name}'; valid splits: {', '.join(SPLITS)}")
        return list(getattr(self, name))


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def load_dataset_config(path: str | Path) -> DatasetConfig:
    """Parse and resolve a dataset.yaml; every problem a user can fix is a DatasetError naming the file."""
    yaml_path = Path(path).expanduser()
    if yaml_path.is_dir():
        yaml_path = yaml_path / "dataset.yaml"
    if not yaml_path.is_file():
        raise DatasetError(f"dataset file not found: {yaml_path}")
    yaml_path = yaml_path.resolve()
    data = _read_yaml(yaml_path)
    _warn_unknown_keys(data, yaml_path)
    root = _dataset_root(data, yaml_path)
    nc, names = _classes(data, yaml_path)
    splits = {}
    for split in SPLITS:
        if data.get(split) in (None, "", []):
            raise DatasetError(f"{yaml_path}: missing '{split}' (an image folder, a list file, or a list of either)")
        splits[split] = _images_of_split(data[split], root, yaml_path, split)
    return DatasetConfig(yaml_path=yaml_path, root=root, train=splits["train"], val=splits["val"], nc=nc, names=names)


def _read_yaml(yaml_path: Path) -> dict[str, Any]:
    try:
        data = load_yaml_file(yaml_path)
    except YamlInputError as error:
        raise DatasetError(str(error)) from None
    if not isinstance(data, dict):
        raise DatasetError(f"{yaml_path}: expected a mapping with keys train, val, nc, names; got {type(data).__name__}")
    return data


def _say_once(message: str) -> None:
    if message not in _said:
        _said.add(message)
        log.warning("%s", message)


def _warn_unknown_keys(data: dict[str, Any], yaml_path: Path) -> None:
    """A typo (nmaes:) would otherwise pass unnoticed: each unknown key is named, with the known key closest to it."""
    for key in data:
        if key in KNOWN_KEYS or key in IGNORED_KEYS:
            continue
        closest = difflib.get_close_matches(str(key), KNOWN_KEYS, n=1, cutoff=0.5)
        hint = f"did you mean '{closest[0]}'?" if closest else f"known keys: {', '.join(KNOWN_KEYS)}"
        _say_once(f"{yaml_path}: unknown key '{key}' is ignored; {hint}")


def _dataset_root(data: dict[str, Any], yaml_path: Path) -> Path:
    if data.get("path") in (None, ""):
        return yaml_path.parent
    root = Path(str(data["path"])).expanduser()
    if not root.is_absolute():
        root = yaml_path.parent / root
    if root.is_dir():
        return root.resolve()
    # A dataset copied to another mount keeps its old `path`; when the splits are found next to the YAML, use them.
    if all(_exists_relative_to(data.get(split), yaml_path.parent) for split in SPLITS):
        log.warning("%s: path '%s' does not exist; using the YAML's folder %s, where train and val were found", yaml_path, data["path"], yaml_path.parent)
        return yaml_path.parent
    raise DatasetError(f"{yaml_path}: dataset path '{data['path']}' not found (resolved to {root})")


def _exists_relative_to(spec: Any, base: Path) -> bool:
    specs = spec if isinstance(spec, list) else [spec]
    return bool(specs) and all(isinstance(s, str) and (Path(s).is_absolute() or (base / s).exists()) for s in specs)


def _classes(data: dict[str, Any], yaml_path: Path) -> tuple[int, list[str]]:
    names = data.get("names")
    if isinstance(names, dict):
        names = _names_from_dict(names, yaml_path)
    elif isinstance(names, (list, tuple)):
        names = [str(n) for n in names]
    elif names is not None:
        raise DatasetError(f"{yaml_path}: 'names' must be a list or a mapping index -> name, got {type(names).__name__}")

    nc = data.get("nc")
    if nc is not None:
        if isinstance(nc, bool) or not isinstance(nc, int) or not 1 <= nc <= MAX_CLASSES:
            raise DatasetError(f"{yaml_path}: 'nc' must be a positive integer (at most {MAX_CLASSES}), got {shown(nc)}")
        if names is not None and len(names) != nc:
            raise DatasetError(f"{yaml_path}: nc is {nc} but names lists {len(names)} classes; make them agree")
    elif names is not None:
        nc = len(names)
    else:
        raise DatasetError(f"{yaml_path}: give 'names' (and optionally 'nc'), the class names of the dataset")
    if names is None:
        _say_once(f"{yaml_path}: no 'names': the {nc} classes are called class0..class{nc - 1} in logs, reports and the "
                  "weights; add names: [...] to name them")
        names = [f"class{i}" for i in range(nc)]
    if nc == 0:
        raise DatasetError(f"{yaml_path}: 'names' is empty; a detection dataset needs at least one class")
    return nc, names


def _names_from_dict(names: dict[Any, Any], yaml_path: Path) -> list[str]:
    try:
        indexed = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{yaml_path}: 'names' keys must be class indices 0..n-1 ({error})") from error
    if sorted(indexed) != list(range(len(indexed))):
        raise DatasetError(f"{yaml_path}: 'names' keys must be the class indices 0..{len(indexed) - 1} without gaps, got {sorted(indexed)}")
    return [indexed[i] for i in range(len(indexed))]


def _images_of_split(spec: Any, root: Path, yaml_path: Path, split: str) -> list[Path]:
    sources = spec if isinstance(spec, list) else [spec]
    files: list[Path] = []
    for source in sources:
        if not isinstance(source, str):
            raise DatasetError(f"{yaml_path}: '{split}' entries must be paths (strings), got {source!r}")
        location = _resolve(source, root)
        if location.is_dir():
            found = sorted(p for p in location.rglob("*") if p.is_file() and is_image_file(p))
        elif location.is_file():
            found = _images_of_list_file(location, root)
        else:
            raise DatasetError(f"{yaml_path}: {split} path '{source}' not found (resolved to {location})")
        if not found:
            raise DatasetError(f"{yaml_path}: {split} path '{source}' ({location}) holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        files.extend(found)
    # a list of sources may name the same image twice; keep the first
    return list(dict.fromkeys(files))


def _resolve(source: str, root: Path) -> Path:
    path = Path(source).expanduser()
    return path if path.is_absolute() else root / path


def _images_of_list_file(list_file: Path, root: Path) -> list[Path]:
    """Image paths named in a text file, one a line; listed files that do not exist are kept, and the
    dataset scan reports them, so that a typo in a list is visible rather than silently dropped."""
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DatasetError(f"{list_file}: an image list must be a UTF-8 text file with one path a line ({error})") from error
    files = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("./"):
            path = list_file.parent / line[2:]
        else:
            path = _resolve(line, root)
        if is_image_file(path):
            files.append(path)
    return files
