"""Time one training epoch and the data-loading share of each step.

    .venv/bin/python benchmarks/train_epoch.py [--data ../shared/datasets/coco128/dataset.yaml] [--img 320] ...

Default data path: ../shared/datasets/coco128/dataset.yaml relative to the repository root. Prints one JSON
object: epoch seconds, images per second, seconds spent waiting on the loader vs computing, the loader's
own throughput (a pass over it without the model), and the settings. Results go in benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autonn_nas.data import YoloDataset, create_dataloader, load_dataset_config  # noqa: E402
from autonn_nas.models.yolo import build_model  # noqa: E402
from autonn_nas.train.ema import ModelEMA  # noqa: E402
from autonn_nas.train.epoch import make_grad_scaler, train_one_epoch  # noqa: E402
from autonn_nas.train.hyp import merge_hyp  # noqa: E402
from autonn_nas.train.loss import DetectionLoss, scaled_loss_gains  # noqa: E402
from autonn_nas.train.optim import build_optimizer  # noqa: E402
from autonn_nas.train.schedule import WarmupCosineSchedule  # noqa: E402
from autonn_nas.utils.device import select_device  # noqa: E402
from autonn_nas.utils.seed import seed_everything  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "coco128" / "dataset.yaml"))
    parser.add_argument("--cfg", default="yolov4-p5.yaml")
    parser.add_argument("--img", type=int, default=320)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--depth", type=float, default=0.33)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs (each reported)")
    parser.add_argument("--no-augment", action="store_true", help="no mosaic/HSV/flip (augmentation is on by default, as in training)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(0)
    device = select_device(args.device)
    hyp = merge_hyp()
    data = load_dataset_config(args.data)
    dataset = YoloDataset(data.train, args.img, augment=not args.no_augment, hyp=hyp, nc=data.nc, seed=0)
    loader = create_dataloader(dataset, batch_size=args.batch, shuffle=True, workers=args.workers, seed=0)

    # the loader alone: how fast could data arrive if compute were free?
    start = time.perf_counter()
    for _ in loader:
        pass
    loader_only = time.perf_counter() - start

    model = build_model(args.cfg, nc=data.nc, width=args.width, depth=args.depth).to(device)
    loss_fn = DetectionLoss(model, scaled_loss_gains(hyp, data.nc, model.detect.nl, args.img))
    optimizer = build_optimizer(model, hyp, args.batch)
    schedule = WarmupCosineSchedule(optimizer, hyp, max(args.epochs, 1), len(loader), args.batch)
    ema = ModelEMA(model)
    scaler = make_grad_scaler(device)
    epochs = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        result = train_one_epoch(model, loader, loss_fn, optimizer, schedule, epoch, device, scaler=scaler, ema=ema, progress=False)
        wall = time.perf_counter() - start
        epochs.append(
            {
                "epoch_seconds": round(wall, 2),
                "images_per_second": round(result.images / wall, 2),
                "batches": result.batches,
                "images": result.images,
                "data_wait_seconds": round(result.data_seconds, 2),
                "compute_seconds": round(result.compute_seconds, 2),
                "data_share": round(result.data_share, 4),
                "loss": round(result.total, 4),
            }
        )
    report = {
        "epochs": epochs,
        "loader_only_seconds": round(loader_only, 2),
        "settings": {k: v for k, v in vars(args).items()},
        "params": sum(p.numel() for p in model.parameters()),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device),
                    "processor": platform.processor() or platform.machine(), "torch": torch.__version__},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
