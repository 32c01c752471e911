"""YoloDataset (images + YOLO labels -> letterboxed training/eval samples) and its DataLoader.

An item is (image uint8 tensor 3xHxW RGB, targets (n, 6) [0, cls, cx, cy, w, h] normalised to the returned
image, image path, ((h0, w0), ((ratio_h, ratio_w), (pad_w, pad_h)))). The last part maps boxes of the returned
image back to the original one (see letterbox.scale_boxes_to_original); for augmented samples it describes the
plain letterbox of the image, since an augmented sample has no single mapping.

Randomness: sample `index` of epoch `e` draws only from a Generator seeded by (seed, e, index), so a run is the
same whatever the number of loader workers. The epoch lives in shared memory so that persistent workers see
`set_epoch` too.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from autonn_nas.data.augment import AUGMENTATION_DEFAULTS, augment_hsv, flip_horizontal, mosaic4, random_affine
from autonn_nas.data.boxes import xywhn_to_xyxy, xyxy_to_xywhn
from autonn_nas.data.config import DatasetConfig
from autonn_nas.data.errors import DatasetError
from autonn_nas.data.images import load_image
from autonn_nas.data.labels import DatasetReport, Skipped
from autonn_nas.data.letterbox import letterbox
from autonn_nas.data.scan import ImageRecord, labels_without_image, scan_images
from autonn_nas.utils.log import get_logger

log = get_logger("data")

# images are kept decoded in RAM (loaded before workers fork, so they share the pages) when they fit in this
AUTO_CACHE_IMAGES_BYTES = 512 * 2**20

ShapeInfo = tuple[tuple[int, int], tuple[tuple[float, float], tuple[float, float]]]


class YoloDataset(Dataset):
    """Images with YOLO labels, scanned once (label cache), served letterboxed to img_size x img_size.

    image_files: images of one split (e.g. DatasetConfig.train); unusable ones are skipped and reported.
    augment: training augmentation (HSV, flip, random affine, and mosaic when `mosaic`, default = augment,
    with probability hyp['mosaic']). nc/names: classes (rows with other classes are skipped).
    cache: keep the label scan in a cache file (cache_dir when the dataset folder is read-only).
    cache_images: keep the resized images in RAM; None = when they take at most AUTO_CACHE_IMAGES_BYTES.
    Attributes: image_files, labels ((n, 5) [cls, cx, cy, w, h] per image, normalised to the original),
    shapes ((N, 2) width, height), report (DatasetReport), nc, names.
    """

    def __init__(
        self,
        image_files: Sequence[str | Path],
        img_size: int = 640,
        augment: bool = False,
        hyp: Mapping[str, float] | None = None,
        mosaic: bool | None = None,
        nc: int | None = None,
        names: Sequence[str] | None = None,
        seed: int = 0,
        cache: bool = True,
        cache_dir: str | Path | None = None,
        source: str | None = None,
        cache_images: bool | None = None,
        _records: Sequence[ImageRecord] | None = None,
    ):
        if img_size < 32 or img_size % 2:
            raise ValueError(f"img_size must be an even number of pixels >= 32, got {img_size}")
        if nc is None and names is not None:
            nc = len(names)
        self.img_size = int(img_size)
        self.augment = augment
        self.hyp = {**AUGMENTATION_DEFAULTS, **(hyp or {})}  # keys not given keep their defaults
        self.mosaic = augment if mosaic is None else mosaic
        self.nc = nc
        self.names = [str(n) for n in names] if names is not None else [f"class{i}" for i in range(nc or 0)]
        self.seed = int(seed)
        self.cache_dir = cache_dir
        files = [Path(f) for f in image_files]
        self.source = source or _describe(files)
        records = list(_records) if _records is not None else scan_images(files, nc, cache=cache, cache_dir=cache_dir)
        self._records = records
        usable = [r for r in records if r.usable]
        self.image_files = [r.path for r in usable]
        self.labels = [r.boxes for r in usable]
        self.shapes = np.array([r.shape for r in usable], dtype=np.int64).reshape(-1, 2)
        self.report = DatasetReport.build(
            self.source,
            images=len(records),
            labels=self.labels,
            names=self.names,
            skipped_images=[_image_skip(r) for r in records if not r.usable],
            skipped_rows=[s for r in records for s in r.skipped_rows],
            labels_without_image=labels_without_image(files) if _records is None else [],
        )
        if _records is None:  # a view of scanned records (subset, without_augmentation) was reported with its source
            log.info("%s", self.report.format())
        if not usable:
            raise DatasetError(f"{self.source}: no usable images among {len(records)} ({self.report.format()})")
        if self.report.boxes == 0:
            raise DatasetError(f"{self.source}: no boxes: all {len(usable)} usable images are background images; check the label files")
        # shared with persistent workers; a plain attribute would stay at its value when the workers started
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._images: list[np.ndarray] | None = None
        if cache_images or (cache_images is None and self.resized_bytes() <= AUTO_CACHE_IMAGES_BYTES):
            self._images = [load_image(path, self.img_size) for path in self.image_files]
            log.info("%s: %d images kept in memory at %d px (%.0f MB)", self.source, len(self), self.img_size, self.resized_bytes() / 2**20)

    @classmethod
    def from_config(cls, config: DatasetConfig, split: str, img_size: int = 640, **kwargs: Any) -> "YoloDataset":
        """The dataset of one split of a dataset.yaml, with its classes and a readable source name."""
        kwargs.setdefault("source", f"{config.yaml_path} [{split}]")
        return cls(config.split(split), img_size, nc=config.nc, names=config.names, **kwargs)

    def subset(self, indices: Sequence[int]) -> "YoloDataset":
        """A dataset of some of these images (positions in image_files), with the same settings; no rescan."""
        return self._view(list(indices), self.augment, self.mosaic, f"{self.source} (subset of {len(indices)})")

    def without_augmentation(self) -> "YoloDataset":
        """The same images served plainly (letterbox only), e.g. the training images for BN recalibration; no rescan,
        nothing logged again, and the images kept in memory are shared."""
        return self._view(list(range(len(self))), False, False, f"{self.source} (not augmented)")

    def _view(self, indices: list[int], augment: bool, mosaic: bool, source: str) -> "YoloDataset":
        usable = [r for r in self._records if r.usable]
        chosen = [usable[i] for i in indices]
        part = YoloDataset(
            [r.path for r in chosen], self.img_size, augment, self.hyp, mosaic, self.nc, self.names,
            self.seed, cache_dir=self.cache_dir, source=source, cache_images=False, _records=chosen,
        )
        if self._images is not None:
            part._images = [self._images[i] for i in indices]
        return part

    # -- epochs and randomness ------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def sample_rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, int(index)])

    # -- items ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.image_files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str, ShapeInfo]:
        width0, height0 = (int(v) for v in self.shapes[index])
        if self.augment:
            img, boxes = self._augmented(index, self.sample_rng(index))
        else:
            img, boxes = self._letterboxed(index)
        out_h, out_w = img.shape[:2]
        targets = torch.zeros((len(boxes), 6), dtype=torch.float32)
        if len(boxes):
            targets[:, 1] = torch.from_numpy(boxes[:, 0])
            targets[:, 2:] = torch.from_numpy(xyxy_to_xywhn(boxes[:, 1:5], out_w, out_h, clip=True))
        image = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        return image, targets, str(self.image_files[index]), ((height0, width0), self.letterbox_mapping(index))

    def letterbox_mapping(self, index: int) -> tuple[tuple[float, float], tuple[float, float]]:
        """((ratio_h, ratio_w), (pad_w, pad_h)) of the plain (unaugmented) sample `index`."""
        width0, height0 = (int(v) for v in self.shapes[index])
        scale = self.img_size / max(width0, height0)
        width, height = max(1, round(width0 * scale)), max(1, round(height0 * scale))
        pad_w, pad_h = (self.img_size - width) // 2, (self.img_size - height) // 2
        return (height / height0, width / width0), (float(pad_w), float(pad_h))

    def resized_bytes(self) -> int:
        """Memory the images take at img_size (what cache_images keeps in RAM)."""
        scale = self.img_size / self.shapes.max(axis=1)
        return int(np.sum(np.round(self.shapes[:, 0] * scale) * np.round(self.shapes[:, 1] * scale) * 3))

    def _resized(self, index: int) -> np.ndarray:
        """The image with its longer side at img_size (aspect ratio kept); callers must not modify it."""
        if self._images is not None:
            return self._images[index]
        return load_image(self.image_files[index], self.img_size)

    def _letterboxed(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The image letterboxed to img_size x img_size, boxes [cls, x1, y1, x2, y2] in its pixels."""
        img = self._resized(index)
        resized_h, resized_w = img.shape[:2]
        img, _, (pad_w, pad_h) = letterbox(img, self.img_size, auto=False, scaleup=False)
        boxes = self.labels[index]
        pixel = xywhn_to_xyxy(boxes[:, 1:5], resized_w, resized_h, pad_w, pad_h)
        return img, np.concatenate((boxes[:, :1], pixel), axis=1).astype(np.float32)

    def _augmented(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        hyp = self.hyp
        if self.mosaic and rng.random() < hyp.get("mosaic", 0.0):
            img, boxes = mosaic4(index, len(self), self.img_size, self._resized_with_labels, rng, hyp)
        else:
            img, boxes = self._letterboxed(index)
            img, boxes = random_affine(
                img, boxes, rng, degrees=hyp.get("degrees", 0.0), translate=hyp.get("translate", 0.0),
                scale=hyp.get("scale", 0.0), shear=hyp.get("shear", 0.0),
            )
        img = augment_hsv(img, rng, hyp.get("hsv_h", 0.0), hyp.get("hsv_s", 0.0), hyp.get("hsv_v", 0.0))
        if rng.random() < hyp.get("fliplr", 0.0):
            img, boxes = flip_horizontal(img, boxes)
        return img, boxes

    def _resized_with_labels(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self._resized(index), self.labels[index]

    # -- batching -------------------------------------------------------------------------------------
    @staticmethod
    def collate_fn(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, str, ShapeInfo]],
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], tuple[ShapeInfo, ...]]:
        """Stack images; concatenate targets with column 0 set to each target's image index in the batch."""
        images, targets, paths, shapes = zip(*batch)
        for i, image_targets in enumerate(targets):
            image_targets[:, 0] = i
        return torch.stack(images, 0), torch.cat(targets, 0), paths, shapes


def _describe(files: Sequence[Path]) -> str:
    folders = sorted({str(f.parent) for f in files})
    return folders[0] if len(folders) == 1 else f"{len(files)} images in {len(folders)} folders"


def _image_skip(record: ImageRecord) -> Skipped:
    return Skipped(str(record.path), record.problem or "unusable")


def _seed_worker(worker_id: int) -> None:
    """Seed the global generators of a loader worker (augmentation uses its own; other code may not), and keep
    OpenCV single-threaded inside workers, which already run in parallel."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    cv2.setNumThreads(0)


class EpochShuffleSampler(Sampler[int]):
    """A random order of the dataset drawn from (seed, the dataset's epoch) alone.

    DataLoader's own shuffling draws from a generator whose consumption depends on the number of workers and
    on persistent workers, so the same seed gave different orders; this one does not, and a resumed run only
    needs its epoch number. The epoch is the dataset's (YoloDataset.set_epoch; set_epoch here forwards to it).
    """

    def __init__(self, dataset: YoloDataset, seed: int = 0):
        self.dataset = dataset
        self.seed = int(seed)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __iter__(self):
        state = np.random.SeedSequence([self.seed & 0xFFFFFFFF, self.dataset.epoch]).generate_state(1, np.uint64)
        generator = torch.Generator()
        generator.manual_seed(int(state[0] >> np.uint64(1)))
        return iter(torch.randperm(len(self.dataset), generator=generator).tolist())

    def __len__(self) -> int:
        return len(self.dataset)


def create_dataloader(
    dataset: YoloDataset,
    batch_size: int,
    shuffle: bool = False,
    workers: int = 0,
    seed: int = 0,
    sampler: Sampler | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader over `dataset` with YoloDataset.collate_fn. Batches depend only on (seed, epoch), not on the
    number of workers: call dataset.set_epoch(epoch) before each epoch (a new order and new augmentation).
    With a sampler (e.g. DistributedSampler, which has its own set_epoch) `shuffle` is ignored."""
    workers = max(0, min(int(workers), os.cpu_count() or 1))
    if sampler is None and shuffle:
        sampler = EpochShuffleSampler(dataset, seed)
    generator = torch.Generator()  # only seeds the workers' global generators
    generator.manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        collate_fn=YoloDataset.collate_fn,
        worker_init_fn=_seed_worker,
        generator=generator,
        persistent_workers=workers > 0,
        drop_last=drop_last,
    )
