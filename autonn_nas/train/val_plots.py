"""The pictures `autonn-nas val` leaves in its run folder, as Ultralytics users know them: the precision-recall
curve per class at IoU 0.5 (PR_curve.png) and the confusion matrix (confusion_matrix.png)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from autonn_nas.train.confusion import CONF_THRES, IOU_THRES, confusion_matrix
from autonn_nas.train.metrics import RECALL_GRID, match_detections, pr_curve
from autonn_nas.utils.plots import pyplot, save_figure

NAMED_CLASSES_MAX = 30  # more classes than this: the PR curve's legend would be unreadable (grey lines instead)
TICKED_CLASSES_MAX = 100  # the confusion matrix names its rows and columns up to this many classes


def write_val_plots(folder: str | Path, ground_truth: dict[str, Any], results: Sequence[dict[str, Any]]) -> dict[str, Path]:
    """PR_curve.png and confusion_matrix.png in `folder`; returns {'pr_curve': path, 'confusion_matrix': path}."""
    folder = Path(folder)
    names = [c["name"] for c in sorted(ground_truth["categories"], key=lambda c: c["id"])]
    return {"pr_curve": plot_pr_curve(ground_truth, results, names, folder / "PR_curve.png"),
            "confusion_matrix": plot_confusion_matrix(confusion_matrix(ground_truth, results, len(names)), names,
                                                      folder / "confusion_matrix.png")}


def plot_pr_curve(ground_truth: dict[str, Any], results: Sequence[dict[str, Any]], names: Sequence[str], path: Path) -> Path:
    """One thin line per class with ground truth, and their mean in bold (its AP is the curve's mAP50)."""
    curves = {cls: pr_curve(scores, hits, n_gt) for cls, (scores, hits, n_gt) in sorted(match_detections(ground_truth, results).items())}
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 6), tight_layout=True)
    labelled = len(curves) <= NAMED_CLASSES_MAX
    for cls, (curve, ap) in curves.items():
        ax.plot(RECALL_GRID, curve, linewidth=1, color=None if labelled else "grey",
                label=f"{names[cls] if cls < len(names) else cls} {ap:.3f}" if labelled else None)
    if curves:
        mean = np.mean([curve for curve, _ in curves.values()], axis=0)
        ax.plot(RECALL_GRID, mean, linewidth=3, color="blue", label=f"all classes {np.mean([ap for _, ap in curves.values()]):.3f} mAP@0.5")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.01), title="Precision-Recall curve (IoU 0.5)")
    ax.legend(bbox_to_anchor=(1.04, 1), loc="upper left", fontsize="small")
    return save_figure(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, names: Sequence[str], path: Path) -> Path:
    """Each true class's column normalised to 1 (what share of its objects went where), counts beside."""
    plt = pyplot()
    totals = matrix.sum(axis=0, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=np.float64), where=totals > 0)
    size = min(4 + 0.35 * len(matrix), 16)
    fig, ax = plt.subplots(figsize=(size + 2, size), tight_layout=True)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046)
    labels = [*names, "background"]
    if len(labels) <= TICKED_CLASSES_MAX + 1:  # COCO's 80 names still read at this size
        ticks, font = np.arange(len(labels)), "small" if len(labels) <= NAMED_CLASSES_MAX + 1 else 6
        ax.set_xticks(ticks, labels, rotation=90, fontsize=font)
        ax.set_yticks(ticks, labels, fontsize=font)
        if len(labels) <= 12:
            for (row, col), count in np.ndenumerate(matrix):
                if count:
                    ax.text(col, row, f"{shares[row, col]:.2f}", ha="center", va="center", fontsize="small",
                            color="white" if shares[row, col] > 0.5 else "black")
    ax.set(xlabel="True", ylabel="Predicted",
           title=f"Confusion matrix (conf >= {CONF_THRES}, IoU > {IOU_THRES}; columns sum to 1)")
    return save_figure(fig, path)
