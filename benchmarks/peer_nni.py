"""Side by side with Microsoft NNI's one-shot strategies (issue 19): step cost and planted recovery.

A user who does not take autonn-nas would wire the same supernet into NNI 3.0's one-shot NAS. This script does
that wiring and measures NNI's Proxyless, DARTS and RandomOneShot next to autonn-nas's proxyless, darts and spos:

- NeckSpace: an NNI ModelSpace around the project's supernet whose four MBottleneckCSP2 blocks become
  LayerChoices (labels m_16 ...) over the same six candidate modules, with their weights; each sits in a small
  wrapper that keeps the layer's .i/.f routing attributes, which Model.forward reads.
- ObjectiveModule: a Lightning module around the project's objective (the detection loss, or the planted
  benchmark's teacher distillation) and the project's optimizer (and, for searches, its lr schedule).
- NNI's strategy turns the space into its supernet (strategy.mutate_model) and wraps the Lightning module in
  its one-shot module (configure_oneshot_module), which a Lightning Trainer fits: NNI's own training loop.

Parts:
- cost: search_cost.py's step part (width 0.25, depth 0.33, 320 px, batch 8, nc 80, one thread, CPU clock), every
  configuration in a fresh process, interleaved rounds, medians: plain, autonn-nas's three strategies at the
  default budget (their usual run: no costlier than the base, so darts/proxyless compare the three 3x3
  candidates) and at budget 2 (all six candidates, NNI's space), and NNI's three. NNI's iteration is timed
  between Lightning's on_train_batch_start and on_train_batch_end; its architecture step is the median
  iteration minus the median weight-only iteration of a first epoch run as NNI's warm-up (warmup_epochs=1).
- quality: planted.py's tasks (planted architectures x seeds, same teacher, data split, weights and recipe),
  each NNI unit a subprocess writing <out>/units/<unit>.json; autonn-nas's units run through planted.py into
  the same folder. NNI runs one architecture step per weight step (its schedule), its arch learning rate set
  by the project's rule for the number of steps (1 / steps, within 1e-3..5e-2; NNI's 3e-4 default would move
  a logit by under 0.05 in these runs). What NNI ships is its export(); for RandomOneShot, whose export is a
  random sample by design, the table also scores its trained supernet with autonn-nas's spos scorer.

Runs in its own virtual environment (`make peer-venv`: .venv-peer with nni, pytorch-lightning, the project);
without nni it says so and exits 0.

    make peer-bench                                                  # both parts, as below
    OMP_NUM_THREADS=1 nice -n 19 .venv-peer/bin/python benchmarks/peer_nni.py --part cost --json runs/peer/cost.json
    OMP_NUM_THREADS=1 nice -n 19 .venv-peer/bin/python benchmarks/peer_nni.py --part quality --out runs/peer --jobs 1
    .venv-peer/bin/python benchmarks/peer_nni.py --part quality --out runs/peer --report-only
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import planted  # noqa: E402  (benchmarks/ beside this file)
import search_cost  # noqa: E402

NNI_STRATEGIES = {"nni-proxyless": "Proxyless", "nni-darts": "DARTS", "nni-random": "RandomOneShot"}
OURS = ("proxyless", "darts", "spos")
PEER_OF = dict(zip(OURS, NNI_STRATEGIES))  # autonn-nas strategy -> its NNI counterpart
ALL_CANDIDATES_BUDGET = 2.0  # x the base's FLOPs: admits every candidate (the most a 5x5 block costs is within it)


def missing_peer() -> str | None:
    """Why the peer cannot run here (one line), or None when nni and pytorch-lightning import."""
    for module, package in (("nni", "nni"), ("pytorch_lightning", "pytorch-lightning")):
        if importlib.util.find_spec(module) is None:
            return (f"peer_nni: skipped, {package} is not installed in {sys.executable} "
                    "(make peer-venv creates .venv-peer with it; see benchmarks/requirements-peer.txt)")
    return None


# -- the wiring --------------------------------------------------------------------------------------------

def _wiring() -> dict[str, Any]:
    """The NNI-dependent classes, built on first use so this file imports without nni."""
    import torch
    from nni.nas.evaluator.pytorch import LightningModule
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace
    from torch import nn

    from autonn_nas.models.choice import searchable_blocks
    from autonn_nas.train.epoch import images_to_input

    class Routed(nn.Module):
        """Carries a replaced layer's routing attributes (Model.forward reads .i and .f of every layer) around the
        LayerChoice, which NNI's mutation then replaces by its own supernet module inside this wrapper."""

        def __init__(self, choice: nn.Module, layer: nn.Module):
            super().__init__()
            self.choice = choice
            for key in ("i", "f", "type", "np", "n", "args"):
                setattr(self, key, getattr(layer, key))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.choice(x)

    class NeckSpace(ModelSpace):
        """The project's supernet with each searchable block as an NNI LayerChoice over the block's candidate
        modules (the same module objects, so their weights are the supernet's). `restore()` puts the original
        blocks back, whose candidates NNI has trained in place."""

        def __init__(self, model: nn.Module):
            super().__init__()
            self.net = model
            self.original = dict(searchable_blocks(model))  # a plain dict: not registered twice as submodules
            for label, block in self.original.items():
                model.model[block.i] = Routed(LayerChoice(dict(block.candidates.items()), label=label), block)

        def forward(self, x: torch.Tensor) -> Any:
            return self.net(x)

        def restore(self) -> nn.Module:
            for block in self.original.values():
                self.net.model[block.i] = block
            return self.net

    class ObjectiveModule(LightningModule):
        """One training step = the project's objective on a batch of the project's loaders ((uint8 images,
        targets, ...) or synthetic float images); the project's optimizer; its lr schedule when given."""

        def __init__(self, objective: Any, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
                     make_schedule: Callable[[torch.optim.Optimizer], Any] | None = None,
                     on_epoch: Callable[[int], None] | None = None):
            super().__init__()
            self.objective, self.make_optimizer, self.make_schedule, self.on_epoch = objective, make_optimizer, make_schedule, on_epoch
            self.schedule = None
            self.iterations = 0

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            images, targets = batch[0], batch[1]
            if images.dtype == torch.uint8:
                images = images_to_input(images, self.device)
            loss, _items = self.objective(self.model(images), targets, images)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            optimizer = self.make_optimizer(self.model)
            if self.make_schedule is not None:
                self.schedule = self.make_schedule(optimizer)
            return optimizer

        def on_train_epoch_start(self) -> None:
            if self.on_epoch is not None:
                self.on_epoch(self.trainer.current_epoch)

        def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
            if self.schedule is not None:  # per weight iteration, as the project's loop steps it
                self.schedule.step(self.iterations)
            self.iterations += 1

    return {"NeckSpace": NeckSpace, "ObjectiveModule": ObjectiveModule}


def nni_strategy(name: str, arc_learning_rate: float = 3e-4, warmup_epochs: int = 0, gradient_clip_val: float | None = None) -> Any:
    import nni.nas.strategy as strategies

    cls = getattr(strategies, NNI_STRATEGIES[name])
    if name == "nni-random":
        return cls()
    return cls(arc_learning_rate=arc_learning_rate, warmup_epochs=warmup_epochs, gradient_clip_val=gradient_clip_val)


def trainer(epochs: int, callbacks: list | None = None, gradient_clip_val: float | None = None) -> Any:
    """A plain CPU Lightning Trainer: no logger, checkpoints, progress bar or validation loop."""
    import pytorch_lightning as pl

    return pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, callbacks=callbacks or [],
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, limit_val_batches=0, gradient_clip_val=gradient_clip_val)


def fit(name: str, space: Any, module: Any, strategy: Any, train: Any, holdout: Any, epochs: int,
        callbacks: list | None = None, gradient_clip_val: float | None = None) -> Any:
    """What NNI's one-shot experiment does with a Lightning evaluator: the strategy makes the space its supernet
    and wraps the module, and Lightning fits it on the strategy's combination of the two loaders."""
    strategy.mutate_model(space)
    module.set_model(space)
    oneshot = strategy.configure_oneshot_module(module)
    loaders = strategy.train_dataloader(lambda: train, lambda: holdout)
    # RandomOneShot uses automatic optimisation (Lightning clips); NNI's DARTS / Proxyless clip in their own step
    clip = gradient_clip_val if name == "nni-random" else None
    trainer(epochs, callbacks, clip).fit(oneshot, train_dataloaders=loaders)
    return oneshot


# -- part 1: step cost ---------------------------------------------------------------------------------------

def cost_worker(name: str, width: float, depth: float, img: int, batch: int, steps: int, threads: int | None, clock: str) -> dict:
    """search_cost.step_worker's figures for an NNI strategy on the same supernet, batch and loss."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader

    from autonn_nas.models.yolo import build_model
    from autonn_nas.search.objective import DetectionObjective
    from autonn_nas.train.hyp import merge_hyp
    from autonn_nas.train.loss import DetectionLoss, scaled_loss_gains
    from autonn_nas.train.optim import build_optimizer

    wiring = _wiring()
    if threads:
        torch.set_num_threads(threads)
    baseline_mb = search_cost._current_rss_mb()  # python + torch + nni + lightning, before any model
    torch.manual_seed(0)
    model = build_model("yolov4-p5-search.yaml", nc=80, width=width, depth=depth).train()
    hyp = merge_hyp()
    loss_fn = DetectionLoss(model, scaled_loss_gains(hyp, 80, 3, img))
    params = sum(p.numel() for p in model.parameters())
    images, targets = search_cost.synthetic_batch(batch, img)
    loader = DataLoader([(images, targets)] * (steps + 1), batch_size=None)  # the same batch each step, as search_cost
    now = time.process_time if clock == "cpu" else time.perf_counter
    times: dict[int, list[float]] = {}

    class BatchTimer(pl.Callback):
        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, batch_idx: int) -> None:
            self.started = now()

        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            if batch_idx:  # the first of each epoch warms up
                times.setdefault(trainer.current_epoch, []).append(now() - self.started)

    has_arch = name != "nni-random"
    # DARTS / Proxyless: epoch 0 is NNI's warm-up (weight steps only), epoch 1 adds an architecture step to each
    strategy = nni_strategy(name, arc_learning_rate=1e-3, warmup_epochs=1 if has_arch else 0)
    module = wiring["ObjectiveModule"](DetectionObjective(loss_fn), lambda m: build_optimizer(m, hyp, batch))
    space = wiring["NeckSpace"](model)
    oneshot = fit(name, space, module, strategy, loader, loader, 2 if has_arch else 1, [BatchTimer()])
    weight = times[0]
    arch = []
    if has_arch:
        median_weight = sorted(weight)[len(weight) // 2]
        arch = [t - median_weight for t in times[1]]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    arch_params = sum(p.numel() for p in oneshot.parameters()) - params
    return {"config": name, "weight_step_s": weight, "arch_step_s": arch, "peak_rss_mb": peak_mb, "training_mb": peak_mb - baseline_mb,
            "params": params, "arch_params": arch_params, "threads": torch.get_num_threads()}


def cost_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Configuration -> its worker's command: plain, ours at the default budget and at all six candidates, NNI's."""
    commands = {"plain": search_cost.worker_command("plain", args)}
    commands.update({c: search_cost.worker_command(c, args) for c in OURS})
    commands.update({f"{c}, all six": search_cost.worker_command(c, args, ALL_CANDIDATES_BUDGET) for c in OURS})
    for name in NNI_STRATEGIES:
        cmd = [sys.executable, __file__, "--cost-worker", name, "--width", str(args.width), "--depth", str(args.depth),
               "--img", str(args.img), "--batch", str(args.batch), "--steps", str(args.steps), "--clock", args.clock]
        commands[name] = cmd + (["--threads", str(args.threads)] if args.threads else [])
    return commands


def cost_markdown(summary: dict) -> str:
    lines = ["| configuration | weight step / plain | arch step (s) | iteration / plain, default schedule | iteration / plain, one to one | "
             "memory above imports / plain | peak RSS / plain |", "|---|---|---|---|---|---|---|"]
    for config, r in summary.items():
        arch = f"{r['arch_step_s']:.2f}" if r["arch_step_s"] else "-"
        lines.append(f"| {config} | {r['step_time_ratio']:.2f} | {arch} | {r['amortised_iteration_ratio']:.2f} | "
                     f"{r['one_to_one_iteration_ratio']:.2f} | {r['training_memory_ratio']:.2f} | {r['memory_ratio']:.2f} |")
    plain = summary["plain"]
    lines.append(f"\nplain: weight step {plain['weight_step_s']:.3f} s, {plain['training_mb']:.0f} MB above imports, "
                 f"{plain['params']:,} parameters; supernet {summary['proxyless']['params']:,}")
    return "\n".join(lines)


# -- part 2: planted recovery --------------------------------------------------------------------------------

def run_unit(name: str, planted_names: tuple[str, ...], seed: int, args: argparse.Namespace, unit_dir: Path) -> dict[str, Any]:
    """One planted task through an NNI strategy: planted.py's teacher, data split, starting weights, objective,
    optimizer and lr schedule (the project's search setup), NNI's supernet, loop, estimator and export."""
    import torch

    from autonn_nas.search.loop import arch_learning_rate
    from autonn_nas.search.runner import SearchRun
    from autonn_nas.train.epoch import MAX_GRAD_NORM
    from autonn_nas.train.optim import NOMINAL_BATCH, build_optimizer
    from autonn_nas.train.schedule import WarmupCosineSchedule
    from autonn_nas.train.trainer import set_data_epoch

    wiring = _wiring()
    arch = planted.planted_arch(planted_names)
    unit_dir.mkdir(parents=True, exist_ok=True)
    teacher = planted.make_teacher(arch, args.data, unit_dir / "teacher.pt", args.img, args.width, args.depth, seed=1000 + seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    # spos: the project's strategy object is used only to score RandomOneShot's supernet afterwards
    run = SearchRun(planted.search_settings("spos", seed, teacher, unit_dir, args))
    run._setup()  # the search's own setup: data split, supernet warm-started from the teacher, objective, loaders
    s, hyp = run.settings, run.hyp
    train, holdout = run.train_loader.loader, run.holdout_loader.loader
    iterations = s.epochs * len(train)  # NNI: one architecture step per weight step
    module = wiring["ObjectiveModule"](
        run.objective, lambda m: build_optimizer(m, hyp, run.batch_size),
        lambda optimizer: WarmupCosineSchedule(optimizer, hyp, s.epochs, len(train), run.batch_size, NOMINAL_BATCH),
        lambda epoch: set_data_epoch(run.data.train_part, train, epoch))
    space = wiring["NeckSpace"](run.model)
    strategy = nni_strategy(name, arc_learning_rate=arch_learning_rate(iterations), gradient_clip_val=MAX_GRAD_NORM)
    torch.manual_seed(seed)
    training_started = time.perf_counter()
    oneshot = fit(name, space, module, strategy, train, holdout, s.epochs, gradient_clip_val=MAX_GRAD_NORM)
    training_seconds = time.perf_counter() - training_started
    exported = {label: str(choice) for label, choice in oneshot.export().items()}
    result: dict[str, Any] = {"strategy": name, "planted": arch, "seed": seed, "shipped": exported, "searched": exported,
                              "decision": "NNI export", "confirmation": None, "recovered": planted.recovery(arch, exported),
                              "arch_lr": arch_learning_rate(iterations) if name != "nni-random" else None, "iterations": iterations,
                              "phase_seconds": {"training": training_seconds}}
    result["recovered_searched"] = result["recovered"]
    if name != "nni-random":
        probs = {label: {str(k): float(v) for k, v in dist.items()} for label, dist in oneshot.export_probs().items()}
        argmax = {label: max(dist, key=dist.__getitem__) for label, dist in probs.items()}
        result.update(probabilities=probs, argmax=argmax, recovered_argmax=planted.recovery(arch, argmax))
    space.restore()
    if name == "nni-random":  # NNI's next step is a search of the trained supernet: here autonn-nas's spos scorer
        scored = dict(run.strategy.derive(run.evaluator()))
        result.update(scored=scored, recovered_scored=planted.recovery(arch, scored))
    seconds = time.perf_counter() - started
    result.update(seconds=seconds, cpu_minutes=seconds / 60.0, process_cpu_minutes=(time.process_time() - cpu_started) / 60.0)
    return result


def _unit_worker(args: argparse.Namespace) -> int:
    name, index, seed = args.unit.split(":")
    unit_dir = Path(args.out) / "units" / planted.unit_name(name, int(index), int(seed))
    result = run_unit(name, planted.PLANTED[int(index)], int(seed), args, unit_dir)
    (unit_dir.parent / f"{unit_dir.name}.json").write_text(json.dumps(result, indent=1))
    return 0


def quality_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Unit name -> command, interleaved by task so that a partial run has both tools on the same tasks."""
    task = planted.task_argv(args)
    commands = {}
    for seed in args.seeds:
        for index in args.planted:
            for strategy in args.strategies:
                script = __file__ if strategy in NNI_STRATEGIES else str(ROOT / "benchmarks" / "planted.py")
                commands[planted.unit_name(strategy, index, seed)] = [
                    sys.executable, script, "--out", str(args.out), *task, "--unit", f"{strategy}:{index}:{seed}"]
    return commands


def _share(units: list[dict], key: str) -> str:
    rec = [u[key] for u in units if key in u]
    if not rec:
        return "-"
    act, both = sum(r["activation"] for r in rec), sum(r["both"] for r in rec)
    k5, k5_total = sum(r["kernel"] for r in rec), sum(r["k5_blocks"] for r in rec)
    blocks = 4 * len(rec)
    k5_share = f"{k5}/{k5_total} = {k5 / k5_total:.0%}" if k5_total else "-"
    return f"{act}/{blocks} = {act / blocks:.0%} | {k5_share} | {both}/{blocks} = {both / blocks:.0%}"


def quality_markdown(out: Path, strategies: list[str]) -> str:
    units = [json.loads(p.read_text()) for p in sorted((out / "units").glob("*.json"))]
    lines = ["| strategy | what is scored | units (seeds) | activation recovered | 5x5 recovered | both | CPU minutes per search (median, max) |",
             "|---|---|---|---|---|---|---|"]
    rows = {"recovered": "what it ships", "recovered_argmax": "argmax of its probabilities",
            "recovered_scored": "its trained supernet, autonn-nas's spos scoring"}
    for strategy in strategies:
        mine = [u for u in units if u["strategy"] == strategy]
        if not mine:
            continue
        minutes = sorted(u.get("process_cpu_minutes", u["cpu_minutes"]) for u in mine)
        seeds = ", ".join(str(x) for x in sorted({u["seed"] for u in mine}))
        for key, what in rows.items():
            if any(key in u for u in mine):
                lines.append(f"| {strategy} | {what} | {len(mine)} ({seeds}) | {_share(mine, key)} | {minutes[len(minutes) // 2]:.1f}, {minutes[-1]:.1f} |")
    lines += ["", "| unit | planted | shipped | NNI argmax / spos-scored |", "|---|---|---|---|"]
    for u in units:
        other = u.get("argmax") or u.get("scored")
        lines.append(f"| {u['strategy']} planted {planted.PLANTED.index(tuple(u['planted'].values()))} seed {u['seed']} | "
                     f"{' '.join(u['planted'].values())} | {' '.join(u['shipped'].values())} | {' '.join(other.values()) if other else '-'} |")
    text = "\n".join(lines) + "\n"
    (out / "peer_planted.md").write_text(text)
    return text


# -- command line --------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("cost", "quality", "both"), default="both")
    parser.add_argument("--out", default="runs/peer", help="quality: units and peer_planted.md go here")
    parser.add_argument("--json", help="cost: also write the figures here")
    # cost (search_cost.py's step part)
    parser.add_argument("--cost-img", dest="img_cost", type=int, default=320)
    parser.add_argument("--cost-batch", dest="batch_cost", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="cost: timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=3, help="cost: interleaved rounds over the configurations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    parser.add_argument("--cost-worker", help=argparse.SUPPRESS)
    # quality (planted.py's tasks)
    planted.add_task_arguments(parser)
    parser.add_argument("--strategies", nargs="+", default=[c for ours in OURS for c in (ours, PEER_OF[ours])])
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--unit", help=argparse.SUPPRESS)
    args = parser.parse_args()
    why = missing_peer()
    if why:
        print(why)
        return 0
    if args.cost_worker:  # worker processes are given --img/--batch by cost_commands
        print(json.dumps(cost_worker(args.cost_worker, args.width, args.depth, args.img, args.batch, args.steps, args.threads, args.clock)))
        return 0
    if args.unit:
        return _unit_worker(args)
    out = Path(args.out)
    if args.part in ("cost", "both") and not args.report_only:
        cost_args = argparse.Namespace(**{**vars(args), "img": args.img_cost, "batch": args.batch_cost})
        summary = search_cost.summarise(search_cost.run_rounds(cost_commands(cost_args), args.rounds))
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(search_cost.portable({"step": summary, "args": vars(cost_args)}), indent=2) + "\n")
        print(cost_markdown(summary), flush=True)
    if args.part in ("quality", "both"):
        if not args.report_only:
            planted.run_pending(out, quality_commands(args), args.jobs)
        print(quality_markdown(out, args.strategies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
