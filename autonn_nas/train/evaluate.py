"""Evaluate a detector on a YoloDataset loader: inference, NMS, boxes back to original pixels, COCO mAP, P/R."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from autonn_nas.train.coco_eval import coco_ground_truth_from_dataset, coco_map, dataset_image_files, detections_to_coco
from autonn_nas.train.metrics import precision_recall
from autonn_nas.train.nms import non_max_suppression
from autonn_nas.utils.files import atomic_write_json
from autonn_nas.utils.log import get_logger

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


@torch.inference_mode()
def predict(
    model: nn.Module,
    dataloader: Any,
    device: torch.device,
    conf_thres: float = 0.001,
    iou_thres: float = 0.65,
    half: bool = False,
    max_det: int = 300,
) -> tuple[list[dict[str, Any]], dict[str, float], int]:
    """COCO result dicts for every image of the loader (image ids = positions in loader.dataset).

    Returns (results, milliseconds per image for 'inference' and 'nms', images seen).
    """
    ids = {path: i for i, path in enumerate(dataset_image_files(dataloader.dataset))}
    was_training = model.training
    model.eval()
    autocast = half and device.type == "cuda"
    results: list[dict[str, Any]] = []
    inference_s = nms_s = 0.0
    seen = 0
    try:
        for images, _targets, paths, shapes in dataloader:
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
            input_hw = tuple(images.shape[2:])
            for image_dets, path, shape_info in zip(detections, paths, shapes):
                seen += 1
                if len(image_dets):
                    results.extend(detections_to_coco(_to_original(image_dets, input_hw, shape_info), ids[str(path)]))
    finally:
        model.train(was_training)
    per_image = 1000.0 / max(seen, 1)
    return results, {"inference": inference_s * per_image, "nms": nms_s * per_image}, seen


def evaluate(
    model: nn.Module,
    dataloader: Any,
    device: torch.device | str,
    conf_thres: float = 0.001,
    iou_thres: float = 0.65,
    half: bool = False,
    save_json: str | Path | None = None,
    ground_truth: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """dict(precision, recall, map50, map, speed={'inference', 'nms'} in ms per image, images).

    The loader must not shuffle nor drop images (any order works; images are identified by path).
    `ground_truth` may be passed to avoid rebuilding it every epoch (coco_ground_truth_from_dataset).
    `save_json` writes the COCO-format predictions there.
    """
    device = torch.device(device)
    if ground_truth is None:
        ground_truth = coco_ground_truth_from_dataset(dataloader.dataset)
    results, speed, seen = predict(model, dataloader, device, conf_thres, iou_thres, half)
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
    log.debug("evaluation: %s", metrics)
    return metrics
