"""Evaluate a detector on a YoloDataset loader: inference, NMS, boxes back to original pixels, COCO mAP, P/R."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from autonn_nas.train.coco_eval import coco_ground_truth_from_dataset, coco_map, dataset_image_files, detections_to_coco
from autonn_nas.train.metrics import precision_recall
from autonn_nas.train.nms import non_max_suppression
from autonn_nas.utils.files import atomic_write_json
from autonn_nas.utils.log import get_logger
from autonn_nas.utils.progress import progress

log = get_logger("train.evaluate")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _to_original(detections: torch.Tensor, input_hw: tuple[int, int], shape_info: Any) -> torch.Tensor:
    """Map [x1, y1, x2, y2, ...] from the letterboxed input back to the original image (in place on a copy)."""
    from autonn_nas.data.letterbox import scale_boxes_to_original

    (h0, w0), ratio_pad = shape_info
    detections = detections.clone()
    detections[:, :4] = torch.as_tensor(
        scale_boxes_to_original(detections[:, :4], input_hw, (h0, w0), ratio_pad), dtype=detections.dtype, device=detections.device
    )
    return detections


@dataclass
class Predictions:
    results: list[dict[str, Any]]  # COCO result dicts (image ids = positions in loader.dataset)
    speed: dict[str, float]  # milliseconds per image: 'inference' and 'nms'
    images: int
    loss: dict[str, float] | None = None  # mean box/obj/cls loss per batch, when a loss function was given


@torch.inference_mode()
def predict(
    model: nn.Module,
    dataloader: Any,
    device: torch.device,
    conf_thres: float = 0.001,
    iou_thres: float = 0.65,
    half: bool = False,
    max_det: int = 300,
    loss_fn: Callable[[Any, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    description: str | None = None,
) -> Predictions:
    """Detections for every image of the loader; with `loss_fn`, also the loss of the raw head outputs that the
    same forward pass gives (the validation loss, at no extra inference). `description`: a progress bar's
    title (a bar only on a terminal)."""
    ids = {path: i for i, path in enumerate(dataset_image_files(dataloader.dataset))}
    was_training = model.training
    model.eval()
    autocast = half and device.type == "cuda"
    results: list[dict[str, Any]] = []
    inference_s = nms_s = 0.0
    seen, batches = 0, 0
    loss_sums = torch.zeros(3)
    try:
        for images, targets, paths, shapes in progress(dataloader, description or "", enabled=description is not None, leave=False):
            images = images.to(device, non_blocking=True).float() / 255.0
            _sync(device)
            start = time.perf_counter()
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=autocast):
                output = model(images)
            pred = output[0] if isinstance(output, (tuple, list)) else output
            _sync(device)
            middle = time.perf_counter()
            detections = non_max_suppression(pred, conf_thres=conf_thres, iou_thres=iou_thres, max_det=max_det)
            _sync(device)
            inference_s += middle - start
            nms_s += time.perf_counter() - middle
            if loss_fn is not None and isinstance(output, (tuple, list)) and len(output) > 1:  # outside the timed part
                loss_sums += loss_fn(output[1], targets.to(device))[1][:3].float().cpu()
                batches += 1
            input_hw = tuple(images.shape[2:])
            for image_dets, path, shape_info in zip(detections, paths, shapes):
                seen += 1
                if len(image_dets):
                    results.extend(detections_to_coco(_to_original(image_dets, input_hw, shape_info), ids[str(path)]))
    finally:
        model.train(was_training)
    per_image = 1000.0 / max(seen, 1)
    loss = dict(zip(("box", "obj", "cls"), (loss_sums / batches).tolist())) if batches else None
    return Predictions(results, {"inference": inference_s * per_image, "nms": nms_s * per_image}, seen, loss)


def evaluate(
    model: nn.Module,
    dataloader: Any,
    device: torch.device | str,
    conf_thres: float = 0.001,
    iou_thres: float = 0.65,
    half: bool = False,
    save_json: str | Path | None = None,
    ground_truth: dict[str, Any] | None = None,
    loss_fn: Callable[[Any, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    plots_dir: str | Path | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """dict(precision, recall, map50, map, speed={'inference', 'nms'} in ms per image, images; with `loss_fn`,
    val_loss={'box', 'obj', 'cls'}; with `plots_dir`, plots={name: path} of the PR curve and confusion matrix).

    The loader must not shuffle nor drop images (any order works; images are identified by path).
    `ground_truth` may be passed to avoid rebuilding it every epoch (coco_ground_truth_from_dataset).
    `save_json` writes the COCO-format predictions there. `description`: a progress bar's title (terminal only).
    """
    device = torch.device(device)
    if ground_truth is None:
        ground_truth = coco_ground_truth_from_dataset(dataloader.dataset)
    predictions = predict(model, dataloader, device, conf_thres, iou_thres, half, loss_fn=loss_fn, description=description)
    results, speed, seen = predictions.results, predictions.speed, predictions.images
    if save_json is not None:
        atomic_write_json(save_json, results)
    map50, map50_95 = coco_map(ground_truth, results)
    point = precision_recall(ground_truth, results)
    metrics = {
        "precision": point.precision,
        "recall": point.recall,
        "map50": map50,
        "map": map50_95,
        "conf_at_best_f1": point.conf,
        "speed": speed,
        "images": seen,
        "detections": len(results),
    }
    if predictions.loss is not None:
        metrics["val_loss"] = predictions.loss
    if plots_dir is not None:
        from autonn_nas.train.val_plots import write_val_plots

        metrics["plots"] = {name: str(path) for name, path in write_val_plots(plots_dir, ground_truth, results).items()}
    log.debug("evaluation: %s", metrics)
    return metrics
