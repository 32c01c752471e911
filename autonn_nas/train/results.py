"""results.csv (one row per epoch) and results.png, in the layout YOLO users know."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping

from autonn_nas.utils.files import atomic_write_text
from autonn_nas.utils.plots import pyplot, save_figure

# epoch counts from 1; box/obj/cls_loss are the training losses, val_*_loss the same losses on the val split
RESULT_COLUMNS = ("epoch", "box_loss", "obj_loss", "cls_loss", "precision", "recall", "map50", "map50_95",
                  "val_box_loss", "val_obj_loss", "val_cls_loss", "lr0", "lr1", "lr2")
# results.png as YOLOv5 lays it out: training losses and P/R on top, validation losses and mAP below
_PANELS = (("box_loss", "train box loss"), ("obj_loss", "train obj loss"), ("cls_loss", "train cls loss"), ("precision", "precision"),
           ("recall", "recall"), ("val_box_loss", "val box loss"), ("val_obj_loss", "val obj loss"), ("val_cls_loss", "val cls loss"),
           ("map50", "mAP50"), ("map50_95", "mAP50-95"))


def fitness(metrics: Mapping[str, float]) -> float:
    """Single number to pick the best epoch: mostly mAP50-95, a little mAP50 (the YOLOv5 weighting)."""
    return 0.1 * float(metrics["map50"]) + 0.9 * float(metrics["map"])


def read_results(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_results_row(path: str | Path, row: Mapping[str, Any]) -> Path:
    """Add (or replace) the row of row['epoch']; rows of later epochs are dropped (a resumed run rewrites them)."""
    epoch = int(row["epoch"])
    rows = [r for r in read_results(path) if int(r["epoch"]) < epoch]
    rows.append({name: row.get(name, "") for name in RESULT_COLUMNS})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return atomic_write_text(path, buffer.getvalue())


def plot_results(csv_path: str | Path, png_path: str | Path) -> Path | None:
    """Losses and metrics against epoch, one panel each; None when there is nothing to plot yet."""
    rows = read_results(csv_path)
    if not rows:
        return None
    epochs = [int(r["epoch"]) for r in rows]
    figure, axes = pyplot().subplots(2, 5, figsize=(16, 6), tight_layout=True)
    for axis, (name, title) in zip(axes.ravel(), _PANELS):
        values = [float(r[name]) if r.get(name) not in ("", None) else float("nan") for r in rows]
        axis.plot(epochs, values, marker=".", linewidth=1.5)
        axis.set_title(title)
        axis.set_xlabel("epoch")
    return save_figure(figure, png_path, dpi=100)
