"""The search's epoch rows under the field names of TANGO's project manager, whose epoch-summary table
(and charts) read exactly these keys. Values a supernet epoch does not measure (the validation figures: a
search evaluates once, at its end; its retrain's epochs have them) are None, never invented."""
from __future__ import annotations

from typing import Any, Mapping

TANGO_EPOCH_FIELDS = ("current_epoch", "total_epoch", "train_loss_box", "train_loss_obj", "train_loss_cls",
                      "train_loss_total", "val_acc_P", "val_acc_R", "val_acc_map50", "val_acc_map", "epoch_time",
                      "total_time")


def tango_epoch_summary(row: Mapping[str, Any], total_time: float | None) -> dict[str, Any]:
    """TANGO's fields of one epoch row of the runner (`epoch` counts from 0; TANGO's current_epoch from 1). The
    epochs count over the whole run (run_epoch / run_epochs: the supernet's, then the retrain's), so the PM's
    chart goes on through the retrain instead of starting again."""
    epoch = row.get("run_epoch", row.get("epoch"))
    return {
        "current_epoch": epoch + 1 if isinstance(epoch, int) else None,
        "total_epoch": row.get("run_epochs", row.get("epochs")),
        "train_loss_box": row.get("box_loss"),
        "train_loss_obj": row.get("obj_loss"),
        "train_loss_cls": row.get("cls_loss"),
        "train_loss_total": row.get("loss"),
        "val_acc_P": row.get("precision"),
        "val_acc_R": row.get("recall"),
        "val_acc_map50": row.get("map50"),
        "val_acc_map": row.get("map"),
        "epoch_time": row.get("seconds"),
        "total_time": round(total_time, 3) if total_time is not None else None,
    }
