"""COCO-style evaluation: YOLO labels -> COCO ground truth, detections -> COCO results, pycocotools mAP.

Category ids are the dataset's class indices (0..nc-1); image ids are the positions of the images in the
evaluated dataset. Boxes are in original-image pixels, as COCO expects.
"""
from __future__ import annotations

import contextlib
import copy
import io
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from autonn_nas.utils.log import get_logger

log = get_logger("train.coco_eval")


def coco_ground_truth(
    labels: Sequence[np.ndarray],
    shapes: Sequence[Sequence[float]],
    names: Sequence[str],
    file_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A COCO ground-truth dict from YOLO labels.

    labels: per image an (n, 5) array [cls, cx, cy, w, h] normalised to the original image;
    shapes: per image (width, height) in pixels; names: class names (category id = index).
    """
    if len(labels) != len(shapes):
        raise ValueError(f"{len(labels)} label arrays but {len(shapes)} image shapes")
    images, annotations = [], []
    for image_id, (image_labels, (width, height)) in enumerate(zip(labels, shapes)):
        file_name = str(file_names[image_id]) if file_names is not None else str(image_id)
        images.append({"id": image_id, "width": int(width), "height": int(height), "file_name": file_name})
        for cls, cx, cy, w, h in np.asarray(image_labels, dtype=np.float64).reshape(-1, 5):
            box_w, box_h = w * width, h * height
            annotations.append(
                {
                    # COCOeval treats annotation id 0 as "unmatched", so ids start at 1
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls),
                    "bbox": [float((cx - w / 2) * width), float((cy - h / 2) * height), float(box_w), float(box_h)],
                    "area": float(box_w * box_h),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": str(name)} for i, name in enumerate(names)]
    return {"info": {"description": "YOLO labels converted by autonn-nas"}, "images": images, "annotations": annotations, "categories": categories}


def coco_ground_truth_from_dataset(dataset: Any, names: Sequence[str] | None = None) -> dict[str, Any]:
    """COCO ground truth of a YoloDataset (its `labels`, `shapes` (w, h) and image files)."""
    nc = int(getattr(dataset, "nc", 0) or 0)
    if names is None:
        names = getattr(dataset, "names", None) or [str(i) for i in range(nc or _max_class(dataset.labels) + 1)]
    return coco_ground_truth(dataset.labels, dataset.shapes, names, [str(f) for f in dataset_image_files(dataset)])


def dataset_image_files(dataset: Any) -> list[str]:
    for attribute in ("image_files", "im_files", "img_files", "files"):
        files = getattr(dataset, attribute, None)
        if files is not None:
            return [str(f) for f in files]
    raise AttributeError(f"{type(dataset).__name__} has no list of image files (image_files)")


def _max_class(labels: Iterable[np.ndarray]) -> int:
    classes = [int(np.asarray(l).reshape(-1, 5)[:, 0].max()) for l in labels if len(l)]
    return max(classes, default=0)


def detections_to_coco(detections: torch.Tensor | np.ndarray, image_id: int) -> list[dict[str, Any]]:
    """(n, 6) [x1, y1, x2, y2, conf, cls] in original-image pixels -> COCO result dicts (bbox xywh)."""
    rows = detections.detach().cpu().numpy() if isinstance(detections, torch.Tensor) else np.asarray(detections)
    results = []
    for x1, y1, x2, y2, conf, cls in rows.reshape(-1, 6).tolist():
        results.append(
            {
                "image_id": int(image_id),
                "category_id": int(cls),
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "score": round(conf, 5),
            }
        )
    return results


def coco_map(ground_truth: dict[str, Any], results: list[dict[str, Any]]) -> tuple[float, float]:
    """(mAP at IoU 0.5, mAP at IoU 0.5:0.95) from pycocotools' COCOeval; (0, 0) without detections.

    pycocotools prints progress to stdout; it is captured and sent to the log at debug level.
    """
    if not results or not ground_truth["annotations"]:
        return 0.0, 0.0
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(ground_truth)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes adds keys to the dicts it gets
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.params.imgIds = [image["id"] for image in ground_truth["images"]]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    log.debug("COCOeval:\n%s", captured.getvalue())
    map_50_95, map_50 = float(evaluator.stats[0]), float(evaluator.stats[1])
    # COCOeval reports -1 when no ground truth exists for any evaluated category
    return max(map_50, 0.0), max(map_50_95, 0.0)
