"""After supernet training: choose the architecture, confirm it against the base architecture, evaluate
both, and write the outputs (arch.json, neck_nas_model.yaml, bestmodel.pt, report.json/md, plots, the Pareto
view of search/pareto.py). When the budget is below the base's cost (a lightweight_level), the base cannot
ship and the searched architecture does, unconfirmed.

Every sub-network evaluated here runs the supernet's shared weights after batch-norm recalibration on
the training part. spos scores candidates on the held-out part; the confirmation (search/confirm.py:
the base unless beaten beyond noise) reads the confirmation images, which nothing else reads; only the
val figures of the report read the validation split.

Under torchrun every rank scores its share of spos's candidates (Evaluator.score_many) and the scores are
gathered; the rest (the derived-vs-base evaluation and the outputs) runs on rank 0 alone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch

from autonn_nas.data.loader import search_loader
from autonn_nas.models.choice import set_architecture
from autonn_nas.models.yolo import Model, cfg_to_yaml
from autonn_nas.search import confirm, distributed, events
from autonn_nas.search.arch import Architecture, base_architecture
from autonn_nas.search.bn_recalibration import frozen_bn_statistics, recalibrate_bn
from autonn_nas.search.derive import derive_yaml, model_sizes, subnet_state_dict
from autonn_nas.search.distributed import DistContext
from autonn_nas.search.events import EventFn
from autonn_nas.search.file_log import FilesRead, RecordingLoader
from autonn_nas.search.pareto import pareto_view
from autonn_nas.search.report import plot_alpha, plot_pareto, write_reports
from autonn_nas.search.result import SearchResult
from autonn_nas.search.settings import SearchSettings
from autonn_nas.train.coco_eval import coco_ground_truth_from_dataset
from autonn_nas.train.epoch import images_to_input
from autonn_nas.train.evaluate import evaluate
from autonn_nas.utils.files import atomic_torch_save, atomic_write_json, atomic_write_text
from autonn_nas.utils.log import get_logger
from autonn_nas.utils.progress import progress

if TYPE_CHECKING:  # types only: the values come from the runner
    from autonn_nas.search.cost import Budget, CostTable
    from autonn_nas.search.loop import ArchStepSchedule
    from autonn_nas.search.splits import SearchData
    from autonn_nas.search.strategies.base import SearchStrategy


log = get_logger("search.final")

BN_BATCHES = 20  # at most; fewer when the training part has fewer batches
SPOS_EVALUATIONS = {"cpu": 100, "cuda": 200}  # default number of architectures spos scores (100: all 81 within the default budget)
SCORE_IMAGES = 500  # spos scores on at most this many held-out images (the same ones for every candidate)


@torch.no_grad()
def mean_loss(model: Model, loader: Any, objective: Any, device: torch.device, batch_statistics: bool = False) -> float:
    """Mean objective per image over a loader (see per_image_losses)."""
    losses = per_image_losses(model, loader, objective, device, batch_statistics)
    return float(losses.mean()) if losses.numel() else float("nan")


@torch.no_grad()
def per_image_losses(model: Model, loader: Any, objective: Any, device: torch.device, batch_statistics: bool = False) -> torch.Tensor:
    """The objective of every image of a loader, in its order: in eval mode (the running, e.g. recalibrated,
    BN statistics), or with `batch_statistics` normalised by each batch's own (running statistics untouched)."""
    model.train(batch_statistics)
    values = []
    try:
        with frozen_bn_statistics(model):
            for batch_images, targets, *_rest in loader:
                images = images_to_input(batch_images, device)
                values.append(objective.per_image(model(images), targets.to(device), images).float().cpu())
    finally:
        model.eval()
    return torch.cat(values) if values else torch.zeros(0)


class Evaluator:
    """Recalibrate-then-evaluate for one run: the held-out score (spos), the confirmation against the base
    and the val report.

    Its loaders read whole batches on every rank (no GlobalBatchShard): a rank scores a candidate
    exactly as one process would, so a score does not depend on which rank computed it."""

    def __init__(self, model: Model, device: torch.device, objective: Any, data: "SearchData", files: FilesRead,
                 batch_size: int, settings: SearchSettings, dist: DistContext = DistContext(), on_event: EventFn | None = None):
        s = settings
        self.objective = objective
        self.data, self.files, self.dist, self.on_event = data, files, dist, on_event
        self.scored: list[dict[str, Any]] = []  # what this rank scored itself (debug evidence under torchrun)
        self.scored_count = 0  # architectures scored through score_many, by all ranks together
        self.model, self.device = model, device
        loader = lambda dataset: search_loader(dataset, batch_size, False, s.workers, s.seed)  # noqa: E731
        self.recal_loader = RecordingLoader(loader(data.recal), files, "bn_recalibration")
        # on a large train split (COCO: 23k held-out images) scoring 200 candidates on all of them would take
        # longer than the search; a fixed, evenly spread subset keeps the comparison fair and the time bounded
        self.score_set = data.holdout
        if len(data.holdout) > SCORE_IMAGES:
            step = len(data.holdout) / SCORE_IMAGES
            self.score_set = data.holdout.subset([int(i * step) for i in range(SCORE_IMAGES)])
        self.holdout_loader = RecordingLoader(loader(self.score_set), files, "architecture")
        self.confirm_loader = (RecordingLoader(loader(data.confirm), files, "confirmation")
                               if data.confirm is not None and len(data.confirm) else None)
        self.val_loader = RecordingLoader(loader(data.val), files, "report")
        self.bn_batches = min(BN_BATCHES, len(self.recal_loader))
        self._val_truth = None
        # what spos's evolution reads (search/strategies/base.Scorer)
        self.max_evaluations = s.evaluations or SPOS_EVALUATIONS.get(device.type, 200)
        self.seed = s.seed
        self.progress = s.progress and dist.is_main  # bars on a terminal; log lines say each phase anyway

    def prepare(self, arch: Mapping[str, str]) -> None:
        set_architecture(self.model, arch)
        recalibrate_bn(self.model, self.recal_loader, self.bn_batches, self.device)

    def holdout_score(self, arch: Architecture) -> tuple[tuple, dict[str, Any]]:
        """Sort key (higher is better: -held-out loss, then the base on an exact tie) and details of `arch`. Like the
        architecture steps, it normalises with the statistics of each held-out batch (the same batches for every
        architecture, so the comparison is paired; measured in benchmarks/README.md: recalibrated running
        statistics differ enough from run to run to reorder close architectures)."""
        set_architecture(self.model, arch)
        loss = mean_loss(self.model, self.holdout_loader, self.objective, self.device, batch_statistics=True)
        is_base = arch == base_architecture(arch.labels)
        return (-round(loss, 9), is_base), {"loss": loss, "images": len(self.score_set)}

    def score_many(self, archs: list[Architecture]) -> list[tuple[tuple, dict[str, Any]]]:
        """holdout_score of each of `archs`, in order. Under torchrun rank r scores archs[r::world] and every
        rank gets all the scores (and the files the others read), so the search goes on identically everywhere."""
        context = self.dist
        self.scored_count += len(archs)
        mine = {i: self.holdout_score(arch) for i, arch in progress(list(enumerate(archs)), "scoring architectures",
                                                                   enabled=self.progress, leave=False)
                if i % context.world_size == context.rank}
        self.scored += [{"architecture": archs[i].to_dict(), "key": list(key), **details} for i, (key, details) in mine.items()]
        if not context.enabled:
            return [mine[i] for i in range(len(archs))]
        scores: dict[int, tuple[tuple, dict[str, Any]]] = {}
        for part, files in distributed.gather_objects((mine, self.files.state_dict())):
            scores.update(part)
            for phase, paths in files.items():  # a set per phase: an image read by several ranks counts once
                self.files.add(phase, paths)
        return [scores[i] for i in range(len(archs))]

    def on_generation(self, generation: int, ranked: list) -> None:
        best = ranked[0]
        log.info("spos search generation %d: %d scored, best %s (held-out loss %.4f)", generation, len(ranked), best.arch, best.details["loss"])
        events.emit(self.on_event if self.dist.is_main else None, events.EVOLUTION_SEARCH,
                    {"generation": generation, "evaluated": len(ranked), "max_evaluations": self.max_evaluations, "best": best.to_dict()})

    def confirmation_losses(self, arch: Mapping[str, str]) -> torch.Tensor | None:
        """Per-image objective of `arch` on the confirmation images (None when there are none)."""
        if self.confirm_loader is None:
            return None
        set_architecture(self.model, arch)
        return per_image_losses(self.model, self.confirm_loader, self.objective, self.device, batch_statistics=True)

    def val_metrics(self, arch: Mapping[str, str], role: str = "") -> dict[str, Any]:
        """P, R, mAP50, mAP50-95 of `arch` (the `role` it plays: searched, base, shipped) on the val split, logged."""
        started = time.perf_counter()
        if self._val_truth is None:
            self._val_truth = coco_ground_truth_from_dataset(self.data.val, self.data.config.names)
        self.prepare(arch)
        metrics = evaluate(self.model, self.val_loader, self.device, ground_truth=self._val_truth,
                           description=f"val {role}".strip() if self.progress else None)
        log.info("val of the %s architecture %s: mAP50 %.4f mAP50-95 %.4f (%d images, %.1f s with BN recalibration)",
                 role or "given", Architecture(arch), metrics["map50"], metrics["map"], metrics["images"], time.perf_counter() - started)
        return {k: metrics[k] for k in ("precision", "recall", "map50", "map", "images")}


@dataclass
class TrainedSearch:
    """What the derivation and the outputs read of a search once its supernet is trained (plain values, so
    this module needs nothing of the runner)."""

    settings: SearchSettings
    out: Path
    dist: DistContext
    device: torch.device
    model: Model
    objective: Any
    strategy: "SearchStrategy"
    cost: "CostTable"
    budget: "Budget"
    data: "SearchData"
    files: FilesRead
    batch_size: int
    arch_schedule: "ArchStepSchedule"
    history: list[dict[str, Any]]
    batch_changes: list[dict[str, Any]]
    seconds: dict[str, float]  # so far (training); finish returns it with its own times added
    on_event: EventFn | None = None

    def evaluator(self) -> Evaluator:
        return Evaluator(self.model, self.device, self.objective, self.data, self.files, self.batch_size, self.settings,
                         self.dist, self.on_event)


def _choose(run: TrainedSearch, evaluator: Evaluator, seconds: dict[str, float]) -> Architecture:
    started = time.perf_counter()
    log.info("supernet trained; %s derives the architecture within the budget", run.settings.strategy)
    arch = run.strategy.derive(evaluator)
    seconds["derivation"] = time.perf_counter() - started
    if evaluator.scored_count:
        log.info("%s: %d architectures scored in %.1f s by %d process(es)", run.settings.strategy, evaluator.scored_count,
                 seconds["derivation"], run.dist.world_size)
    return arch


def _confirm(run: TrainedSearch, evaluator: Evaluator, searched: Architecture, base: Architecture,
             seconds: dict[str, float]) -> dict[str, Any]:
    started = time.perf_counter()
    if not run.budget.allows(run.cost.cost(base)):  # a lightweight_level asked for less than the base costs
        decision = confirm.base_over_budget(searched, base, run.cost.cost(base) / run.budget.limit)
    elif searched == base:
        decision = confirm.decide(searched, base, None, None, evaluator.objective.name, seed=run.settings.seed)
    else:
        log.info("confirming %s against the base on %d held-out images the search did not use", searched,
                 len(run.data.confirm) if run.data.confirm is not None else 0)
        decision = confirm.decide(searched, base, evaluator.confirmation_losses(searched), evaluator.confirmation_losses(base),
                                  evaluator.objective.name, seed=run.settings.seed)
    seconds["confirmation"] = time.perf_counter() - started
    log.info("decision: ships the %s architecture: %s", decision["shipped"], decision["reason"])
    return decision


def _entry(run: TrainedSearch, arch: Mapping[str, str], val: dict[str, Any]) -> dict[str, Any]:
    cost = run.cost.cost(arch)
    return {"architecture": dict(arch), "cost": cost, "cost_ratio": cost / run.budget.base_cost if run.budget.base_cost else None,
            "within_budget": run.budget.allows(cost), "val": val}


def finish(run: TrainedSearch, started: float) -> tuple[SearchResult | None, dict[str, float]]:
    """Choose, confirm, evaluate and write; returns the result and run.seconds with the times measured here.
    Under torchrun every rank calls it when the strategy derives on every rank (spos: each scores its share of
    the candidates) and only rank 0 goes on past the choice; the result is None on the other ranks."""
    s, out = run.settings, run.out
    seconds = dict(run.seconds)
    final_started = time.perf_counter()
    if not run.dist.is_main and not run.strategy.derives_on_every_rank:
        return None, seconds  # the other strategies derive on rank 0 alone
    evaluator = run.evaluator()
    searched = _choose(run, evaluator, seconds)
    if not run.dist.is_main:
        return None, seconds
    if not run.budget.allows(run.cost.cost(searched)):  # every strategy derives within the budget; never ship otherwise
        raise RuntimeError(f"derived architecture {searched} costs {run.cost.cost(searched):.6g} {run.cost.unit}, over the budget {run.budget.limit:.6g}")
    base = base_architecture(searched.labels)
    decision = _confirm(run, evaluator, searched, base, seconds)
    arch = searched if decision["shipped"] == "derived" else base
    searched_val = evaluator.val_metrics(searched, "searched") if searched != arch else None
    base_val = evaluator.val_metrics(base, "base") if base != arch else None
    derived_val = evaluator.val_metrics(arch, "shipped")  # last: the supernet now holds the shipped path's recalibrated BN
    base_val = derived_val if base_val is None else base_val

    derived_cfg = derive_yaml(run.model.yaml, arch)
    state = {k: v.detach().cpu().clone() for k, v in subnet_state_dict(run.model, arch).items()}
    with torch.device("meta"):
        Model(derived_cfg).load_state_dict(state, strict=True, assign=True)  # the weights fit the YAML exactly
    probabilities = run.strategy.probabilities_dict()
    derived, base_entry = _entry(run, arch, derived_val), _entry(run, base, base_val)
    searched_entry = _entry(run, searched, searched_val if searched_val is not None else derived_val)
    decision_summary = {"shipped": decision["shipped"], "reason": decision["reason"], "searched": searched.to_dict()}
    metrics = {
        "img_size": s.img_size, "strategy": s.strategy, "map50": derived_val["map50"], "map": derived_val["map"],
        "base_map50": base_val["map50"], "base_map": base_val["map"], "cost": derived["cost"], "base_cost": base_entry["cost"],
        "cost_ratio": derived["cost_ratio"], "cost_measure": run.cost.measure, "budget": run.budget.limit,
        "objective": run.objective.name, "decision": decision_summary,
        # the same figures until a retrain (search/retrain.py) fine-tunes the model and puts its own in map50/map
        "inherited_map50": derived_val["map50"], "inherited_map": derived_val["map"], "retrain_epochs": 0,
    }
    arch_json = atomic_write_json(out / "arch.json", {
        "architecture": arch.to_dict(), "searched": searched.to_dict(), "shipped": decision["shipped"], "reason": decision["reason"],
        "strategy": s.strategy, "probabilities": probabilities,
        "cost": derived["cost"], "cost_measure": run.cost.measure, "budget": run.budget.to_dict(),
        "model": model_sizes(run.model.yaml),  # what `autonn-nas derive` needs to build this model again
    })
    header = f"# neck search ({s.strategy}) result: {arch} (the {decision['shipped']} architecture; see report.md)\n"
    model_yaml = atomic_write_text(out / "neck_nas_model.yaml", header + cfg_to_yaml(derived_cfg))
    weights = atomic_torch_save(out / "bestmodel.pt", {
        "model_yaml": derived_cfg, "state_dict": state, "nc": run.model.nc, "names": list(run.model.names),
        "arch": arch.to_dict(), "metrics": metrics, "img_size": s.img_size,
        "note": "supernet weights of the chosen candidates, BN recalibrated on the training part",
    })
    title = f"{s.strategy} search: ships the {'searched' if decision['shipped'] == 'derived' else 'base'} architecture"
    artifacts = run.strategy.write_artifacts(out, {"shipped": arch.to_dict(), "base": base.to_dict(), "title": title})
    plots = dict(artifacts.get("plots", {}))
    if "alpha" not in plots and plot_alpha(run.history, out / "alpha.png", pick=arch.to_dict(), title=title):
        plots["alpha"] = str(out / "alpha.png")
    pareto = pareto_view(run.strategy, run.cost, run.budget, s.budget, s.seed, lambda a: float(evaluator.holdout_score(a)[1]["loss"]),
                         len(evaluator.score_set), arch, base)
    if plot_pareto(pareto["points"], run.budget.limit, run.budget.base_cost, arch.to_dict(), out / "pareto.png", base=base.to_dict(), title=title):
        plots["pareto"] = str(out / "pareto.png")
    files_read = atomic_write_json(out / "files_read.json", run.files.state_dict())
    seconds["final"] = time.perf_counter() - final_started
    seconds["total"] = time.perf_counter() - started  # of this process (a resumed run counts from the resume)
    report = {
        "strategy": s.strategy,
        "settings": s.to_dict(),
        "device": str(run.device),
        "epochs": s.epochs, "img_size": s.img_size, "batch_size": run.batch_size, "width": run.model.yaml.get("width_multiple"),
        "depth": run.model.yaml.get("depth_multiple"),
        "batch_changes": run.batch_changes,
        "warm_start": s.weights,
        "dataset": {"yaml": str(s.data), "train_part": len(run.data.train_part), "holdout": len(run.data.holdout),
                    "confirmation": len(run.data.confirm) if run.data.confirm is not None else 0, "val": len(run.data.val),
                    "train_val_overlap": run.data.train_val_overlap, "holdout_fraction": s.holdout_fraction,
                    "files_read": run.files.counts(), "files_read_list": str(files_read)},
        "cost_model": {"measure": run.cost.measure, "unit": run.cost.unit, "source": run.cost.source, "table": str(out / "cost_table.json")},
        "budget": run.budget.to_dict(),
        "arch_schedule": {**run.arch_schedule.to_dict(),
                          "arch_lr": run.strategy.arch_lr},
        "objective": run.objective.name,
        "decision": decision,
        "derived": derived,
        "searched": searched_entry,
        "base": base_entry,
        "probabilities": probabilities,
        "pareto": pareto,
        "spos": artifacts.get("report"),
        "bn_recalibration_batches": evaluator.bn_batches,
        "history": run.history,
        "files": {"arch": str(arch_json), "model_yaml": str(model_yaml), "weights": str(weights), "plots": plots},
        "seconds": seconds,
        "metrics": metrics,
    }
    report_json, _report_md = write_reports(out, report)
    log.info("shipped %s: cost %.4g %s (%.3f x base, budget %.3f x), val mAP50 %.4f mAP50-95 %.4f | base: mAP50 %.4f mAP50-95 %.4f",
             arch, derived["cost"], run.cost.unit, derived["cost_ratio"], run.budget.limit / run.budget.base_cost,
             derived_val["map50"], derived_val["map"], base_val["map50"], base_val["map"])
    return SearchResult(out, arch, model_yaml, weights, report_json, metrics), seconds
