"""The retrain: after the derivation, the shipped network is fine-tuned from its inherited weights.

It is `autonn-nas train --weights bestmodel.pt`: train/trainer.py's Trainer (the same recipe, loop, moving
average, checkpoints and resume), on the whole train split (the architecture is decided, so the held-out
images are training images again), evaluated on val after every epoch. bestmodel.pt then holds the last
epoch's moving average (not the epoch best on val: val is what the report reads), and the report and the
result's metrics give val mAP before (the inherited weights) and after.

Files in <out>/retrain/: inherited.json, the search's result before the retrain, written before the first
epoch, so that a stop during the retrain resumes the retrain instead of deriving again; and the Trainer's
run folder (train.log, results.csv/png, last.pt every epoch, best.pt, dataset_report.json).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from autonn_nas.search import events
from autonn_nas.search.events import EventFn
from autonn_nas.search.report import write_reports
from autonn_nas.search.result import SearchResult, result_from_json, result_to_json
from autonn_nas.search.settings import SearchSettings
from autonn_nas.search.weights_file import read_weights
from autonn_nas.train.checkpoint import load_checkpoint
from autonn_nas.train.results import read_results
from autonn_nas.train.settings import TrainSettings
from autonn_nas.train.trainer import Trainer
from autonn_nas.utils.files import atomic_torch_save, atomic_write_json
from autonn_nas.utils.log import get_logger

log = get_logger("search.retrain")

RETRAIN_DIR = "retrain"
START_FILE = "inherited.json"
VAL_KEYS = ("precision", "recall", "map50", "map")


def retrain_dir(out: Path) -> Path:
    return Path(out) / RETRAIN_DIR


def clear(out: Path) -> None:
    """A fresh search: an older run's retrain in the same folder must never be resumed into this one."""
    shutil.rmtree(retrain_dir(out), ignore_errors=True)


def pending(out: Path) -> dict[str, Any] | None:
    """What a retrain that began in `out` recorded before its first epoch (None when none began)."""
    start = retrain_dir(out) / START_FILE
    return json.loads(start.read_text()) if start.is_file() else None


def _train_settings(s: SearchSettings, folder: Path, device: torch.device, batch_size: int, resume: bool) -> TrainSettings:
    return TrainSettings(data=s.data, weights=str(Path(s.out) / "bestmodel.pt"), out=str(folder), epochs=s.retrain_epochs,
                         img_size=s.img_size, batch_size=batch_size,
                         device=str(device), seed=s.seed, workers=s.workers, resume=resume, hyp=dict(s.hyp or {}),
                         progress=s.progress, eval_interval=1)


def _epoch_event(row: dict[str, Any], search_epochs: int) -> dict[str, Any]:
    """A retrain epoch as an epoch_summary row: the retrain's own epoch x/N, and its place in the whole run
    (run_epoch/run_epochs: after the supernet's epochs), which TANGO's charts count. Events count epochs from 0,
    as the search's do; the Trainer's rows count from 1, as its results.csv and log."""
    epoch = row["epoch"] - 1
    return {"epoch": epoch, "epochs": row["epochs"], "phase": events.RETRAINING,
            "run_epoch": search_epochs + epoch, "run_epochs": search_epochs + row["epochs"],
            "box_loss": row["box_loss"], "obj_loss": row["obj_loss"], "cls_loss": row["cls_loss"], "loss": row["loss"],
            "precision": row.get("precision"), "recall": row.get("recall"), "map50": row.get("map50"),
            "map": row.get("map50_95"), "lr": [v for k, v in row.items() if k.startswith("lr")], "seconds": row["seconds"]}


def run_retrain(result: SearchResult | None, s: SearchSettings, device: torch.device, batch_size: int,
                on_event: EventFn | None = None) -> SearchResult:
    """Fine-tune the shipped model of `result` for s.retrain_epochs, with `batch_size` images a batch, and rewrite
    bestmodel.pt and the reports; returns the result with the fine-tuned model's metrics. `result` None: go on
    with the retrain that began in s.out (and stopped), from its recorded result and batch size."""
    out = Path(s.out)
    folder = retrain_dir(out)
    if result is not None:
        clear(out)  # a derivation that ran again (stopped before the retrain began) starts the retrain anew
        atomic_write_json(folder / START_FILE, {"result": result_to_json(result), "batch_size": batch_size})
    else:  # the search's result before the retrain: the figures "before" always come from here
        started = pending(out)
        if started is None:
            raise ValueError(f"nothing to resume in {folder}: no retrain began there")
        result, batch_size = result_from_json(started["result"]), int(started["batch_size"])
    resume = (folder / "last.pt").is_file()
    settings = _train_settings(s, folder, device, batch_size, resume)
    log.info("retrain: %s the derived model %s for %d epochs from %s", "resuming" if resume else "fine-tuning", result.arch,
             s.retrain_epochs, folder / "last.pt" if resume else f"its inherited weights ({result.weights})")
    done = len(read_results(folder / "results.csv")) if resume else 0  # a row per finished epoch
    events.emit(on_event, events.RETRAIN_START, {"epoch": done, "epochs": s.retrain_epochs, "resumed": resume,
                                                 "inherited": {k: result.metrics.get(k) for k in ("map50", "map")}})
    trainer = Trainer(settings, initial=None if resume else read_weights(result.weights),
                      on_epoch=lambda row: events.emit(on_event, events.EPOCH_SUMMARY, _epoch_event(row, s.epochs)))
    summary = trainer.run()
    return _write_outputs(result, folder, s.retrain_epochs, summary)


def _write_outputs(inherited: SearchResult, folder: Path, epochs: int, summary: dict[str, Any]) -> SearchResult:
    trained = load_checkpoint(folder / "last.pt")
    after = {k: trained["metrics"].get(k) for k in VAL_KEYS}
    metrics = {**inherited.metrics, "map50": after["map50"], "map": after["map"], "retrain_epochs": epochs,
               "inherited_map50": inherited.metrics["map50"], "inherited_map": inherited.metrics["map"]}
    weights = load_checkpoint(inherited.weights)
    if weights["state_dict"].keys() != trained["state_dict"].keys():  # the same YAML built both: a bug if not
        raise RuntimeError(f"{folder / 'last.pt'} does not hold the weights of {inherited.model_yaml}")
    atomic_torch_save(inherited.weights, {
        **weights, "state_dict": trained["state_dict"], "metrics": metrics,
        "note": f"fine-tuned for {epochs} epochs (the training recipe) from the supernet's inherited weights; "
                "the last epoch's moving average"})
    report = json.loads(inherited.report.read_text())
    report["metrics"] = metrics
    report["retrain"] = {"epochs": epochs, "inherited": {k: inherited.metrics[k] for k in ("map50", "map")}, "val": after,
                         "train_images": summary.get("train_images"), "folder": str(folder),
                         "results": str(folder / "results.csv"), "seconds": summary["seconds"]}
    report.setdefault("seconds", {})["retrain"] = summary["seconds"]
    write_reports(inherited.out_dir, report)
    log.info("retrain: val mAP50 %.4f mAP50-95 %.4f after %d epochs (inherited weights: %.4f / %.4f)", after["map50"],
             after["map"], epochs, inherited.metrics["map50"], inherited.metrics["map"])
    return SearchResult(inherited.out_dir, inherited.arch, inherited.model_yaml, inherited.weights, inherited.report, metrics)
