"""`autonn-nas predict --weights W --source IMAGES_OR_DIR [--save]`: detections on image files.

W is a checkpoint (bestmodel.pt, best.pt) or an export (bestmodel.onnx, bestmodel.torchscript). Each image is
letterboxed, run, NMS'd and its boxes mapped back to its own pixels. Writes to its run folder (runs/predict/exp,
exp2, ...; or --out): labels/<image>.txt (YOLO: cls cx cy w h conf, normalised), predictions.json (COCO results:
image_id, category_id, bbox xywh in pixels, score, file_name) and, with --save, <image>.jpg with the boxes and
class names drawn. A reused folder is emptied of the previous run's files first.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from autonn_nas.commands.options import add_img_size, add_run_folder, run_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="bestmodel.pt / best.pt, or an export: .onnx, .torchscript")
    parser.add_argument("--source", required=True, nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders (searched recursively)")
    add_img_size(parser, "input size, multiple of 32 (default: the size of the weights/export, else 640)")
    parser.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default %(default)s)")
    parser.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default %(default)s)")
    parser.add_argument("--max-det", type=int, default=300, help="detections per image at most")
    parser.add_argument("--save", action="store_true", help="also save each image with its boxes and class names drawn")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or N (ONNX runs on onnxruntime's CPU provider)")
    parser.add_argument("--half", action="store_true", help="fp16 inference (CUDA only)")
    add_run_folder(parser, "predict")


def previous_predictions(out: Path, sources: list[Path]) -> list[str]:
    """What an earlier predict run left in `out`: labels/ (one file per image it read), the drawn picture of each of
    those images, predictions.json. An image this run reads is never among them (--out pointing at the images)."""
    stems = [label.stem for label in (out / "labels").glob("*.txt")]
    reading = {source.resolve() for source in sources}
    pictures = [f"{stem}.jpg" for stem in stems if (out / f"{stem}.jpg").resolve() not in reading]
    return ["labels", "predictions.json", *pictures]


def run(args: argparse.Namespace) -> int:
    from autonn_nas.export.draw import draw_detections
    from autonn_nas.export.images import list_images
    from autonn_nas.export.predict import coco_image_id, coco_results, load_predictor, predict_files, yolo_label_lines
    from autonn_nas.utils.files import atomic_write_json, atomic_write_text
    from autonn_nas.utils.run_folder import clear_previous_run, reuse_note

    files = list_images(args.source)
    predictor = load_predictor(args.weights, args.device, args.half)
    img_size = args.img or predictor.img_size
    if predictor.fixed_size and img_size != predictor.img_size:
        raise ValueError(f"{args.weights} was exported for {predictor.img_size} px only (export with --dynamic for other sizes); "
                         f"use --img {predictor.img_size}")
    out = run_folder(args)
    removed = clear_previous_run(out, previous_predictions(out, [Path(f) for f in files]))
    if removed:
        print(reuse_note(out, removed))
    labels_dir = out / "labels"
    results, total_ms, counts = [], 0.0, Counter()
    print(f"{len(files)} image(s), {predictor.description}, {img_size} px, conf {args.conf}, iou {args.iou} -> {out}")
    for index, prediction in enumerate(predict_files(predictor, files, img_size, args.conf, args.iou, args.max_det)):
        image = prediction.image
        height, width = image.original_hw
        names = predictor.names or [str(i) for i in range(int(prediction.detections[:, 5].max(initial=-1)) + 1)]
        lines = yolo_label_lines(prediction.detections, width, height)
        atomic_write_text(labels_dir / f"{image.path.stem}.txt", "".join(f"{line}\n" for line in lines))
        results.extend(coco_results(prediction, coco_image_id(image.path, index)))
        if args.save:
            drawn = draw_detections(image.original, prediction.detections, names)
            (out / f"{image.path.stem}.jpg").parent.mkdir(parents=True, exist_ok=True)
            drawn.save(out / f"{image.path.stem}.jpg", quality=90)
        found = Counter(names[int(c)] if int(c) < len(names) else str(int(c)) for c in prediction.detections[:, 5])
        counts.update(found)
        total_ms += prediction.milliseconds
        summary = ", ".join(f"{n} {name}" for name, n in found.most_common()) or "no detections"
        print(f"{image.path}: {summary} ({prediction.milliseconds:.1f} ms)")
    atomic_write_json(out / "predictions.json", results)
    print(f"{sum(counts.values())} detections in {len(files)} image(s), {total_ms / max(len(files), 1):.1f} ms per image "
          f"(inference + NMS); labels in {labels_dir}, COCO JSON {out / 'predictions.json'}" + (f", pictures in {out}" if args.save else ""))
    return 0
