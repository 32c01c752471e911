"""Datasets: dataset.yaml, labels and their report, image loading, letterbox, augmentation, loader."""
from autonn_nas.data.config import IMAGE_EXTENSIONS, DatasetConfig, load_dataset_config
from autonn_nas.data.dataset import YoloDataset, create_dataloader
from autonn_nas.data.errors import DatasetError
from autonn_nas.data.labels import DatasetReport, Skipped, image_to_label_path
from autonn_nas.data.letterbox import letterbox, scale_boxes_to_original
from autonn_nas.data.split import split_holdout

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetConfig",
    "DatasetError",
    "DatasetReport",
    "Skipped",
    "YoloDataset",
    "create_dataloader",
    "image_to_label_path",
    "letterbox",
    "load_dataset_config",
    "scale_boxes_to_original",
    "split_holdout",
]
