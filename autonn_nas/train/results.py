"""results.csv (one row per epoch) and results.png, in the layout YOLO users know."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping

from autonn_nas.utils.files import atomic_write_bytes, atomic_write_text

RESULT_COLUMNS = ("epoch", "box_loss", "obj_loss", "cls_loss", "precision", "recall", "map50", "map50_95", "lr0", "lr1", "lr2")


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
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in containers
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) for r in rows]
    panels = ("box_loss", "obj_loss", "cls_loss", "precision", "recall", "map50", "map50_95", "lr1")
    figure, axes = plt.subplots(2, 4, figsize=(14, 6), tight_layout=True)
    for axis, name in zip(axes.ravel(), panels):
        values = [float(r[name]) if r[name] not in ("", None) else float("nan") for r in rows]
        axis.plot(epochs, values, marker=".", linewidth=1.5)
        axis.set_title(name)
        axis.set_xlabel("epoch")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return atomic_write_bytes(png_path, buffer.getvalue())
