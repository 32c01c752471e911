"""The images of a search: the train split cut into a training part (weights) and a held-out part
(architecture decisions, itself cut into the part the search chooses on and the confirmation part);
only `val` is the validation split, and only the report reads it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autonn_nas.search.settings import SearchSettings
from autonn_nas.utils.log import get_logger

log = get_logger("search")

CONFIRM_FRACTION = 0.5  # of the held-out images, kept for the confirmation against the base (search/confirm.py)


@dataclass
class SearchData:
    """Datasets and loaders of a search; only `val` is the validation split."""

    config: Any
    train_part: Any
    holdout: Any  # architecture steps and spos scoring
    val: Any
    recal: Any  # the training part without augmentation (BN recalibration)
    confirm: Any = None  # the rest of the held-out part: only the derived-vs-base confirmation reads it
    train_val_overlap: int = 0  # images in both splits (a warning; reported)


def build_search_data(s: SearchSettings, hyp: dict[str, float]) -> SearchData:
    from autonn_nas.data import YoloDataset, load_dataset_config, split_holdout

    config = load_dataset_config(s.data)
    train_files, holdout_files = split_holdout(config.train, s.holdout_fraction, seed=s.seed)
    if not train_files or not holdout_files:
        raise ValueError(
            f"{s.data}: the train split has {len(config.train)} images, too few to hold out {s.holdout_fraction:.0%} "
            "for architecture decisions and keep the rest for weights; add images or change holdout_fraction"
        )
    shared = len(set(config.train) & set(config.val))  # the config's paths are resolved already
    if shared:  # e.g. a dataset.yaml with train == val: the held-out part would be val, and val no longer unseen
        log.warning("%s: %d image(s) are in both train and val: architecture decisions read some val images and the val "
                    "figures are not held-out figures; give val images of its own", s.data, shared)
    # the search chooses on one part of the held-out images and is checked against the base on the other:
    # on the images it chose with, a pick looks better than it is
    arch_files, confirm_files = (split_holdout(holdout_files, CONFIRM_FRACTION, seed=s.seed) if len(holdout_files) >= 2
                                 else (holdout_files, []))
    make = lambda files, augment, part: YoloDataset(  # noqa: E731
        files, s.img_size, augment=augment, hyp=hyp, nc=config.nc, names=config.names, seed=s.seed, source=f"{config.yaml_path} [{part}]")
    train_part = make(train_files, True, "train: weight training")
    return SearchData(config, train_part, make(arch_files, False, "train, held out: architecture decisions"),
                      make(config.val, False, "val"), train_part.without_augmentation(),
                      confirm=make(confirm_files, False, "train, held out: confirmation") if confirm_files else None,
                      train_val_overlap=shared)
