"""A full training run: data, model, optimizer, epochs with evaluation, outputs in the run folder.

Outputs in settings.out: train.log, dataset_report.json, results.csv, results.png, last.pt (resumable),
best.pt (EMA weights of the best epoch by fitness = 0.1 mAP50 + 0.9 mAP50-95); a fresh run into a folder that
holds them removes them first (RUN_ARTEFACTS). Epochs are counted from 1 wherever a person reads them (log,
results.csv, summary); checkpoints keep the 0-based index.
The pieces (build_optimizer, WarmupCosineSchedule, train_one_epoch, evaluate, ModelEMA, checkpoints)
are importable on their own; this class only wires them together.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import torch

from autonn_nas.train.anchors import check_anchor_fit, label_wh_at_size
from autonn_nas.train.checkpoint import load_checkpoint, save_checkpoint
from autonn_nas.train.coco_eval import coco_ground_truth_from_dataset
from autonn_nas.train.epoch import train_one_epoch
from autonn_nas.train.evaluate import evaluate
from autonn_nas.train.hyp import merge_hyp
from autonn_nas.train.loss import DetectionLoss, scaled_loss_gains
from autonn_nas.train.results import fitness, plot_results, write_results_row
from autonn_nas.train.resume import ignored_on_resume
from autonn_nas.train.schedule import WarmupCosineSchedule
from autonn_nas.train.settings import DEFAULT_CFG, TrainSettings
from autonn_nas.train.state import TrainingState
from autonn_nas.train.weights import InitialWeights, load_fitting
from autonn_nas.utils.device import select_device
from autonn_nas.utils.files import atomic_write_json
from autonn_nas.utils.log import get_logger, log_to_file
from autonn_nas.utils.run_folder import clear_previous_run, reuse_note
from autonn_nas.utils.seed import seed_everything

log = get_logger("train")

# what a resumed run may change (and `epochs`, when given: a new total); everything else comes from the checkpoint
RESUME_OVERRIDABLE = ("device", "workers", "progress", "out", "resume")
# what a training run writes into its folder (summary.json: the CLI); removed from a reused folder by a fresh run
RUN_ARTEFACTS = ("train.log", "dataset_report.json", "results.csv", "results.png", "last.pt", "best.pt", "summary.json")


def report_to_dict(report: Any) -> Any:
    """A dataset report as JSON-ready data (dataclass, object with to_dict(), or already plain)."""
    if hasattr(report, "to_dict"):
        return report.to_dict()
    if dataclasses.is_dataclass(report):
        return dataclasses.asdict(report)
    return report


def build_datasets(settings: TrainSettings, hyp: dict[str, float]) -> tuple[Any, Any, Any]:
    """(dataset config, train YoloDataset, val YoloDataset) at settings.img_size."""
    from autonn_nas.data import YoloDataset, load_dataset_config

    data = load_dataset_config(settings.data)
    train = YoloDataset.from_config(data, "train", settings.img_size, augment=settings.augment, hyp=hyp, seed=settings.seed)
    val = YoloDataset.from_config(data, "val", settings.img_size, augment=False, hyp=hyp, seed=settings.seed)
    return data, train, val


def make_loader(dataset: Any, batch_size: int, shuffle: bool, workers: int, seed: int) -> Any:
    from autonn_nas.data import create_dataloader

    return create_dataloader(dataset, batch_size=batch_size, shuffle=shuffle, workers=workers, seed=seed)


def loader_generators(loader: Any) -> dict[str, torch.Generator]:
    """Random generators a loader draws its shuffle and worker seeds from (restored on resume)."""
    generators = {}
    if isinstance(getattr(loader, "generator", None), torch.Generator):
        generators["loader"] = loader.generator
    sampler_generator = getattr(getattr(loader, "sampler", None), "generator", None)
    if isinstance(sampler_generator, torch.Generator) and sampler_generator is not generators.get("loader"):
        generators["sampler"] = sampler_generator
    return generators


def set_data_epoch(dataset: Any, loader: Any, epoch: int) -> None:
    """Let data components that derive their randomness from the epoch know it (if they do)."""
    for component in (dataset, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if hasattr(component, "set_epoch"):
            component.set_epoch(epoch)


def _new_length_note(epochs: int, planned: int | None, done: int, out: Path) -> str:
    """A resume with another --epochs is honoured when it leaves epochs to train (and said: the returned note)."""
    if epochs <= done:
        raise ValueError(f"--epochs {epochs}: {out / 'last.pt'} has trained {done} epoch(s) already; give more than {done}, "
                         "or start a new run")
    return (f"resuming with {epochs} epochs in all instead of the {planned} planned: the remaining epochs' learning rates "
            f"follow the new length (the first {done} followed the old one)")


class Trainer:
    """`Trainer(settings).run()` trains and returns a summary dict; `--resume` continues from out/last.pt.

    `initial`: the weights to start from (settings.weights read by search/weights_file.read_weights): the
    tensors that fit are loaded, and without settings.cfg the model is the one they belong to. `on_epoch`
    receives each epoch's row (results.csv's values, plus epochs and seconds) once it is written, and on an
    evaluation epoch its checkpoint too."""

    def __init__(self, settings: TrainSettings, initial: InitialWeights | None = None,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None):
        self.requested = settings
        self.out = Path(settings.out)
        self.device = select_device(settings.device)
        checkpoint = None
        self.resume_notes: list[str] = []  # warnings about the resume, logged into the run's log when it starts
        if settings.resume:
            checkpoint = load_checkpoint(self.out / "last.pt")
            saved = TrainSettings.from_mapping(checkpoint["settings"])
            changeable = RESUME_OVERRIDABLE + (("epochs",) if settings.epochs is not None else ())
            ignored = ignored_on_resume(settings, saved, changeable)
            if ignored:
                self.resume_notes.append(f"--resume continues {self.out / 'last.pt'} as it was started; ignored: {', '.join(ignored)}")
            settings = dataclasses.replace(saved, **{k: getattr(settings, k) for k in changeable})
            if settings.epochs != saved.epochs:
                self.resume_notes.append(_new_length_note(settings.epochs, saved.epochs, int(checkpoint["epoch"]) + 1, self.out))
        elif settings.weights and initial is None:
            raise ValueError(f"weights {settings.weights}: pass them read, Trainer(settings, initial=read_weights(path)) "
                             "(autonn_nas.search.weights_file)")
        self.initial = None if checkpoint is not None else initial
        # the model of a resumed run is its checkpoint's YAML; one from weights with a YAML of their own keeps its sizes
        sizes_from_yaml = checkpoint is not None or (not settings.cfg and initial is not None and initial.model_yaml is not None)
        self.settings = settings.resolve_defaults(on_gpu=self.device.type == "cuda", sizes_from_yaml=sizes_from_yaml)
        self.checkpoint = checkpoint
        self.on_epoch = on_epoch

    # -- setup -------------------------------------------------------------------------------------
    def _setup(self) -> None:
        s = self.settings
        seed_everything(s.seed)
        self.hyp = merge_hyp(s.hyp)
        self.data, self.train_set, self.val_set = build_datasets(s, self.hyp)
        atomic_write_json(self.out / "dataset_report.json", {"train": report_to_dict(self.train_set.report), "val": report_to_dict(self.val_set.report)})
        from autonn_nas.models.yolo import build_model

        if self.checkpoint is not None:  # the run's own model, exactly (its YAML holds nc, width and depth)
            self.model = build_model(self.checkpoint["model_yaml"], nc=self.data.nc)
        else:
            cfg = s.cfg or (self.initial.model_yaml if self.initial is not None else None) or DEFAULT_CFG
            self.model = build_model(cfg, nc=self.data.nc, width=s.width, depth=s.depth)
        self.model = self.model.to(self.device)
        self.model.names = list(self.data.names)
        self.weights_loaded = load_fitting(self.model, self.initial, strict=s.strict) if self.initial is not None else None
        detect = self.model.detect
        check_anchor_fit(label_wh_at_size(self.train_set.labels, self.train_set.shapes, s.img_size), self.model, self.hyp["anchor_t"])

        self.train_loader = make_loader(self.train_set, s.batch_size, True, s.workers, s.seed)
        self.val_loader = make_loader(self.val_set, s.batch_size, False, s.workers, s.seed)
        self.val_truth = coco_ground_truth_from_dataset(self.val_set, self.data.names)
        self.loss_fn = DetectionLoss(self.model, scaled_loss_gains(self.hyp, detect.nc, detect.nl, s.img_size))
        self.state = TrainingState(self.model, self.hyp, s.batch_size, self.device, s.nominal_batch)
        self.optimizer, self.scaler, self.ema = self.state.optimizer, self.state.scaler, self.state.ema
        self.schedule = WarmupCosineSchedule(self.optimizer, self.hyp, s.epochs, len(self.train_loader), s.batch_size, s.nominal_batch)
        self.start_epoch, self.best_fitness, self.best_epoch = 0, -1.0, -1
        if self.checkpoint is not None:
            self._restore(self.checkpoint)

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["train_state_dict"])
        self.state.load_state_dict(checkpoint)
        self.state.restore_rng(checkpoint, loader_generators(self.train_loader))
        self.start_epoch = int(checkpoint["epoch"]) + 1
        self.best_fitness = float(checkpoint["best_fitness"])
        self.best_epoch = int(checkpoint.get("best_epoch", -1))
        if self.start_epoch < self.settings.epochs:
            log.info("resuming %s from epoch %d of %d", self.out / "last.pt", self.start_epoch + 1, self.settings.epochs)
        else:
            log.info("%s has trained all %d epochs; nothing more to train (give --epochs N for more)", self.out / "last.pt", self.settings.epochs)

    def _checkpoint(self, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "model_yaml": self.model.yaml,
            "nc": self.model.nc,
            "names": list(self.data.names),
            "state_dict": self.ema.ema.state_dict(),
            "epoch": epoch,
            "best_fitness": self.best_fitness,
            "best_epoch": self.best_epoch,
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            "settings": self.settings.to_dict(),
            "hyp": self.hyp,
            "train_state_dict": self.model.state_dict(),
            **self.state.state_dict(loader_generators(self.train_loader)),
        }

    # -- run ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        removed = [] if self.settings.resume else clear_previous_run(self.out, RUN_ARTEFACTS)
        with log_to_file(self.out / "train.log"):
            if removed:
                log.info("%s", reuse_note(self.out, removed, shown=len(removed)))
            for note in self.resume_notes:
                log.warning("%s", note)
            return self._run()

    def _run(self) -> dict[str, Any]:
        s = self.settings
        self._setup()  # first: a dataset error ends the run before anything else is said
        log.info("training on %s into %s: %s", self.device, self.out, {k: v for k, v in s.to_dict().items() if k != "hyp"})
        metrics: dict[str, Any] = dict(self.checkpoint.get("metrics", {})) if self.checkpoint else {}
        started = time.perf_counter()
        for epoch in range(self.start_epoch, s.epochs):
            set_data_epoch(self.train_set, self.train_loader, epoch)
            result = train_one_epoch(
                self.model, self.train_loader, self.loss_fn, self.optimizer, self.schedule, epoch, self.device,
                scaler=self.scaler, ema=self.ema, progress=s.progress, description=f"epoch {epoch + 1}/{s.epochs}",
            )
            row: dict[str, Any] = {"epoch": epoch + 1, "box_loss": result.box, "obj_loss": result.obj, "cls_loss": result.cls,
                                   **{f"lr{i}": lr for i, lr in enumerate(result.lr)}}
            line = f"epoch {epoch + 1}/{s.epochs}: loss box {result.box:.4f} obj {result.obj:.4f} cls {result.cls:.4f}"
            improved = False
            milestone = (epoch + 1) % s.eval_interval == 0 or epoch + 1 == s.epochs
            if milestone:
                metrics = evaluate(self.ema.ema, self.val_loader, self.device, ground_truth=self.val_truth, loss_fn=self.loss_fn,
                                   description=f"val {epoch + 1}/{s.epochs}" if s.progress else None)
                score = fitness(metrics)
                improved = score > self.best_fitness
                if improved:
                    self.best_fitness, self.best_epoch = score, epoch
                row.update(precision=metrics["precision"], recall=metrics["recall"], map50=metrics["map50"], map50_95=metrics["map"],
                           **{f"val_{name}_loss": value for name, value in (metrics.get("val_loss") or {}).items()})
                line += f" | P {metrics['precision']:.3f} R {metrics['recall']:.3f} mAP50 {metrics['map50']:.4f} mAP50-95 {metrics['map']:.4f}"
            log.info("%s | %.1f s, %.0f%% waiting on data", line, result.data_seconds + result.compute_seconds, 100 * result.data_share)
            write_results_row(self.out / "results.csv", row)
            if milestone:  # checkpoints and plots cost seconds: only with an evaluation
                checkpoint = self._checkpoint(epoch, metrics)
                save_checkpoint(self.out / "last.pt", checkpoint)
                if improved:
                    save_checkpoint(self.out / "best.pt", checkpoint, for_resume=False)
                plot_results(self.out / "results.csv", self.out / "results.png")
            if self.on_epoch is not None:
                self.on_epoch({**row, "epochs": s.epochs, "loss": result.total,
                               "seconds": result.data_seconds + result.compute_seconds})
        summary = {
            "epochs": s.epochs,
            "best_epoch": self.best_epoch + 1 if self.best_epoch >= 0 else None,  # from 1, as the log and results.csv count
            "best_fitness": self.best_fitness,
            "final": {k: metrics.get(k) for k in ("precision", "recall", "map50", "map")},
            "seconds": time.perf_counter() - started,
            "out": str(self.out),
            "last": str(self.out / "last.pt"),
            "best": str(self.out / "best.pt"),
            "train_images": len(self.train_set),
        }
        if self.weights_loaded is not None:
            summary["initial_weights"] = {"source": self.initial.source, "kind": self.initial.kind, "loaded": self.weights_loaded.loaded,
                                          "total": self.weights_loaded.total, "skipped": list(self.weights_loaded.skipped)}
        log.info("done: best epoch %d (fitness %.4f); weights in %s", self.best_epoch + 1, self.best_fitness, self.out)
        return summary


def run_training(settings: TrainSettings) -> dict[str, Any]:
    return Trainer(settings).run()
