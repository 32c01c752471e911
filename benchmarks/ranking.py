"""Does the supernet rank neck architectures the way stand-alone training does? (issue 7)

The study, on a configuration small enough for a 2-core CPU:
1. Searches: proxyless, darts, spos, and proxyless with the prior art's warm-up (`arch_warmup prior_art`:
   architecture steps only after max(3 epochs, 1000 iterations)), each with every --search-seeds seed.
2. Architectures: a fixed list chosen by rule (the base all-k3_mish, all-k5_mish, all-k3_relu, all-k5_relu,
   and --stratified more drawn with a seeded RNG, one from each equal-size cost band of the space), plus
   every search's pick.
3. Stand-alone: each architecture trained from scratch (`run_training` on its derived YAML, one recipe for
   all) for every --train-seeds seed; val mAP50, mAP50-95 (EMA weights, as `autonn-nas train` reports) and
   val loss (mean detection loss per image, final.py's mean_loss).
4. Supernet scores: each search's supernet (its last.pt) scores every architecture on val after BN
   recalibration (final.py's Evaluator.val_metrics, then mean_loss), exactly as the search scores its pick.
5. Report: Kendall tau-b / Spearman rho between stand-alone and supernet rankings per strategy, seed and
   metric, the stand-alone seed-to-seed noise floor, the search picks against the base, and the prior art.

Every finished unit writes one JSON under <out>/units and is skipped on a rerun, so an interrupted study
resumes where it stopped and `--report-only` tables whatever has finished. Units run as subprocesses of
this script, --jobs at a time, each with one torch thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ranking.py --out runs/ranking          # the study (~1.5 h on 2 cores)
    .venv/bin/python benchmarks/ranking.py --out runs/ranking --report-only              # tables from what finished
    .venv/bin/python benchmarks/ranking.py --out /tmp/rank_smoke --img 64 --epochs 1 --search-epochs 1 \\
        --stratified 0 --strategies proxyless --search-seeds 0 --train-seeds 0         # smoke test
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.rank_stats import kendall_tau_b, spearman_rho, tau_null_sd  # noqa: E402

SEARCH_CFG = "yolov4-p5-search.yaml"
# tag -> (strategy, arch_warmup): the prior art is our proxyless with its warm-up flaw reproduced
SEARCHES = {"proxyless": ("proxyless", "fraction"), "darts": ("darts", "fraction"), "spos": ("spos", "fraction"),
            "prior_art": ("proxyless", "prior_art")}
UNIFORM = {"all k3_mish (base)": "k3_mish", "all k5_mish": "k5_mish", "all k3_relu": "k3_relu", "all k5_relu": "k5_relu"}
METRICS = {"loss": "val loss", "map50": "val mAP50", "map": "val mAP50-95"}
# what must match for cached units to belong to the same study (seeds and the strategy list may grow)
STUDY_KEYS = ("data", "img", "epochs", "search_epochs", "batch", "width", "depth", "workers", "stratified", "rule_seed", "evaluations")


# -- the architecture list ---------------------------------------------------------------------------

def arch_id(arch: dict[str, str]) -> str:
    """A file-name-safe id in layer order, e.g. k3_mish-k5_relu-k3_mish-k3_leaky."""
    from autonn_nas.search.arch import Architecture

    return "-".join(Architecture(arch).to_dict().values())


def cost_table(config: dict) -> Any:
    """FLOPs of every candidate at the study's image size (counted on a meta-device twin: no real pass)."""
    from autonn_nas.models.yolo import build_model
    from autonn_nas.search.cost import counted_cost_table

    model = build_model(SEARCH_CFG, nc=80, width=config["width"], depth=config["depth"])
    return counted_cost_table(model, config["img"], "flops")


def fixed_architectures(table: Any, stratified: int, rule_seed: int) -> list[tuple[str, dict[str, str]]]:
    """(why chosen, architecture): the uniform ones, then one random architecture from each of `stratified`
    equal-size bands of the space sorted by cost, drawn with random.Random(rule_seed): spread, not picked."""
    from autonn_nas.search.arch import enumerate_space

    labels = table.labels
    chosen = [(why, {label: name for label in labels}) for why, name in UNIFORM.items()]
    space = sorted(enumerate_space(labels), key=lambda a: (table.cost(a), str(a)))
    rng = random.Random(rule_seed)
    taken = {arch_id(a) for _, a in chosen}
    for band in range(stratified):
        members = [a.to_dict() for a in space[band * len(space) // stratified:(band + 1) * len(space) // stratified]]
        members = [a for a in members if arch_id(a) not in taken]
        pick = rng.choice(members)
        taken.add(arch_id(pick))
        chosen.append((f"random, cost band {band + 1}/{stratified}", pick))
    return chosen


def unconstrained_pick(probabilities: dict[str, dict[str, float]]) -> dict[str, str]:
    """What the prior art itself would have written: each block's most probable candidate, no cost term
    (its flaw 4), from architecture weights that never moved (flaw 1)."""
    return {label: max(row, key=row.get) for label, row in probabilities.items()}


# -- units: one JSON each ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Unit:
    kind: str  # search | train | score
    name: str  # search: <tag>_s<seed>; train: <arch id>_s<seed>; score: <tag>_s<seed> (all archs of the list)

    @property
    def key(self) -> str:
        return f"{self.kind}_{self.name}"


def unit_file(out: Path, kind: str, name: str) -> Path:
    return out / "units" / f"{kind}_{name}.json"


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def write_json(path: Path, data: Any) -> None:
    from autonn_nas.utils.files import atomic_write_json

    atomic_write_json(path, data)


def _quiet_threads() -> None:
    import torch

    torch.set_num_threads(1)  # two units share the two cores; more threads only spin-wait


def run_search_unit(config: dict, out: Path, tag: str, seed: int) -> None:
    from autonn_nas.search.runner import run_search
    from autonn_nas.search.settings import SearchSettings

    strategy, warmup = SEARCHES[tag]
    started = time.perf_counter()
    result = run_search(SearchSettings(
        data=config["data"], out=str(out / "searches" / f"{tag}_s{seed}"), strategy=strategy, arch_warmup=warmup,
        epochs=config["search_epochs"], img_size=config["img"], batch_size=config["batch"], width=config["width"],
        depth=config["depth"], device="cpu", seed=seed, workers=config["workers"], progress=False, retrain_epochs=0,
        evaluations=config["evaluations"] if strategy == "spos" else None,
    ))
    report = read_json(result.report)
    history = report["history"]
    start, end = history[0].get("alpha"), history[-1].get("alpha")
    moved = None
    if start and end:  # largest change of any candidate's probability over the run
        moved = max(abs(end[label][name] - start[label][name]) for label in start for name in start[label])
    write_json(unit_file(out, "search", f"{tag}_s{seed}"), {
        "tag": tag, "strategy": strategy, "arch_warmup": warmup, "seed": seed, "arch": result.arch.to_dict(),
        "searched": report["decision"]["searched"], "decision": report["decision"]["shipped"],
        "decision_reason": report["decision"]["reason"], "confirmation": report["decision"]["confirmation"],
        "cost": report["derived"]["cost"], "cost_ratio": report["derived"]["cost_ratio"],
        "arch_steps": sum(row.get("arch_steps") or 0 for row in history), "arch_schedule": report["arch_schedule"],
        "alpha_start": start, "alpha_end": end, "alpha_max_change": moved, "supernet_val": report["derived"]["val"],
        "weight_iterations": report["arch_schedule"]["total_iterations"], "seconds": time.perf_counter() - started,
    })


def run_train_unit(config: dict, out: Path, arch: dict[str, str], seed: int) -> None:
    import torch

    from autonn_nas.models.yolo import build_model, cfg_to_yaml
    from autonn_nas.search.derive import derive_yaml
    from autonn_nas.search.final import mean_loss
    from autonn_nas.search.objective import DetectionObjective
    from autonn_nas.train.checkpoint import load_checkpoint
    from autonn_nas.train.hyp import merge_hyp
    from autonn_nas.train.loss import DetectionLoss, scaled_loss_gains
    from autonn_nas.train.settings import TrainSettings
    from autonn_nas.train.trainer import build_datasets, make_loader, run_training
    from autonn_nas.utils.files import atomic_write_text

    name = f"{arch_id(arch)}_s{seed}"
    run_dir = out / "train" / name
    cfg_path = atomic_write_text(out / "yaml" / f"{arch_id(arch)}.yaml", cfg_to_yaml(derive_yaml(SEARCH_CFG, arch)))
    settings = TrainSettings(
        data=config["data"], cfg=str(cfg_path), out=str(run_dir), epochs=config["epochs"], img_size=config["img"],
        batch_size=config["batch"], width=config["width"], depth=config["depth"], device="cpu", seed=seed,
        workers=config["workers"], progress=False, eval_interval=config["epochs"],
        nominal_batch=config["batch"],  # an optimizer step every batch: a few hundred steps, not a few dozen
    )
    started = time.perf_counter()
    summary = run_training(settings)
    seconds = time.perf_counter() - started
    # the val loss of the same (EMA) weights the val mAP was measured on
    checkpoint = load_checkpoint(run_dir / "last.pt")
    model = build_model(checkpoint["model_yaml"], nc=checkpoint["nc"])
    model.load_state_dict(checkpoint["state_dict"])
    resolved = settings.resolve_defaults(on_gpu=False)
    hyp = merge_hyp(resolved.hyp)
    _data, train, val = build_datasets(resolved, hyp)
    loader = make_loader(val, resolved.batch_size, False, resolved.workers, seed)
    loss_fn = DetectionLoss(model, scaled_loss_gains(hyp, model.detect.nc, model.detect.nl, resolved.img_size))
    loss = mean_loss(model, loader, DetectionObjective(loss_fn), torch.device("cpu"))
    table = cost_table(config)
    write_json(unit_file(out, "train", name), {
        "arch": arch, "seed": seed, "map50": summary["final"]["map50"], "map": summary["final"]["map"], "loss": loss,
        "cost": table.cost(arch), "seconds": seconds, "iterations": config["epochs"] * -(-len(train) // resolved.batch_size),
    })


def run_score_unit(config: dict, out: Path, tag: str, seed: int, archs: list[dict[str, str]]) -> None:
    """Every architecture of the list scored by one search's supernet: BN recalibrated on the search's own
    training part, then val mAP and val loss, by the search's own Evaluator (final.py)."""
    from autonn_nas.search.final import mean_loss
    from autonn_nas.search.runner import SearchRun

    # the finished search exactly as it ended (settings, split, supernet weights), from its last.pt
    run = SearchRun.reopen(out / "searches" / f"{tag}_s{seed}", device="cpu", workers=config["workers"])
    evaluator = run.evaluator()
    for arch in archs:
        path = unit_file(out, "score", f"{tag}_s{seed}__{arch_id(arch)}")
        if path.is_file():
            continue
        started = time.perf_counter()
        val = evaluator.val_metrics(arch)
        loss = mean_loss(run.model, evaluator.val_loader, run.objective, run.device)  # same recalibrated BN as val_metrics
        write_json(path, {"tag": tag, "seed": seed, "arch": arch, "map50": val["map50"], "map": val["map"], "loss": loss,
                          "seconds": time.perf_counter() - started})


# -- the plan: which units exist, which are ready ---------------------------------------------------------

class Study:
    def __init__(self, config: dict, out: Path):
        self.config, self.out = config, out
        self._table = None

    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = cost_table(self.config)
        return self._table

    def searches(self) -> list[tuple[str, int]]:
        return [(tag, seed) for seed in self.config["search_seeds"] for tag in self.config["strategies"]]

    def search_result(self, tag: str, seed: int) -> dict | None:
        path = unit_file(self.out, "search", f"{tag}_s{seed}")
        return read_json(path) if path.is_file() else None

    def architectures(self, failed: set[str] = frozenset()) -> tuple[list[tuple[str, dict[str, str]]], bool]:
        """(why, arch) for the fixed list plus every finished search's pick; and whether every search is over."""
        chosen = fixed_architectures(self.table, self.config["stratified"], self.config["rule_seed"])
        ids = {arch_id(a): i for i, (_why, a) in enumerate(chosen)}
        complete = True
        for tag, seed in self.searches():
            result = self.search_result(tag, seed)
            if result is None:
                complete = complete and f"search_{tag}_s{seed}" in failed
                continue
            picks = [(f"{tag} pick (seed {seed})", result["arch"])]
            if result.get("searched") and result["searched"] != result["arch"]:  # searched, but the base shipped
                picks.append((f"{tag} searched, not shipped (seed {seed})", result["searched"]))
            if result["arch_warmup"] == "prior_art" and result.get("alpha_end"):
                picks.append((f"{tag} argmax, no budget (seed {seed})", unconstrained_pick(result["alpha_end"])))
            for why, arch in picks:
                key = arch_id(arch)
                if key in ids:
                    index = ids[key]
                    chosen[index] = (f"{chosen[index][0]}; {why}", chosen[index][1])
                else:
                    ids[key] = len(chosen)
                    chosen.append((why, arch))
        return chosen, complete

    def pending(self, failed: set[str]) -> list[Unit]:
        """Units not yet done whose inputs exist, in the order to run them: searches (their picks decide the
        list), then supernet scoring (cheap), then stand-alone training."""
        units = [Unit("search", f"{tag}_s{seed}") for tag, seed in self.searches() if self.search_result(tag, seed) is None]
        archs, complete = self.architectures(failed)
        fixed = len(UNIFORM) + self.config["stratified"]
        if complete:
            for tag, seed in self.searches():
                if self.search_result(tag, seed) is not None and any(
                        not unit_file(self.out, "score", f"{tag}_s{seed}__{arch_id(a)}").is_file() for _, a in archs):
                    units.append(Unit("score", f"{tag}_s{seed}"))
        trainable = archs if complete else archs[:fixed]  # picks join once every search is over
        for seed in self.config["train_seeds"]:
            for _why, arch in trainable:
                if not unit_file(self.out, "train", f"{arch_id(arch)}_s{seed}").is_file():
                    units.append(Unit("train", f"{arch_id(arch)}_s{seed}"))
        return [u for u in units if u.key not in failed]


def run_unit(config: dict, out: Path, unit: Unit) -> None:
    _quiet_threads()
    if unit.kind == "search":
        tag, seed = unit.name.rsplit("_s", 1)
        run_search_unit(config, out, tag, int(seed))
    elif unit.kind == "train":
        ident, seed = unit.name.rsplit("_s", 1)
        from autonn_nas.search.arch import Architecture

        labels = cost_table(config).labels
        run_train_unit(config, out, Architecture(zip(labels, ident.split("-"))).to_dict(), int(seed))
    else:
        tag, seed = unit.name.rsplit("_s", 1)
        archs, _complete = Study(config, out).architectures()
        run_score_unit(config, out, tag, int(seed), [a for _, a in archs])


def drive(config: dict, out: Path, jobs: int) -> None:
    """Run pending units as subprocesses, `jobs` at a time, until none is left (failures are logged, not retried)."""
    study = Study(config, out)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    failed: set[str] = set()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    while True:
        for key, (process, started) in list(running.items()):
            if process.poll() is not None:
                del running[key]
                status = "done" if process.returncode == 0 else f"FAILED (exit {process.returncode}, see logs/{key}.log)"
                if process.returncode != 0:
                    failed.add(key)
                print(f"{time.strftime('%H:%M:%S')} {key}: {status} in {time.perf_counter() - started:.0f} s", flush=True)
        ready = [u for u in study.pending(failed) if u.key not in running]
        while ready and len(running) < jobs:
            unit = ready.pop(0)
            log = open(out / "logs" / f"{unit.key}.log", "a")
            cmd = [sys.executable, str(Path(__file__).resolve()), "--out", str(out), "--unit", unit.kind, unit.name]
            running[unit.key] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env), time.perf_counter())
            print(f"{time.strftime('%H:%M:%S')} {unit.key}: started", flush=True)
        if not running:
            break
        time.sleep(2)
    if failed:
        print(f"{len(failed)} unit(s) failed: {', '.join(sorted(failed))}", flush=True)


# -- the report ----------------------------------------------------------------------------------------------

def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def collect(study: Study) -> dict:
    config, out = study.config, study.out
    archs, complete = study.architectures()
    base_cost = study.table.cost(archs[0][1])
    rows = []
    for why, arch in archs:
        ident = arch_id(arch)
        train = {seed: read_json(p) for seed in config["train_seeds"] if (p := unit_file(out, "train", f"{ident}_s{seed}")).is_file()}
        score = {f"{tag}_s{seed}": read_json(p) for tag, seed in study.searches()
                 if (p := unit_file(out, "score", f"{tag}_s{seed}__{ident}")).is_file()}
        rows.append({"why": why, "arch": arch, "id": ident, "cost": study.table.cost(arch), "cost_ratio": study.table.cost(arch) / base_cost,
                     "train": train, "score": score})
    searches = {f"{tag}_s{seed}": r for tag, seed in study.searches() if (r := study.search_result(tag, seed)) is not None}
    return {"config": config, "rows": rows, "searches": searches, "complete": complete}


def correlations(data: dict) -> dict:
    """tau-b / rho of each supernet (tag, seed) against the stand-alone mean over seeds, per metric; the
    stand-alone seed-to-seed noise floor; and each strategy's own seed-to-seed agreement."""
    config, rows = data["config"], data["rows"]
    seeds = config["train_seeds"]
    full = [r for r in rows if all(s in r["train"] for s in seeds)]  # archs trained with every seed
    result: dict[str, Any] = {"n_standalone": len(full), "supernet": {}, "supernet_averaged": {}, "noise_floor": {}, "spread": {}, "supernet_seed_to_seed": {}}
    for metric in METRICS:
        means = [_mean([r["train"][s][metric] for s in seeds]) for r in full]
        if len(means) > 1 and len(seeds) > 1:  # how far apart the architectures are, next to how far apart two seeds are
            result["spread"][metric] = {"architectures_max_minus_min": max(means) - min(means), "seeds_mean_abs_difference": _mean(
                [abs(r["train"][a][metric] - r["train"][b][metric]) for r in full for i, a in enumerate(seeds) for b in seeds[i + 1:]])}
        for i, a in enumerate(seeds):
            for b in seeds[i + 1:]:
                x = [r["train"][a][metric] for r in full]
                y = [r["train"][b][metric] for r in full]
                result["noise_floor"].setdefault(metric, []).append({"seeds": [a, b], "n": len(full), "tau": kendall_tau_b(x, y), "rho": spearman_rho(x, y)})
        for run in data["searches"]:
            both = [r for r in full if run in r["score"]]
            x = [_mean([r["train"][s][metric] for s in seeds]) for r in both]
            y = [r["score"][run][metric] for r in both]
            result["supernet"].setdefault(metric, {})[run] = {"n": len(both), "tau": kendall_tau_b(x, y), "rho": spearman_rho(x, y)}
        for tag in config["strategies"]:
            runs = [f"{tag}_s{s}" for s in config["search_seeds"] if f"{tag}_s{s}" in data["searches"]]
            scored = [r for r in full if all(run in r["score"] for run in runs)]
            if len(runs) > 1:  # the supernets' scores averaged over seeds, against the stand-alone mean
                x = [_mean([r["train"][s][metric] for s in seeds]) for r in scored]
                y = [_mean([r["score"][run][metric] for run in runs]) for r in scored]
                result["supernet_averaged"].setdefault(metric, {})[tag] = {"n": len(scored), "tau": kendall_tau_b(x, y), "rho": spearman_rho(x, y)}
            for i, a in enumerate(runs):
                for b in runs[i + 1:]:
                    both = [r for r in rows if a in r["score"] and b in r["score"]]
                    x = [r["score"][a][metric] for r in both]
                    y = [r["score"][b][metric] for r in both]
                    result["supernet_seed_to_seed"].setdefault(metric, {})[f"{a} vs {b}"] = {
                        "n": len(both), "tau": kendall_tau_b(x, y), "rho": spearman_rho(x, y)}
    return result


def markdown(data: dict, corr: dict) -> str:
    config, rows = data["config"], data["rows"]
    seeds = config["train_seeds"]
    runs = list(data["searches"])
    lines = [f"Configuration: {config['img']} px, width {config['width']}, depth {config['depth']}, batch {config['batch']}; "
             f"stand-alone {config['epochs']} epochs, searches {config['search_epochs']} epochs; "
             f"stand-alone seeds {seeds}, search seeds {config['search_seeds']}. Searches all finished: {data['complete']}.", ""]
    lines += ["**Architectures, stand-alone** (mean over seeds; per seed in brackets). Cost: FLOPs / base.", "",
              "| # | architecture (m_16 m_21 m_25 m_29) | why in the list | cost / base | val loss | val mAP50 | val mAP50-95 |",
              "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        cells = []
        for metric in METRICS:
            values = [r["train"][s][metric] for s in seeds if s in r["train"]]
            digits = 3 if metric == "loss" else 4
            cells.append(f"{_fmt(_mean(values), digits)} ({', '.join(_fmt(v, digits) for v in values)})" if values else "not run")
        lines.append(f"| {i + 1} | {' '.join(r['arch'].values())} | {r['why']} | {r['cost_ratio']:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "**In short**: stand-alone val loss (mean over seeds, min-max in brackets) next to each strategy's supernet "
              "val loss (mean over its seeds), and the stand-alone val mAP50.", "",
              "| # | cost / base | stand-alone val loss | " + " | ".join(f"{tag} supernet" for tag in config["strategies"]) + " | stand-alone val mAP50 |",
              "|---|---|---|" + "---|" * len(config["strategies"]) + "---|"]
    for i, r in enumerate(rows):
        losses = [r["train"][s]["loss"] for s in seeds if s in r["train"]]
        spread = f"{_fmt(_mean(losses))} ({_fmt(min(losses))}-{_fmt(max(losses))})" if losses else "not run"
        per_tag = [_fmt(_mean([r["score"][run]["loss"] for run in runs if run.startswith(f"{tag}_s") and run in r["score"]])) for tag in config["strategies"]]
        map50 = _fmt(_mean([r["train"][s]["map50"] for s in seeds if s in r["train"]]), 4)
        lines.append(f"| {i + 1} | {r['cost_ratio']:.3f} | {spread} | " + " | ".join(per_tag) + f" | {map50} |")
    lines += ["", "**Supernet scores** (val, after BN recalibration): val loss per search run; mAP50-95 in brackets.", "",
              "| # | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for i, r in enumerate(rows):
        lines.append(f"| {i + 1} | " + " | ".join(
            f"{r['score'][run]['loss']:.3f} ({r['score'][run]['map']:.4f})" if run in r["score"] else "-" for run in runs) + " |")
    sd = tau_null_sd(corr["n_standalone"])
    chance = (f" With no association, tau over n = {corr['n_standalone']} has a standard deviation of {sd:.3f}: "
              f"|tau| < {1.96 * sd:.2f} is within chance (5 %, two-sided).") if sd else ""
    lines += ["", f"**Rank correlation, supernet vs stand-alone** (stand-alone: mean over seeds {seeds}; "
              f"n = architectures scored by both). tau-b / rho.{chance}", "",
              "| search run | n | " + " | ".join(METRICS.values()) + " |", "|---|---|" + "---|" * len(METRICS)]
    for run in runs:
        first = corr["supernet"]["loss"].get(run, {})
        lines.append(f"| {run} | {first.get('n', 0)} | " + " | ".join(
            f"{_fmt(corr['supernet'][m][run]['tau'], 2)} / {_fmt(corr['supernet'][m][run]['rho'], 2)}" for m in METRICS) + " |")
    for tag in config["strategies"]:
        tagged = [f"{tag}_s{s}" for s in config["search_seeds"] if f"{tag}_s{s}" in data["searches"]]
        if len(tagged) > 1:
            cells = []
            for m in METRICS:
                taus = [corr["supernet"][m][run]["tau"] for run in tagged if corr["supernet"][m][run]["tau"] is not None]
                rhos = [corr["supernet"][m][run]["rho"] for run in tagged if corr["supernet"][m][run]["rho"] is not None]
                cells.append(f"{_fmt(_mean(taus), 2)} / {_fmt(_mean(rhos), 2)}")
            lines.append(f"| **{tag}, mean of {len(tagged)} seeds' correlations** | | " + " | ".join(cells) + " |")
            averaged = {m: corr["supernet_averaged"].get(m, {}).get(tag, {}) for m in METRICS}
            lines.append(f"| {tag}, scores averaged over its {len(tagged)} supernets | {averaged['loss'].get('n', 0)} | " + " | ".join(
                f"{_fmt(a.get('tau'), 2)} / {_fmt(a.get('rho'), 2)}" for a in averaged.values()) + " |")
    lines += ["", f"**Noise floor**: stand-alone seed vs stand-alone seed (n = {corr['n_standalone']}), and each strategy's supernet "
              "seed vs seed. tau-b / rho:", "", "| pair | " + " | ".join(METRICS.values()) + " |", "|---|" + "---|" * len(METRICS)]
    for k, pair in enumerate(corr["noise_floor"].get("loss", [])):
        lines.append(f"| stand-alone seed {pair['seeds'][0]} vs {pair['seeds'][1]} | " + " | ".join(
            f"{_fmt(corr['noise_floor'][m][k]['tau'], 2)} / {_fmt(corr['noise_floor'][m][k]['rho'], 2)}" for m in METRICS) + " |")
    for pair in corr["supernet_seed_to_seed"].get("loss", {}):
        lines.append(f"| {pair} (n={corr['supernet_seed_to_seed']['loss'][pair]['n']}) | " + " | ".join(
            f"{_fmt(corr['supernet_seed_to_seed'][m][pair]['tau'], 2)} / {_fmt(corr['supernet_seed_to_seed'][m][pair]['rho'], 2)}" for m in METRICS) + " |")
    for metric, spread in corr["spread"].items():
        lines.append(f"\nStand-alone {METRICS[metric]}: architectures' means span {spread['architectures_max_minus_min']:.4g} (max - min); "
                     f"two seeds of the same architecture differ by {spread['seeds_mean_abs_difference']:.4g} on average.")
    by_id = {r["id"]: r for r in rows}
    base = rows[0]
    lines += ["", "**Search picks vs base**, stand-alone (mean over seeds), and what each search did:", "",
              "| search run | pick (m_16 m_21 m_25 m_29) | cost / base | val loss | val mAP50 | val mAP50-95 | arch steps "
              "| first arch iteration / iterations | largest probability change |",
              "|---|---|---|---|---|---|---|---|---|"]
    entries: list[tuple[str, dict | None, dict | None]] = [("base", base, None)]
    for run, s in data["searches"].items():
        entries.append((run, by_id.get(arch_id(s["arch"])), s))
        if s["arch_warmup"] == "prior_art" and s.get("alpha_end"):  # what the prior art itself would have kept
            entries.append((f"{run}, argmax without a budget", by_id.get(arch_id(unconstrained_pick(s["alpha_end"]))), s))
    for label, r, s in entries:
        if r is None:
            continue
        cells = [_fmt(_mean([r["train"][seed][m] for seed in seeds if seed in r["train"]]), 3 if m == "loss" else 4) for m in METRICS]
        steps = sched = moved = ""
        if s is not None:
            steps = str(s["arch_steps"])
            sched = "-" if s["strategy"] == "spos" else f"{s['arch_schedule']['first_arch_iteration']} / {s['arch_schedule']['total_iterations']}"
            moved = _fmt(s["alpha_max_change"], 4) if s["alpha_max_change"] is not None else "(spos: no weights)"
        lines.append(f"| {label} | {' '.join(r['arch'].values())} | {r['cost_ratio']:.3f} | " + " | ".join(cells) + f" | {steps} | {sched} | {moved} |")
    return "\n".join(lines)


def report(config: dict, out: Path) -> str:
    study = Study(config, out)
    data = collect(study)
    corr = correlations(data)
    text = markdown(data, corr)
    write_json(out / "ranking.json", {**data, "correlations": corr})
    (out / "ranking.md").write_text(text + "\n")
    return text


# -- command line --------------------------------------------------------------------------------------------

def study_config(args: argparse.Namespace) -> dict:
    # relative to the repository (units run with it as their working folder): the report names no machine's path
    return {"data": os.path.relpath(Path(args.data).resolve(), ROOT), "img": args.img, "epochs": args.epochs, "search_epochs": args.search_epochs,
            "batch": args.batch, "width": args.width, "depth": args.depth, "workers": args.workers, "stratified": args.stratified,
            "rule_seed": args.rule_seed, "evaluations": args.evaluations, "strategies": args.strategies,
            "search_seeds": args.search_seeds, "train_seeds": args.train_seeds}


def load_or_save_config(args: argparse.Namespace, out: Path) -> dict:
    """The study's config.json: written once; a rerun must agree on everything but the seeds and strategies."""
    path = out / "config.json"
    config = study_config(args)
    if path.is_file():
        saved = read_json(path)
        differ = [k for k in STUDY_KEYS if saved.get(k) != config[k]]
        if differ:
            raise SystemExit(f"{out} holds a study with other settings ({', '.join(f'{k}: {saved.get(k)} here {config[k]}' for k in differ)}); "
                             "use another --out or the same settings")
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, config)
    return config


def reuse_standalone(published: Path, config: dict, out: Path) -> None:
    """Write the stand-alone ('train') units of a published ranking.json into this study, when the recipe matches."""
    data = read_json(published)
    same = ("data", "img", "epochs", "batch", "width", "depth", "workers")
    if any(data["config"].get(k) != config.get(k) for k in same):
        raise SystemExit(f"{published}: its stand-alone recipe {[data['config'].get(k) for k in same]} differs from this study's")
    written = 0
    for row in data["rows"]:
        for seed, unit in row.get("train", {}).items():
            path = unit_file(out, "train", f"{row['id']}_s{seed}")
            if not path.is_file():
                write_json(path, unit)
                written += 1
    print(f"reused {written} stand-alone units from {published}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "runs" / "ranking"), help="study folder (units, runs, logs, report)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "coco128" / "dataset.yaml"))
    parser.add_argument("--img", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=20, help="stand-alone training epochs")
    parser.add_argument("--search-epochs", type=int, default=20, help="supernet training epochs")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--depth", type=float, default=0.33)
    parser.add_argument("--workers", type=int, default=1, help="data loader workers per unit")
    parser.add_argument("--stratified", type=int, default=4, help="random architectures, one per cost band")
    parser.add_argument("--rule-seed", type=int, default=0, help="seed of the random draw of the stratified architectures")
    parser.add_argument("--evaluations", type=int, default=8, help="spos: architectures scored by its evolution")
    parser.add_argument("--strategies", nargs="+", default=list(SEARCHES), choices=list(SEARCHES))
    parser.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="units run at the same time (one torch thread each)")
    parser.add_argument("--report-only", action="store_true", help="only build the tables from the finished units")
    parser.add_argument("--reuse-standalone", metavar="RANKING_JSON",
                        help="take the stand-alone units of a published study (its ranking.json) when its config matches: "
                             "stand-alone training does not depend on the search, so a study of a changed search reuses them")
    parser.add_argument("--unit", nargs=2, metavar=("KIND", "NAME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = Path(args.out).resolve()
    if args.unit:
        run_unit(read_json(out / "config.json"), out, Unit(*args.unit))
        return 0
    config = load_or_save_config(args, out)
    if args.reuse_standalone:
        reuse_standalone(Path(args.reuse_standalone), config, out)
    if not args.report_only:
        drive(config, out, args.jobs)
    print(report(config, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
