"""Batching: collate, worker count does not change batches, distributed samplers, subsets and the holdout split."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from autonn_nas.data import YoloDataset, create_dataloader, split_holdout
from test_data_support import make_split


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    files = make_split(tmp_path_factory.mktemp("loader"), "train", 8, size=(80, 60))
    return YoloDataset(files, img_size=64, augment=True, nc=2, seed=5, cache=False)


def test_collate_sets_batch_index(dataset):
    batch = [dataset[i] for i in range(4)]
    images, targets, paths, shapes = YoloDataset.collate_fn(batch)
    assert images.shape == (4, 3, 64, 64) and len(paths) == 4 and len(shapes) == 4
    counts = [len(item[1]) for item in batch]
    assert targets.shape == (sum(counts), 6)
    assert targets[:, 0].tolist() == [float(i) for i, n in enumerate(counts) for _ in range(n)]


def _epochs(loader, dataset, epochs=2):
    out = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        out.append([(images.clone(), targets.clone(), paths) for images, targets, paths, _ in loader])
    return out


def test_two_workers_give_the_same_batches_as_none(dataset):
    serial = _epochs(create_dataloader(dataset, batch_size=3, shuffle=True, workers=0, seed=1), dataset)
    parallel_loader = create_dataloader(dataset, batch_size=3, shuffle=True, workers=2, seed=1)
    assert parallel_loader.persistent_workers
    parallel = _epochs(parallel_loader, dataset)
    for serial_epoch, parallel_epoch in zip(serial, parallel):
        assert len(serial_epoch) == len(parallel_epoch) == 3
        for (si, st, sp), (pi, pt, pp) in zip(serial_epoch, parallel_epoch):
            assert sp == pp and torch.equal(si, pi) and torch.equal(st, pt)
    # epochs differ (order and augmentation), including in the persistent workers
    assert not torch.equal(parallel[0][0][0], parallel[1][0][0])
    dataset.set_epoch(0)


def test_distributed_sampler(dataset):
    halves = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = create_dataloader(dataset, batch_size=2, shuffle=True, workers=0, seed=0, sampler=sampler)
        halves.append([p for _, _, paths, _ in loader for p in paths])
    assert len(halves[0]) == len(halves[1]) == 4
    assert sorted(halves[0] + halves[1]) == sorted(str(f) for f in dataset.image_files)


def test_subset_keeps_settings_without_rescanning(dataset):
    part = dataset.subset([1, 3, 5])
    assert part.image_files == [dataset.image_files[i] for i in (1, 3, 5)]
    assert part.report.usable_images == 3 and part.augment and part.seed == dataset.seed
    assert all(a is b for a, b in zip(part.labels, (dataset.labels[i] for i in (1, 3, 5))))
    assert part.shapes.tolist() == dataset.shapes[[1, 3, 5]].tolist()


def test_split_holdout_is_deterministic_and_disjoint(dataset):
    files = list(dataset.image_files)
    train, holdout = split_holdout(files, 0.25, seed=3)
    assert len(holdout) == 2 and len(train) == 6 and not set(train) & set(holdout)
    assert train == [f for f in files if f in train]  # input order kept
    assert split_holdout(files, 0.25, seed=3) == (train, holdout)
    assert split_holdout(list(reversed(files)), 0.25, seed=3)[1] == list(reversed(holdout))  # order-independent choice
    assert {tuple(split_holdout(files, 0.25, seed=s)[1]) for s in range(10)} != {tuple(holdout)}
    assert len(split_holdout(files, 0.01, seed=0)[1]) == 1 and len(split_holdout(files, 0.99, seed=0)[0]) == 1
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_holdout(files, 1.0)
    with pytest.raises(ValueError, match="twice"):
        split_holdout(files + files[:1], 0.5)


@pytest.mark.parametrize("augment", [False, True])
def test_images_in_memory_give_the_same_samples(dataset, augment):
    files = dataset.image_files
    on_disk = YoloDataset(files, 64, augment=augment, nc=2, seed=5, cache=False, cache_images=False)
    in_memory = YoloDataset(files, 64, augment=augment, nc=2, seed=5, cache=False, cache_images=True)
    assert on_disk._images is None and in_memory._images is not None
    assert in_memory.resized_bytes() == sum(image.nbytes for image in in_memory._images)
    for index in range(len(files)):
        assert torch.equal(on_disk[index][0], in_memory[index][0]) and torch.equal(on_disk[index][1], in_memory[index][1])
    first = in_memory._images[0].copy()
    in_memory.subset([0, 1])[0]
    assert np.array_equal(in_memory._images[0], first)  # samples never write into the kept images
