"""`autonn-nas val --data D --weights W`: P, R, mAP50 and mAP50-95 of a checkpoint on the val split, and in its
run folder (runs/val/exp, exp2, ...) metrics.json, PR_curve.png and confusion_matrix.png."""
from __future__ import annotations

import argparse
import json

from autonn_nas.commands.options import add_img_size, add_run_folder, run_folder

RUN_ARTEFACTS = ("metrics.json", "PR_curve.png", "confusion_matrix.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="YOLO dataset.yaml (its val split is evaluated)")
    parser.add_argument("--weights", required=True, help="checkpoint written by autonn-nas train/search (best.pt, bestmodel.pt)")
    add_img_size(parser, "square size, multiple of 32 (default: the size it was trained at, else 640)")
    parser.add_argument("--batch", "--batch-size", dest="batch", type=int, default=16)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or N")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--conf", type=float, default=0.001, help="confidence threshold (default %(default)s, for mAP)")
    parser.add_argument("--iou", type=float, default=0.65, help="NMS IoU threshold (default %(default)s)")
    parser.add_argument("--half", action="store_true", help="fp16 inference (CUDA only)")
    parser.add_argument("--save-json", default=None, help="write the COCO-format predictions to this file")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar (none anyway when stderr is not a terminal)")
    add_run_folder(parser, "val")


def run(args: argparse.Namespace) -> int:
    from autonn_nas.data import YoloDataset, create_dataloader, load_dataset_config
    from autonn_nas.train.checkpoint import checkpoint_img_size, load_checkpoint, model_from_checkpoint, reject_supernet
    from autonn_nas.train.evaluate import evaluate
    from autonn_nas.utils.device import select_device
    from autonn_nas.utils.files import atomic_write_json
    from autonn_nas.utils.run_folder import clear_previous_run, reuse_note

    device = select_device(args.device)
    checkpoint = load_checkpoint(args.weights)
    reject_supernet(checkpoint, args.weights)
    data = load_dataset_config(args.data)
    if int(checkpoint.get("nc") or data.nc) != data.nc:
        raise ValueError(f"{args.weights} was trained for {checkpoint['nc']} classes but {args.data} has nc={data.nc}")
    img_size = args.img or checkpoint_img_size(checkpoint)
    out = run_folder(args)
    model = model_from_checkpoint(checkpoint, device)
    dataset = YoloDataset.from_config(data, "val", img_size, augment=False)
    loader = create_dataloader(dataset, batch_size=args.batch, shuffle=False, workers=args.workers, seed=0)
    removed = clear_previous_run(out, RUN_ARTEFACTS)
    if removed:
        print(reuse_note(out, removed))
    metrics = evaluate(model, loader, device, conf_thres=args.conf, iou_thres=args.iou, half=args.half, save_json=args.save_json,
                       plots_dir=out, description="val" if args.progress else None)
    atomic_write_json(out / "metrics.json", {"weights": str(args.weights), "data": str(args.data), "img_size": img_size, **metrics})
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        speed = metrics["speed"]
        print(f"{'images':>8} {'P':>8} {'R':>8} {'mAP50':>8} {'mAP50-95':>9}")
        print(f"{metrics['images']:>8} {metrics['precision']:>8.4f} {metrics['recall']:>8.4f} {metrics['map50']:>8.4f} {metrics['map']:>9.4f}")
        print(f"speed per image at {img_size} px: inference {speed['inference']:.1f} ms, NMS {speed['nms']:.1f} ms")
        print(f"metrics.json, PR_curve.png and confusion_matrix.png in {out}")
    return 0
