"""run_search: the whole neck search, from settings to the derived model and its report.

Phases: data (train split -> training part + held-out part; val only reports), supernet + cost model +
budget, supernet training (weight steps / architecture steps, a checkpoint every epoch), derivation
(search/final.py: the architecture within the budget, BN recalibration, val mAP and cost of the
derived and the base architecture, bestmodel.pt), reports, then the retrain (search/retrain.py: the shipped
network fine-tuned from its inherited weights; bestmodel.pt and the reports then describe the fine-tuned model).

Outputs in settings.out: search.log, last.pt (resumable), history.json, files_read.json, arch.json,
neck_nas_model.yaml, bestmodel.pt, report.json, report.md, alpha.png (proxyless, darts), pareto.png
(cost against held-out loss, search/pareto.py), cost_table.json (RUN_ARTEFACTS), retrain/ (the retrain's run
folder, resumable); a fresh search into a folder that holds them removes them first.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch

from autonn_nas.data.loader import search_loader
from autonn_nas.models.choice import clear_mixture
from autonn_nas.models.yolo import Model, build_model
from autonn_nas.search import distributed, events, final, retrain
from autonn_nas.search.batch_size import fit_batch_size, halved_batch_size, is_out_of_memory
from autonn_nas.search.cost import build_cost_table, most_probable_within_budget, resolve_budget
from autonn_nas.search.events import EventFn
from autonn_nas.search.file_log import FilesRead, RecordingLoader
from autonn_nas.search.loop import ArchStepSchedule, arch_learning_rate, arch_step_interval, train_supernet_epoch
from autonn_nas.search.objective import DetectionObjective, DistillationObjective, load_teacher
from autonn_nas.search.result import SearchResult, portable_result, result_from_portable
from autonn_nas.search.settings import SearchSettings
from autonn_nas.search.splits import build_search_data
from autonn_nas.search.strategies import strategy_class
from autonn_nas.search.warm_start import warm_start
from autonn_nas.train.anchors import check_anchor_fit, label_wh_at_size
from autonn_nas.train.checkpoint import load_checkpoint, save_checkpoint
from autonn_nas.train.ema import ModelEMA
from autonn_nas.train.hyp import merge_hyp
from autonn_nas.train.loss import DetectionLoss, scaled_loss_gains
from autonn_nas.train.optim import NOMINAL_BATCH, reserve_optimizer_state
from autonn_nas.train.resume import ignored_on_resume
from autonn_nas.train.schedule import WarmupCosineSchedule
from autonn_nas.train.state import TrainingState
from autonn_nas.train.trainer import loader_generators, set_data_epoch
from autonn_nas.utils.device import latency_device, select_device
from autonn_nas.utils.files import atomic_write_json
from autonn_nas.utils.log import get_logger, log_to_file, quieter
from autonn_nas.utils.run_folder import clear_previous_run, reuse_note
from autonn_nas.utils.seed import seed_everything

log = get_logger("search")

# what a resumed run may change; everything else comes from the checkpoint so the run stays the same
PROBE_HEADROOM = 0.10  # share of the memory it may use that the batch-size probe leaves free
RESUME_OVERRIDABLE = ("device", "workers", "out", "resume", "progress", "nproc")
# what a search writes into its folder (strategies' files included); a fresh search removes them from a reused
# folder first, so two runs never mix (the stage's own files in its run folder are not among them)
RUN_ARTEFACTS = ("search.log", "last.pt", "history.json", "files_read.json", "arch.json", "neck_nas_model.yaml", "bestmodel.pt",
                 "report.json", "report.md", "alpha.png", "pareto.png", "cost_table.json", "spos_evaluated.json")


class _WorldScaledLoss:
    """The detection loss times the number of ranks: DDP averages gradients over ranks while the loss
    is a sum over the (local) batch, so this keeps the single-process gradient of the global batch."""

    def __init__(self, loss_fn: Any, world_size: int):
        self.loss_fn, self.world_size = loss_fn, world_size

    takes_images = True

    def __call__(self, predictions: Any, targets: torch.Tensor, images: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        loss, items = self.loss_fn(predictions, targets, images)
        return loss * self.world_size, items


class SearchRun:
    def __init__(self, settings: SearchSettings, on_event: EventFn | None = None):
        settings.validate()
        self.dist, self.device = distributed.init_from_env(select_device(settings.device))
        self.out = Path(settings.out)
        self.checkpoint = None
        self.resume_notes: list[str] = []
        if settings.resume:
            last = self.out / "last.pt"
            if not last.is_file():
                raise ValueError(f"nothing to resume: {last} does not exist (start the search without resume)")
            self.checkpoint = load_checkpoint(last)
            saved = SearchSettings.from_mapping(self.checkpoint["settings"], source=str(last))
            ignored = ignored_on_resume(settings, saved, RESUME_OVERRIDABLE)
            if ignored:  # said in the run's log (run())
                self.resume_notes.append(f"--resume continues {last} as it was started; ignored: {', '.join(ignored)}")
            settings = dataclasses.replace(saved, **{k: getattr(settings, k) for k in RESUME_OVERRIDABLE})
        self.settings = settings.resolve_defaults(on_gpu=self.device.type == "cuda", processes=self.dist.world_size)
        self.settings.validate()
        if not self.settings.data:
            raise ValueError("no dataset given: set data to a YOLO dataset.yaml")
        self.on_event = on_event
        self.files = FilesRead()
        self.history: list[dict[str, Any]] = []
        self.batch_changes: list[dict[str, Any]] = []
        self.seconds = {"training": 0.0}
        self.probe_peak_bytes: int | None = None  # the batch-size probe's peak device memory (CUDA)

    @classmethod
    def reopen(cls, out: str | Path, device: str = "cpu", workers: int = 0) -> "SearchRun":
        """A search rebuilt from its out folder's last.pt and set up, not run: its supernet weights, data split,
        cost table and strategy state, e.g. to score more architectures with its evaluator() afterwards."""
        run = cls(SearchSettings(out=str(out), resume=True, device=device, workers=workers, progress=False))
        run._setup()
        run._use_ema_weights()  # what the search derived and scored with
        return run

    # -- setup ---------------------------------------------------------------------------------------
    def _setup(self) -> None:
        s = self.settings
        seed_everything(s.seed)
        self.hyp = merge_hyp(s.hyp)
        self.data = build_search_data(s, self.hyp)
        nc = self.data.config.nc
        seed_everything(s.seed)  # the initial weights must not depend on what reading the data consumed (e.g. a label cache miss)
        self.model: Model = build_model(s.cfg, nc=nc, width=s.width, depth=s.depth).to(self.device)
        self.model.names = list(self.data.config.names)
        check_anchor_fit(label_wh_at_size(self.data.train_part.labels, self.data.train_part.shapes, s.img_size), self.model, self.hyp["anchor_t"])
        if s.weights and self.checkpoint is None:
            warm_start(self.model, s.weights)
        # rank 0's cost table everywhere: measured latencies differ a little from rank to rank
        cache = Path(s.latency_cache) if s.latency_cache else None  # None: the default under ~/.cache
        measured_on = latency_device(s.latency_device, self.device) if s.cost_measure == "latency" and not s.latency_table else None
        self.cost = distributed.broadcast_object(build_cost_table(self.model, s.img_size, s.cost_measure, self.device, s.latency_table,
                                                                  cache, measured_on))
        self.budget = resolve_budget(self.cost, s.budget, s.lightweight_level)
        if self.budget.note() and self.dist.is_main and self.checkpoint is None:
            log.warning("%s", self.budget.note())
        if self.dist.is_main:
            atomic_write_json(self.out / "cost_table.json", self.cost.to_dict())
        detect = self.model.detect
        self.loss_fn = DetectionLoss(self.model, scaled_loss_gains(self.hyp, detect.nc, detect.nl, s.img_size))
        self.objective = (DistillationObjective(load_teacher(s.teacher, self.device, nc)) if s.teacher
                          else DetectionObjective(self.loss_fn))
        if s.teacher and self.checkpoint is None:
            log.info("objective: match the head outputs of the teacher %s (distillation)", s.teacher)
        self.strategy = strategy_class(s.strategy)(
            self.model, self.objective, self.cost, self.budget, seed=s.seed, autocast=self.device.type == "cuda"
        )
        if self.dist.is_main and self.checkpoint is None:
            excluded = {label: [n for n in self.strategy.names if n not in names] for label, names in self.strategy.allowed.items()}
            if any(excluded.values()):
                log.info("the budget excludes (never sampled nor trained): %s",
                         "; ".join(f"{label}: {', '.join(names)}" for label, names in excluded.items() if names))
        if s.arch_warmup == "prior_art" and self.strategy.alpha is not None and self.checkpoint is None:
            # the prior art (NNI's ProxylessNAS) started its logits at 1e-3 * N(0, 1): its pick was their argmax
            with torch.no_grad():
                noise = torch.randn(self.strategy.alpha.shape, generator=torch.Generator().manual_seed(s.seed)) * 1e-3
                self.strategy.alpha.copy_(noise.to(self.strategy.alpha.device))
        ema = ModelEMA(self.model)  # before the SyncBatchNorm conversion: the average keeps plain BN layers
        self.batch_size = int(self.checkpoint["batch_size"]) if self.checkpoint else s.batch_size
        if self.device.type == "cuda" and self.checkpoint is None and not self.dist.enabled:
            self.batch_size = fit_batch_size(self._memory_probe, self.batch_size)
        self.train_model, self.train_loss = self.model, self.objective
        if self.dist.enabled:
            self.model = distributed.convert_sync_batchnorm(self.model, self.device)
            self.train_model = distributed.wrap_ddp(self.model, self.device)
            self.train_loss = _WorldScaledLoss(self.objective, self.dist.world_size)
            self.strategy.reduce_arch_grad = distributed.all_reduce_mean
        self.state = TrainingState(self.model, self.hyp, self.batch_size, self.device, ema=ema)
        self.optimizer, self.scaler, self.ema = self.state.optimizer, self.state.scaler, self.state.ema
        self._make_loaders()
        self.start_epoch = 0
        if self.checkpoint is not None:
            self._restore(self.checkpoint)

    def _make_loaders(self) -> None:
        s, d = self.settings, self.data
        self.train_loader = RecordingLoader(search_loader(d.train_part, self.batch_size, True, s.workers, s.seed, self.dist), self.files, "weight_training")
        self.holdout_loader = RecordingLoader(search_loader(d.holdout, self.batch_size, True, s.workers, s.seed, self.dist), self.files, "architecture")
        self.schedule = WarmupCosineSchedule(self.optimizer, self.hyp, s.epochs, len(self.train_loader), self.batch_size, NOMINAL_BATCH)
        total = s.epochs * len(self.train_loader)
        every = arch_step_interval(len(self.train_loader), len(self.holdout_loader))
        if s.arch_warmup == "prior_art":
            self.arch_schedule = ArchStepSchedule.prior_art(total, len(self.train_loader), every=every)
            log.warning("arch_warmup prior_art: architecture steps start at iteration %d of %d (%d steps in this run); "
                        "this reproduces the prior art's flaw for comparison only", self.arch_schedule.start, total,
                        self.arch_schedule.steps_in(0, total))
        else:
            self.arch_schedule = ArchStepSchedule(total, every=every)
        self.strategy.set_arch_lr(arch_learning_rate(self.arch_schedule.steps_in(0, total)))

    def _generators(self) -> dict[str, torch.Generator]:
        gens = {f"train_{k}": g for k, g in loader_generators(self.train_loader).items()}
        gens.update({f"holdout_{k}": g for k, g in loader_generators(self.holdout_loader).items()})
        return gens

    def _memory_probe(self, batch_size: int) -> None:
        """One training step of the most memory-hungry configuration at this batch size (CUDA only), with the
        optimizer's state the run will hold (momentum for every parameter, once every candidate has trained)
        already taken: the probe runs before the optimizer exists. The BN statistics it would move with its
        random images are put back; no optimizer step is taken. A step that fits but leaves less than
        PROBE_HEADROOM of the device free counts as out of memory: real batches carry more targets."""
        s = self.settings
        buffers = {name: value.clone() for name, value in self.model.named_buffers()}
        self.model.train()
        cuda = self.device.type == "cuda"
        if cuda:  # what this process may use: what it holds now plus what is free (other processes hold the rest)
            torch.cuda.empty_cache()
            capacity = torch.cuda.memory_allocated(self.device) + torch.cuda.mem_get_info(self.device)[0]
            torch.cuda.reset_peak_memory_stats(self.device)
        optimizer_state = reserve_optimizer_state(self.model)
        images = torch.rand(batch_size, 3, s.img_size, s.img_size, device=self.device)
        targets = torch.tensor([[i, 0, 0.5, 0.5, 0.2, 0.2] for i in range(batch_size)], device=self.device)
        try:
            self.strategy.prepare_memory_probe()
            with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=cuda):
                loss, _ = self.objective(self.model(images), targets, images)
            loss.backward()
            if cuda:
                self.probe_peak_bytes = torch.cuda.max_memory_allocated(self.device)
                if self.probe_peak_bytes > (1.0 - PROBE_HEADROOM) * capacity:
                    raise torch.OutOfMemoryError(
                        f"the probe step at batch {batch_size} peaked at {self.probe_peak_bytes / 2**30:.1f} GiB of the "
                        f"{capacity / 2**30:.1f} GiB this process can use, leaving under {PROBE_HEADROOM:.0%} free")
                log.info("memory probe: batch %d peaks at %.2f GiB of %.1f GiB", batch_size, self.probe_peak_bytes / 2**30, capacity / 2**30)
        finally:
            with torch.no_grad():
                for name, value in self.model.named_buffers():
                    value.copy_(buffers[name])
            del buffers, optimizer_state
            self.model.zero_grad(set_to_none=True)
            clear_mixture(self.model)
            if cuda:
                torch.cuda.empty_cache()

    def _use_ema_weights(self) -> None:
        """After training, the supernet's moving average replaces its last weights for all that follows (the
        derivation, spos's scoring, bestmodel.pt), as `autonn-nas train` ships its EMA: the average depends less
        on which paths the last few steps happened to sample. last.pt keeps both, so training can go on."""
        self.model.load_state_dict(self.ema.ema.state_dict())

    def trained(self) -> final.TrainedSearch:
        """The plain values the derivation and the outputs read (search/final.py)."""
        return final.TrainedSearch(
            settings=self.settings, out=self.out, dist=self.dist, device=self.device, model=self.model, objective=self.objective,
            strategy=self.strategy, cost=self.cost, budget=self.budget, data=self.data, files=self.files,
            batch_size=self.batch_size, arch_schedule=self.arch_schedule, history=self.history,
            batch_changes=self.batch_changes, seconds=self.seconds, on_event=self.on_event)

    def evaluator(self) -> final.Evaluator:
        """Recalibrate-then-evaluate on this run's supernet, data and file log (after _setup)."""
        return self.trained().evaluator()

    # -- checkpoints ---------------------------------------------------------------------------------
    def _restore(self, checkpoint: dict[str, Any]) -> None:
        self.model.load_state_dict(checkpoint["state_dict"])
        self.state.load_state_dict(checkpoint)
        self.strategy.load_state_dict(checkpoint["strategy"])
        self.history = list(checkpoint["history"])
        self.batch_changes = list(checkpoint.get("batch_changes", []))
        self.files = FilesRead(checkpoint.get("files_read"))
        self.seconds = dict(checkpoint.get("seconds", self.seconds))
        self._make_loaders()  # record into the restored file log
        self.state.restore_rng(checkpoint, self._generators())
        self.start_epoch = int(checkpoint["epoch"]) + 1
        log.info("resuming %s from epoch %d of %d", self.out / "last.pt", self.start_epoch + 1, self.settings.epochs)

    def _save_checkpoint(self, epoch: int) -> None:
        if self.dist.enabled:  # every rank read its own slice; rank 0 records them all
            for state in distributed.gather_objects(self.files.state_dict()):
                for phase, paths in state.items():
                    self.files.add(phase, paths)
        if not self.dist.is_main:
            return
        save_checkpoint(self.out / "last.pt", {
            "model_yaml": self.model.yaml,
            "nc": self.model.nc,
            "names": list(self.model.names),
            "state_dict": self.model.state_dict(),
            "epoch": epoch,
            "settings": self.settings.to_dict(),
            "batch_size": self.batch_size,
            "strategy": self.strategy.state_dict(),
            **self.state.state_dict(self._generators()),
            "history": self.history,
            "batch_changes": self.batch_changes,
            "files_read": self.files.state_dict(),
            "seconds": self.seconds,
        })

    # -- training ------------------------------------------------------------------------------------
    def _current_choice(self) -> dict[str, str] | None:
        probabilities = self.strategy.probabilities_dict()
        if probabilities is None:
            return None
        return most_probable_within_budget(probabilities, self.cost, self.budget).to_dict()

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        s = self.settings
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        while True:
            set_data_epoch(self.data.train_part, self.train_loader, epoch)
            try:
                result = train_supernet_epoch(
                    self.strategy, self.train_loader, self.holdout_loader, self.train_loss, self.optimizer, self.schedule,
                    self.arch_schedule, epoch, self.device, scaler=self.scaler, progress=s.progress and self.dist.is_main,
                    description=f"{s.strategy} {epoch + 1}/{s.epochs}", model=self.train_model, ema=self.ema,
                )
                break
            except torch.OutOfMemoryError as error:  # torch.cuda.OutOfMemoryError is this class
                if not is_out_of_memory(error) or self.dist.enabled:  # one rank alone cannot change the global batch
                    raise
                self.model.zero_grad(set_to_none=True)
                clear_mixture(self.model)
                old = self.batch_size
                self.batch_size = halved_batch_size(old, error)
                self.batch_changes.append({"epoch": epoch, "from": old, "to": self.batch_size, "reason": str(error)[:200]})
                self._make_loaders()  # the epoch restarts with the smaller batch; updates made so far are kept
        clear_mixture(self.model)
        distributed.broadcast_buffers(self.model)
        w = result.weights
        return {
            "epoch": epoch,
            "epochs": s.epochs,
            "phase": events.SUPERNET_TRAINING,
            "run_epoch": epoch, "run_epochs": s.epochs + s.retrain_epochs,  # its place among all the run's epochs
            "strategy": s.strategy,
            "box_loss": w.box,
            "obj_loss": w.obj,
            "cls_loss": w.cls,
            "loss": w.total,
            "arch_steps": result.arch_steps,
            "arch_task_loss": result.arch_task_loss,
            "cost_term": result.cost_term,
            "lr": w.lr,
            "batch_size": self.batch_size,
            "seconds": w.data_seconds + w.compute_seconds,
            "alpha": self.strategy.probabilities_dict(),
            "current_choice": self._current_choice(),
            "peak_memory_gib": torch.cuda.max_memory_allocated(self.device) / 2**30 if self.device.type == "cuda" else None,
        }

    def _log_epoch(self, row: dict[str, Any]) -> None:
        line = (f"epoch {row['epoch'] + 1}/{row['epochs']} [{row['strategy']}]: "
                f"loss box {row['box_loss']:.4f} obj {row['obj_loss']:.4f} cls {row['cls_loss']:.4f}")
        if row["arch_steps"]:
            line += f" | {row['arch_steps']} arch steps, held-out loss {row['arch_task_loss']:.4f}, cost term {row['cost_term']:.4f}"
        if row["current_choice"]:
            line += " | within budget now: " + " ".join(f"{k}={v}" for k, v in row["current_choice"].items())
        log.info("%s | %.1f s", line, row["seconds"])

    # -- run -----------------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        if not self.dist.is_main:  # one voice: rank 0 logs, writes and reports
            with quieter(logging.WARNING):
                return self._run()
        self.out.mkdir(parents=True, exist_ok=True)
        removed = [] if self.settings.resume else clear_previous_run(self.out, RUN_ARTEFACTS)
        with log_to_file(self.out / "search.log"):
            if removed:
                log.info("%s", reuse_note(self.out, removed, shown=len(removed)))
            for note in self.resume_notes:
                log.warning("%s", note)
            return self._run()

    def _run(self) -> SearchResult:
        s = self.settings
        started = time.perf_counter()
        if self.checkpoint is None:
            if self.dist.is_main:
                retrain.clear(self.out)
        elif distributed.broadcast_object(retrain.pending(self.out) is not None if self.dist.is_main else None):
            # stopped during the retrain: the search and its derivation are done, their result is in the retrain's folder
            log.info("resuming the retrain in %s", retrain.retrain_dir(self.out))
            return self._hand_off(None)
        self._setup()  # first: a dataset error ends the run before anything else is said
        log.info("search on %s into %s: %s", self.device, self.out, s.to_dict())
        split = {"train_part": len(self.data.train_part), "holdout": len(self.data.holdout),
                 "confirmation": len(self.data.confirm) if self.data.confirm is not None else 0, "val": len(self.data.val)}
        log.info("cost: %s (%s); budget %.6g %s = %.3f x base; images %s", s.cost_measure, self.cost.source, self.budget.limit,
                 self.cost.unit, self.budget.limit / self.budget.base_cost, split)
        events.emit(self.on_event if self.dist.is_main else None, events.NAS_START, {
            "strategy": s.strategy, "epochs": s.epochs, "img_size": s.img_size, "batch_size": self.batch_size,
            "device": str(self.device), "start_epoch": self.start_epoch, "images": split,
            "budget": self.budget.to_dict(), "cost_measure": s.cost_measure, "labels": self.strategy.labels,
        })
        if not self.history:
            self.history.append({"epoch": -1, "phase": "start", "alpha": self.strategy.probabilities_dict()})
        for epoch in range(self.start_epoch, s.epochs):
            epoch_started = time.perf_counter()
            row = self._train_epoch(epoch)
            self.seconds["training"] += time.perf_counter() - epoch_started
            self.history.append(row)
            self._log_epoch(row)
            self._save_checkpoint(epoch)
            if self.dist.is_main:
                atomic_write_json(self.out / "history.json", self.history)
                events.emit(self.on_event, events.EPOCH_SUMMARY, row)
        self.seconds["total_before_final"] = time.perf_counter() - started
        if not self.dist.enabled:
            self._use_ema_weights()
            result, self.seconds = final.finish(self.trained(), started)
            return self._hand_off(result)
        # plain BN again: each rank runs sub-networks on its own (spos: its share of the candidates), without DDP;
        # the evaluation of the chosen architecture and the outputs are rank 0's while the others wait
        self.model = distributed.revert_sync_batchnorm(self.model)
        self._use_ema_weights()  # the same on every rank: every rank made the same updates
        result, self.seconds = final.finish(self.trained(), started)
        distributed.barrier()
        return self._hand_off(result_from_portable(distributed.broadcast_object(None if result is None else portable_result(result))))

    def _hand_off(self, result: SearchResult | None) -> SearchResult | None:
        """The retrain (rank 0 alone, on its device: the other ranks are done) and the nas_end event. `result` is
        the derivation's, or None when a stopped retrain is resumed (its folder holds the result it began from)."""
        s = self.settings
        if not self.dist.is_main:
            return result
        if s.retrain_epochs:
            batch = self.batch_size // self.dist.world_size if result is not None else 0  # a resumed retrain keeps its own
            result = retrain.run_retrain(result, s, self.device, batch, self.on_event)
        events.emit(self.on_event, events.NAS_END, {"architecture": result.arch.to_dict(), "metrics": result.metrics,
                                                    "model_yaml": str(result.model_yaml), "weights": str(result.weights),
                                                    "report": str(result.report)})
        return result


def run_search(settings: SearchSettings, on_event: EventFn | None = None) -> SearchResult:
    """Run (or resume, settings.resume) a neck search; see the module docstring for the outputs."""
    run = SearchRun(settings, on_event)
    try:
        return run.run()
    finally:
        if run.dist.enabled:
            distributed.cleanup()
