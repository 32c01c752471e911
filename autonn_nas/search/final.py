"""After supernet training: choose the architecture, evaluate it next to the base architecture, and write
the outputs (arch.json, neck_nas_model.yaml, bestmodel.pt, report.json/md, plots).

Every sub-network evaluated here runs the supernet's shared weights after batch-norm recalibration on
the training part. spos scores candidates on the held-out part; only the final comparison (derived vs
base) reads the validation split.

Under torchrun every rank scores its share of spos's candidates (Evaluator.score_many) and the scores are
gathered; the rest (the derived-vs-base evaluation and the outputs) runs on rank 0 alone.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping

import torch

from autonn_nas.models.choice import set_architecture
from autonn_nas.models.yolo import Model, cfg_to_yaml
from autonn_nas.search import distributed
from autonn_nas.search.arch import Architecture, base_architecture
from autonn_nas.search.bn_recalibration import recalibrate_bn
from autonn_nas.search.derive import derive_yaml, subnet_state_dict
from autonn_nas.search.file_log import RecordingLoader
from autonn_nas.search.report import plot_alpha, plot_spos_scores, write_reports
from autonn_nas.train.coco_eval import coco_ground_truth_from_dataset
from autonn_nas.train.epoch import images_to_input
from autonn_nas.train.evaluate import evaluate
from autonn_nas.train.results import fitness
from autonn_nas.utils.files import atomic_torch_save, atomic_write_json, atomic_write_text
from autonn_nas.utils.log import get_logger

if TYPE_CHECKING:
    from autonn_nas.search.runner import SearchResult, SearchRun

log = get_logger("search.final")

BN_BATCHES = 20  # at most; fewer when the training part has fewer batches
SPOS_EVALUATIONS = {"cpu": 8, "cuda": 200}  # default number of architectures spos scores
SCORE_IMAGES = 500  # spos scores on at most this many held-out images (the same ones for every candidate)
FITNESS_DIGITS = 4  # fitness differences below this are noise; the held-out loss breaks such ties


@torch.no_grad()
def mean_loss(model: Model, loader: Any, loss_fn: Any, device: torch.device) -> float:
    """Mean detection loss per image over a loader, in eval mode (recalibrated BN statistics)."""
    model.eval()
    total, images = 0.0, 0
    for batch_images, targets, *_rest in loader:
        _pred, raw = model(images_to_input(batch_images, device))
        loss, _items = loss_fn(raw, targets.to(device))
        total += float(loss)
        images += batch_images.shape[0]
    return total / max(images, 1)


class Evaluator:
    """Recalibrate-then-evaluate for one run: the held-out score (spos) and the val report.

    Its loaders read whole batches on every rank (no GlobalBatchShard): a rank scores a candidate
    exactly as one process would, so a score does not depend on which rank computed it."""

    def __init__(self, run: "SearchRun"):
        from autonn_nas.search.runner import _loader

        s = run.settings
        self.run = run
        self.scored: list[dict[str, Any]] = []  # what this rank scored itself (debug evidence under torchrun)
        self.model, self.device = run.model, run.device
        data = run.data
        self.recal_loader = RecordingLoader(_loader(data.recal, run.batch_size, False, s), run.files, "bn_recalibration")
        # on a large train split (COCO: 23k held-out images) scoring 200 candidates on all of them would take
        # longer than the search; a fixed, evenly spread subset keeps the comparison fair and the time bounded
        self.score_set = data.holdout
        if len(data.holdout) > SCORE_IMAGES:
            step = len(data.holdout) / SCORE_IMAGES
            self.score_set = data.holdout.subset([int(i * step) for i in range(SCORE_IMAGES)])
        self.holdout_loader = RecordingLoader(_loader(self.score_set, run.batch_size, False, s), run.files, "architecture")
        self.val_loader = RecordingLoader(_loader(data.val, run.batch_size, False, s), run.files, "report")
        self.bn_batches = min(BN_BATCHES, len(self.recal_loader))
        self._holdout_truth = None
        self._val_truth = None

    def prepare(self, arch: Mapping[str, str]) -> None:
        set_architecture(self.model, arch)
        recalibrate_bn(self.model, self.recal_loader, self.bn_batches, self.device)

    def holdout_score(self, arch: Architecture) -> tuple[tuple, dict[str, Any]]:
        """Sort key (fitness rounded, -loss) and details of `arch` on the held-out images."""
        if self._holdout_truth is None:
            self._holdout_truth = coco_ground_truth_from_dataset(self.score_set, self.run.data.config.names)
        self.prepare(arch)
        metrics = evaluate(self.model, self.holdout_loader, self.device, ground_truth=self._holdout_truth)
        loss = mean_loss(self.model, self.holdout_loader, self.run.loss_fn, self.device)
        score = fitness(metrics)
        details = {"fitness": score, "map50": metrics["map50"], "map": metrics["map"], "loss": loss}
        return (round(score, FITNESS_DIGITS), -loss), details

    def score_many(self, archs: list[Architecture]) -> list[tuple[tuple, dict[str, Any]]]:
        """holdout_score of each of `archs`, in order. Under torchrun rank r scores archs[r::world] and every
        rank gets all the scores (and the files the others read), so the search goes on identically everywhere."""
        context = self.run.dist
        mine = {i: self.holdout_score(arch) for i, arch in enumerate(archs) if i % context.world_size == context.rank}
        self.scored += [{"architecture": archs[i].to_dict(), "key": list(key), **details} for i, (key, details) in mine.items()]
        distributed.dump_debug_scores(context, self.scored)
        if not context.enabled:
            return [mine[i] for i in range(len(archs))]
        scores: dict[int, tuple[tuple, dict[str, Any]]] = {}
        for part, files in distributed.gather_objects((mine, self.run.files.state_dict())):
            scores.update(part)
            for phase, paths in files.items():  # a set per phase: an image read by several ranks counts once
                self.run.files.add(phase, paths)
        return [scores[i] for i in range(len(archs))]

    def val_metrics(self, arch: Mapping[str, str]) -> dict[str, Any]:
        if self._val_truth is None:
            self._val_truth = coco_ground_truth_from_dataset(self.run.data.val, self.run.data.config.names)
        self.prepare(arch)
        metrics = evaluate(self.model, self.val_loader, self.device, ground_truth=self._val_truth)
        return {k: metrics[k] for k in ("precision", "recall", "map50", "map", "images")}


def _choose(run: "SearchRun", evaluator: Evaluator) -> Architecture:
    s = run.settings
    if s.strategy != "spos":
        return run.strategy.derive()
    max_evaluations = s.evaluations or SPOS_EVALUATIONS.get(run.device.type, 200)
    started = time.perf_counter()

    def on_generation(generation: int, ranked: list) -> None:
        best = ranked[0]
        log.info("spos search generation %d: %d scored, best %s (held-out fitness %.4f, loss %.4f)",
                 generation, len(ranked), best.arch, best.details["fitness"], best.details["loss"])
        if run.on_event is not None and run.dist.is_main:
            run.on_event("evolution_search", {"generation": generation, "evaluated": len(ranked), "max_evaluations": max_evaluations,
                                              "best": best.to_dict()})

    arch = run.strategy.derive(score_many=evaluator.score_many, max_evaluations=max_evaluations, seed=s.seed, on_generation=on_generation)
    run.seconds["spos_scoring"] = time.perf_counter() - started
    log.info("spos: %d architectures scored in %.1f s by %d process(es)", len(run.strategy.evaluated), run.seconds["spos_scoring"],
             run.dist.world_size)
    return arch


def _entry(run: "SearchRun", arch: Mapping[str, str], val: dict[str, Any]) -> dict[str, Any]:
    cost = run.cost.cost(arch)
    return {"architecture": dict(arch), "cost": cost, "cost_ratio": cost / run.budget.base_cost if run.budget.base_cost else None,
            "within_budget": run.budget.allows(cost), "val": val}


def finish(run: "SearchRun", started: float) -> "SearchResult | None":
    """Choose, evaluate and write. Under torchrun every rank calls it for spos (each scores its share of the
    candidates) and only rank 0 goes on past the choice; it returns None on the other ranks."""
    from autonn_nas.search.runner import SearchResult

    s, out = run.settings, run.out
    final_started = time.perf_counter()
    if not run.dist.is_main and s.strategy != "spos":
        return None  # the other strategies derive on rank 0 alone
    evaluator = Evaluator(run)
    arch = _choose(run, evaluator)
    if not run.dist.is_main:
        return None
    if not run.budget.allows(run.cost.cost(arch)):  # every strategy derives within the budget; never ship otherwise
        raise RuntimeError(f"derived architecture {arch} costs {run.cost.cost(arch):.6g} {run.cost.unit}, over the budget {run.budget.limit:.6g}")
    base = base_architecture(arch.labels)
    base_val = evaluator.val_metrics(base)
    derived_val = evaluator.val_metrics(arch)  # last: the supernet now holds the derived path's recalibrated BN

    derived_cfg = derive_yaml(run.model.yaml, arch)
    state = {k: v.detach().cpu().clone() for k, v in subnet_state_dict(run.model, arch).items()}
    with torch.device("meta"):
        Model(derived_cfg).load_state_dict(state, strict=True, assign=True)  # the weights fit the YAML exactly
    probabilities = run.strategy.probabilities_dict()
    derived, base_entry = _entry(run, arch, derived_val), _entry(run, base, base_val)
    metrics = {
        "img_size": s.img_size, "strategy": s.strategy, "map50": derived_val["map50"], "map": derived_val["map"],
        "base_map50": base_val["map50"], "base_map": base_val["map"], "cost": derived["cost"], "base_cost": base_entry["cost"],
        "cost_ratio": derived["cost_ratio"], "cost_measure": run.cost.measure, "budget": run.budget.limit,
    }

    arch_json = atomic_write_json(out / "arch.json", {
        "architecture": arch.to_dict(), "strategy": s.strategy, "probabilities": probabilities,
        "cost": derived["cost"], "cost_measure": run.cost.measure, "budget": run.budget.to_dict(),
    })
    model_yaml = atomic_write_text(out / "neck_nas_model.yaml", f"# neck search ({s.strategy}) result: {arch}\n" + cfg_to_yaml(derived_cfg))
    weights = atomic_torch_save(out / "bestmodel.pt", {
        "model_yaml": derived_cfg, "state_dict": state, "nc": run.model.nc, "names": list(run.model.names),
        "arch": arch.to_dict(), "metrics": metrics, "img_size": s.img_size,
        "note": "supernet weights of the chosen candidates, BN recalibrated on the training part",
    })
    spos_report, plots = None, {}
    if s.strategy == "spos":
        evaluated = [e.to_dict() for e in run.strategy.evaluated]
        atomic_write_json(out / "spos_evaluated.json", evaluated)
        spos_report = {"mode": run.strategy.search_mode, "evaluated": len(evaluated), "score": "held-out fitness (0.1 mAP50 + 0.9 mAP50-95), ties by held-out loss", "top": evaluated[:10]}
        # spos has no probabilities to chart: its alpha.png is the cost-vs-score scatter, with the budget line
        if plot_spos_scores(evaluated, run.budget.limit, run.budget.base_cost, arch, out / "alpha.png"):
            plots["alpha"] = str(out / "alpha.png")
    elif plot_alpha(run.history, out / "alpha.png"):
        plots["alpha"] = str(out / "alpha.png")
    files_read = atomic_write_json(out / "files_read.json", run.files.state_dict())
    run.seconds["final"] = time.perf_counter() - final_started
    run.seconds["total"] = time.perf_counter() - started  # of this process (a resumed run counts from the resume)
    report = {
        "strategy": s.strategy,
        "settings": s.to_dict(),
        "device": str(run.device),
        "epochs": s.epochs, "img_size": s.img_size, "batch_size": run.batch_size, "width": run.model.yaml.get("width_multiple"),
        "depth": run.model.yaml.get("depth_multiple"),
        "batch_changes": run.batch_changes,
        "warm_start": s.weights,
        "dataset": {"yaml": str(s.data), "train_part": len(run.data.train_part), "holdout": len(run.data.holdout), "val": len(run.data.val),
                    "train_val_overlap": run.data.train_val_overlap, "holdout_fraction": s.holdout_fraction, "files_read": run.files.counts(), "files_read_list": str(files_read)},
        "cost_model": {"measure": run.cost.measure, "unit": run.cost.unit, "source": run.cost.source, "table": str(out / "cost_table.json")},
        "budget": run.budget.to_dict(),
        "arch_schedule": {**run.arch_schedule.to_dict(),
                          "arch_lr": run.strategy.arch_optimizer.param_groups[0]["lr"] if run.strategy.arch_optimizer else None},
        "derived": derived,
        "base": base_entry,
        "probabilities": probabilities,
        "spos": spos_report,
        "bn_recalibration_batches": evaluator.bn_batches,
        "history": run.history,
        "files": {"arch": str(arch_json), "model_yaml": str(model_yaml), "weights": str(weights), "plots": plots},
        "seconds": run.seconds,
        "metrics": metrics,
    }
    report_json, _report_md = write_reports(out, report)
    log.info("derived %s: cost %.4g %s (%.3f x base, budget %.3f x), val mAP50 %.4f mAP50-95 %.4f | base: mAP50 %.4f mAP50-95 %.4f",
             arch, derived["cost"], run.cost.unit, derived["cost_ratio"], run.budget.limit / run.budget.base_cost,
             derived_val["map50"], derived_val["map"], base_val["map50"], base_val["map"])
    if run.on_event is not None:
        run.on_event("nas_end", {"architecture": arch.to_dict(), "metrics": metrics, "model_yaml": str(model_yaml), "weights": str(weights),
                                 "report": str(report_json)})
    return SearchResult(out, arch, model_yaml, weights, report_json, metrics)
