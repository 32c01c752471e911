"""`autonn-nas train --data D [...]`: train a detector; outputs (weights, results.csv/png, log) in its run folder."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from autonn_nas.commands.options import add_img_size, add_run_folder, run_folder
from autonn_nas.train.hyp import load_hyp_overrides
from autonn_nas.train.settings import DEFAULT_CFG, TrainSettings
from autonn_nas.utils.files import atomic_write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=False, help="YOLO dataset.yaml (not needed with --resume)")
    parser.add_argument("--cfg", default=None, help="model YAML: a path or a built-in name (default: the --weights' own model, "
                                                    f"else {DEFAULT_CFG})")
    parser.add_argument("--weights", default=None, help="start from these weights: a search's bestmodel.pt or last.pt, a train "
                                                        "last.pt/best.pt, or a Scaled-YOLOv4-layout state_dict")
    parser.add_argument("--arch", default=None, help="with a search's last.pt: the sub-network to take (an architecture JSON; "
                                                     "default: the search's arch.json beside it)")
    parser.add_argument("--strict", action="store_true", help="with --weights: stop at the first tensor that does not fit "
                                                              "(default: load what fits and report the rest)")
    parser.add_argument("--epochs", type=int, default=None, help="default: 10 on CPU, 100 on GPU (with --resume: a new total)")
    add_img_size(parser, "square train/val size, multiple of 32 (default: 320 CPU, 640 GPU)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 16); gradients accumulate to 64")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or N (default: CUDA when present)")
    parser.add_argument("--width", type=float, default=None, help="width_multiple (default: 0.25 on CPU, the YAML's on GPU)")
    parser.add_argument("--depth", type=float, default=None, help="depth_multiple (default: 0.33 on CPU, the YAML's on GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue a run from its last.pt: the one in --out (or "
                        "--project/--name), else the newest under --project")
    parser.add_argument("--workers", type=int, default=None, help="data loader processes (default: 2 CPU, 8 GPU)")
    parser.add_argument("--hyp", default=None, help="YAML of hyperparameter overrides (keys of DEFAULT_HYP)")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--eval-interval", type=int, default=1, help="evaluate and checkpoint every N epochs (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (there are none when stderr is not a "
                        "terminal: a line per epoch instead)")
    add_run_folder(parser, "train", resumable=True)


def run(args: argparse.Namespace) -> int:
    from autonn_nas.search.weights_file import read_weights
    from autonn_nas.train.trainer import Trainer

    if not args.data and not args.resume:
        raise ValueError("--data is required (a YOLO dataset.yaml) unless --resume is given")
    settings = TrainSettings(
        data=args.data or "",
        cfg=args.cfg,
        weights=args.weights,
        strict=args.strict,
        out=str(run_folder(args, resume=args.resume)),
        epochs=args.epochs,
        img_size=args.img,
        batch_size=args.batch,
        width=args.width,
        depth=args.depth,
        device=args.device,
        seed=args.seed,
        workers=args.workers,
        resume=args.resume,
        augment=not args.no_augment,
        hyp=load_hyp_overrides(args.hyp),
        progress=not args.no_progress,
        eval_interval=args.eval_interval,
    )
    if args.arch and not args.weights:
        raise ValueError("--arch picks the sub-network of a search's last.pt: give that file with --weights")
    initial = read_weights(args.weights, arch=args.arch) if args.weights and not args.resume else None
    summary = Trainer(settings, initial=initial).run()
    atomic_write_json(Path(settings.out) / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return 0
