"""Datasets: dataset.yaml, labels and their report, image loading, letterbox, augmentation, loader."""
from importlib import import_module
from typing import Any

from autonn_nas.data.config import IMAGE_EXTENSIONS, DatasetConfig, load_dataset_config
from autonn_nas.data.errors import DatasetError
from autonn_nas.data.labels import DatasetReport, Skipped, image_to_label_path
from autonn_nas.data.split import split_holdout

# imported on first use (PEP 562): they need torch, and `autonn-nas --help` or the hyperparameter defaults
# (data/augment_defaults.py, read by the CLI) must not pay for it
# (letterbox is imported from autonn_nas.data.letterbox: the function shares its module's name)
_LAZY = {"YoloDataset": "dataset", "create_dataloader": "dataset"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"autonn_nas.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'autonn_nas.data' has no attribute {name!r}")

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetConfig",
    "DatasetError",
    "DatasetReport",
    "Skipped",
    "YoloDataset",
    "create_dataloader",
    "image_to_label_path",
    "load_dataset_config",
    "split_holdout",
]
