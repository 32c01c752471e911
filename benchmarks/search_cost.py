"""What the search costs next to plain training of the base network (issue 4's targets).

Part 1, training step: time and peak memory of one training step of the supernet under each strategy,
divided by those of the plain base network (yolov4-p5 at the same width/depth), measured in the same run.
Every configuration runs in a fresh subprocess (peak RSS is per process), in interleaved rounds so that
load drifting on a shared machine hits every configuration alike; times are medians over all steps.
For the gradient strategies the architecture step is timed on its own and also amortised the way a
default search takes it (after the warm-up of 25 % of the iterations, one step every 4 iterations: 0.75 / 4 of them).

Part 2, whole search: wall time of a default search per strategy on a dataset, divided by the wall time of
training the base network for the same epochs with the same sizes (evaluating once at the end, as the
search does).

    .venv/bin/python benchmarks/search_cost.py                       # both parts (long on a CPU)
    .venv/bin/python benchmarks/search_cost.py --part step --rounds 3 --steps 4
    .venv/bin/python benchmarks/search_cost.py --part search --data ../shared/datasets/coco128/dataset.yaml
    .venv/bin/python benchmarks/search_cost.py --part sweep --imgs 256 320 416 --widths 0.25 0.5 --threads 1

Part 3 (sweep): part 1's ratios at every image size x width, to show how they grow with the network's size.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the workers import torch after choosing their thread count
    import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = ("plain", "proxyless", "darts", "spos")
# the default search's share of iterations with an architecture step: after the warm-up, one every ARCH_STEP_EVERY_MAX
# (the held-out part for architecture steps is a tenth of the train split: its one pass per epoch comes less often)
AMORTISED_ARCH_SHARE = (1 - 0.25) / 4


# -- part 1: one configuration, in its own process ------------------------------------------------------

def portable(value: Any) -> Any:
    """A JSON-like value with this machine's paths written relative to the repository (a committed result must
    not name the folders of the machine it ran on): <repo>/x -> x, <repo's parent>/x -> ../x."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(item) for item in value]
    if isinstance(value, str):
        return value.replace(f"{ROOT}/", "").replace(f"{ROOT.parent}/", "../")
    return value


def _current_rss_mb() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synthetic_batch(batch: int, img: int, seed: int = 1) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Seeded random images (floats in [0, 1]) and about 7 boxes per image (as in COCO): (images, targets in YOLO rows)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, img, img, generator=gen)
    rows = []
    for i in range(batch):
        for _ in range(7):
            cx, cy = torch.rand(2, generator=gen).tolist()
            w, h = (0.05 + 0.4 * torch.rand(2, generator=gen)).tolist()
            rows.append([i, float(torch.randint(0, 80, (1,), generator=gen)), cx, cy, w, h])
    return images, torch.tensor(rows)


def step_worker(config: str, width: float, depth: float, img: int, batch: int, steps: int, threads: int | None,
                clock: str = "wall", budget: float | None = None) -> dict:
    """`clock` "cpu" times the process's CPU time (time.process_time) instead of the wall clock: with one torch
    thread it is the step's own compute, much less disturbed by other jobs on a busy machine than wall time.
    `budget`: x the base's FLOPs (None: the default, 1.0; 2.0 admits every candidate)."""
    import torch

    from autonn_nas.models.yolo import build_model
    from autonn_nas.search.cost import counted_cost_table, resolve_budget
    from autonn_nas.search.strategies import strategy_class
    from autonn_nas.train.hyp import merge_hyp
    from autonn_nas.train.loss import DetectionLoss, scaled_loss_gains
    from autonn_nas.train.optim import build_optimizer

    if threads:
        torch.set_num_threads(threads)
    baseline_mb = _current_rss_mb()  # python + torch, before any model: subtracted for the training-memory ratio
    torch.manual_seed(0)
    cfg = "yolov4-p5.yaml" if config == "plain" else "yolov4-p5-search.yaml"
    model = build_model(cfg, nc=80, width=width, depth=depth).train()
    hyp = merge_hyp()
    loss_fn = DetectionLoss(model, scaled_loss_gains(hyp, 80, 3, img))
    optimizer = build_optimizer(model, hyp, batch)
    strategy = None
    if config != "plain":
        table = counted_cost_table(model, img, "flops")
        strategy = strategy_class(config)(model, loss_fn, table, resolve_budget(table, budget), seed=0)
        strategy.set_arch_lr(1e-3)
    images, targets = synthetic_batch(batch, img)

    def weight_step() -> None:
        if strategy is not None:
            strategy.prepare_weight_step()
        loss, _ = loss_fn(model(images), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def arch_step() -> None:
        if strategy is not None and strategy.alpha is not None:
            strategy.arch_step(images, targets)

    now = time.process_time if clock == "cpu" else time.perf_counter
    weight_times, arch_times = [], []
    for i in range(steps + 1):  # the first step of each kind is a warm-up
        start = now()
        weight_step()
        if i:
            weight_times.append(now() - start)
        if strategy is not None and strategy.alpha is not None:
            start = now()
            arch_step()
            if i:
                arch_times.append(now() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    return {"config": config, "weight_step_s": weight_times, "arch_step_s": arch_times, "peak_rss_mb": peak_mb, "training_mb": peak_mb - baseline_mb,
            "params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads()}


def worker_command(config: str, args: argparse.Namespace, budget: float | None = None) -> list[str]:
    """The command line of one step-part worker (a fresh process) for `config`."""
    cmd = [sys.executable, __file__, "--step-worker", config, "--width", str(args.width), "--depth", str(args.depth),
           "--img", str(args.img), "--batch", str(args.batch), "--steps", str(args.steps), "--clock", args.clock]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if budget is not None:
        cmd += ["--budget", str(budget)]
    return cmd


def run_rounds(commands: dict[str, list[str]], rounds: int) -> dict[str, dict]:
    """Every command once per round, in order, each in a fresh process that prints step_worker's JSON as its last
    line; interleaved so that load drifting on a shared machine hits every configuration alike. Returns the samples
    of all rounds per configuration."""
    results: dict[str, dict] = {c: {"weight_step_s": [], "arch_step_s": [], "peak_rss_mb": [], "training_mb": []} for c in commands}
    for round_index in range(rounds):
        for config, cmd in commands.items():
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
            data = json.loads(out.strip().splitlines()[-1])
            for key in ("weight_step_s", "arch_step_s"):
                results[config][key] += data[key]
            results[config]["peak_rss_mb"].append(data["peak_rss_mb"])
            results[config]["training_mb"].append(data["training_mb"])
            results[config]["params"] = data["params"]
            results[config]["threads"] = data["threads"]
            print(f"round {round_index + 1}/{rounds} {config}: weight step {statistics.median(data['weight_step_s']):.3f} s, "
                  f"peak RSS {data['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    return results


def summarise(results: dict[str, dict], plain: str = "plain") -> dict:
    """Medians per configuration and their ratios to the `plain` configuration's. An iteration is one weight step
    plus its architecture steps: AMORTISED_ARCH_SHARE of one (the default schedule) or one (one to one)."""
    summary = {}
    plain_step = statistics.median(results[plain]["weight_step_s"])
    plain_mem = statistics.median(results[plain]["peak_rss_mb"])
    plain_training_mem = statistics.median(results[plain]["training_mb"])
    for config, r in results.items():
        step = statistics.median(r["weight_step_s"])
        arch = statistics.median(r["arch_step_s"]) if r["arch_step_s"] else 0.0
        mem = statistics.median(r["peak_rss_mb"])
        training_mem = statistics.median(r["training_mb"])
        summary[config] = {
            "params": r["params"], "weight_step_s": step, "arch_step_s": arch or None, "peak_rss_mb": mem,
            "step_time_ratio": step / plain_step, "amortised_iteration_ratio": (step + AMORTISED_ARCH_SHARE * arch) / plain_step,
            "one_to_one_iteration_ratio": (step + arch) / plain_step,
            "arch_step_ratio": arch / plain_step if arch else None, "memory_ratio": mem / plain_mem,
            "training_mb": training_mem, "training_memory_ratio": training_mem / plain_training_mem,
            "samples": len(r["weight_step_s"]), "threads": r.get("threads"),
        }
    return summary


def run_step_part(args: argparse.Namespace) -> dict:
    return summarise(run_rounds({config: worker_command(config, args) for config in CONFIGS}, args.rounds))


# -- part 2: whole searches against plain training ------------------------------------------------------

def run_search_part(args: argparse.Namespace) -> dict:
    from autonn_nas.search.runner import run_search
    from autonn_nas.search.settings import SearchSettings
    from autonn_nas.train.settings import TrainSettings
    from autonn_nas.train.trainer import run_training

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    sizes = dict(data=args.data, epochs=args.epochs, img_size=args.img, batch_size=args.batch, width=args.width, depth=args.depth,
                 device="cpu", workers=args.workers, seed=0, progress=False)
    runs: dict[str, list[dict]] = {"plain": [], **{strategy: [] for strategy in args.strategies}}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # interleaved, so load drifting on a shared machine hits every run alike
            start = time.perf_counter()
            run_training(TrainSettings(out=f"{tmp}/train{repeat}", eval_interval=args.epochs, **sizes))
            runs["plain"].append({"search_s": time.perf_counter() - start})
            print(f"repeat {repeat + 1}/{args.repeats} plain training: {runs['plain'][-1]['search_s']:.1f} s", file=sys.stderr)
            for strategy in args.strategies:
                start = time.perf_counter()
                result = run_search(SearchSettings(out=f"{tmp}/{strategy}{repeat}", strategy=strategy, **sizes))
                seconds = time.perf_counter() - start
                report = json.loads(result.report.read_text())
                runs[strategy].append({"search_s": seconds, "training_s": report["seconds"]["training"], "final_s": report["seconds"]["final"],
                                       "architecture": str(result.arch), "map50": result.metrics["map50"], "base_map50": result.metrics["base_map50"]})
                print(f"repeat {repeat + 1}/{args.repeats} {strategy}: {seconds:.1f} s", file=sys.stderr)
    train_s = statistics.median(r["search_s"] for r in runs["plain"])
    results: dict = {"plain_training_s": train_s, "repeats": args.repeats, "plain_runs_s": [r["search_s"] for r in runs["plain"]]}
    for strategy in args.strategies:
        rows = runs[strategy]
        median = {key: statistics.median(r[key] for r in rows) for key in ("search_s", "training_s", "final_s", "map50", "base_map50")}
        results[strategy] = {**median, "ratio": median["search_s"] / train_s, "runs_s": [r["search_s"] for r in rows],
                             "architecture": rows[-1]["architecture"], "architectures": sorted({r["architecture"] for r in rows})}
    return results


# -- part 3: part 1 over image sizes and widths --------------------------------------------------------

def run_sweep_part(args: argparse.Namespace) -> list[dict]:
    rows = []
    for img in args.imgs:
        for width in args.widths:
            print(f"sweep: {img} px, width {width}", file=sys.stderr)
            summary = run_step_part(argparse.Namespace(**{**vars(args), "img": img, "width": width}))
            rows.append({"img": img, "width": width, "configs": summary})
    return rows


def sweep_markdown(rows: list[dict]) -> str:
    """Per strategy: weight step / plain (amortised iteration / plain) and training memory above the torch
    import / plain (whole peak RSS / plain)."""
    strategies = [c for c in CONFIGS if c != "plain"]
    lines = ["| img | width | plain params | plain step (s) | plain peak RSS above torch (MB) | "
             + " | ".join(f"{c} time / plain | {c} memory / plain" for c in strategies) + " |",
             "|---|---|---|---|---|" + "---|---|" * len(strategies)]
    for row in rows:
        plain = row["configs"]["plain"]
        cells = []
        for c in strategies:
            r = row["configs"][c]
            time_cell = f"{r['step_time_ratio']:.2f}" + (f" ({r['amortised_iteration_ratio']:.2f})" if r["arch_step_ratio"] else "")
            cells.append(f"{time_cell} | {r['training_memory_ratio']:.2f} ({r['memory_ratio']:.2f})")
        lines.append(f"| {row['img']} | {row['width']} | {plain['params']:,} | {plain['weight_step_s']:.3f} | {plain['training_mb']:.0f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(step: dict | None, search: dict | None) -> str:
    lines = []
    if step:
        lines += ["| configuration | params | weight step (s) | / plain | arch step / plain | amortised iteration / plain | peak RSS (MB) "
                  "| / plain | peak RSS above torch import (MB) | / plain |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for config, r in step.items():
            arch = f"{r['arch_step_ratio']:.2f}" if r["arch_step_ratio"] else "-"
            lines.append(f"| {config} | {r['params']:,} | {r['weight_step_s']:.3f} | {r['step_time_ratio']:.2f} | {arch} | "
                         f"{r['amortised_iteration_ratio']:.2f} | {r['peak_rss_mb']:.0f} | {r['memory_ratio']:.2f} | {r['training_mb']:.0f} | "
                         f"{r['training_memory_ratio']:.2f} |")
    if search:
        lines += ["", f"| run (median of {search['repeats']}) | wall time (s) | / plain training | supernet epochs (s) "
                      "| derivation + evaluation (s) | architecture (last run) |",
                  "|---|---|---|---|---|---|", f"| plain training | {search['plain_training_s']:.1f} | 1.00 | | | |"]
        for strategy, r in search.items():
            if isinstance(r, dict):
                lines.append(f"| {strategy} search | {r['search_s']:.1f} | {r['ratio']:.2f} | {r['training_s']:.1f} | {r['final_s']:.1f} "
                             f"| {r['architecture']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("step", "search", "both", "sweep"), default="both")
    parser.add_argument("--imgs", type=int, nargs="+", default=[256, 320, 416], help="sweep: image sizes")
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5], help="sweep: width multiples")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--depth", type=float, default=0.33)
    parser.add_argument("--img", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the configurations")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="step part: time steps by the wall clock or by the process's CPU time (use cpu with --threads 1 on a busy machine)")
    parser.add_argument("--threads", type=int, help="torch threads (step workers and whole runs; default: torch's). On a shared machine use 1")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "coco128" / "dataset.yaml"),
                        help="default: ../shared/datasets/coco128 beside the repository")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each whole search and of the plain training")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="search part: interleaved repeats of every run; medians are reported")
    parser.add_argument("--strategies", nargs="+", default=["proxyless", "darts", "spos"])
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--step-worker", help=argparse.SUPPRESS)
    parser.add_argument("--budget", type=float, help=argparse.SUPPRESS)  # step worker: x the base's FLOPs (default 1.0)
    args = parser.parse_args()
    if args.step_worker:
        print(json.dumps(step_worker(args.step_worker, args.width, args.depth, args.img, args.batch, args.steps, args.threads,
                                     args.clock, args.budget)))
        return 0
    if args.part == "sweep":
        rows = run_sweep_part(args)
        if args.json:
            Path(args.json).write_text(json.dumps(portable({"sweep": rows, "args": vars(args)}), indent=2) + "\n")
        print(sweep_markdown(rows))
        return 0
    step = run_step_part(args) if args.part in ("step", "both") else None
    search = run_search_part(args) if args.part in ("search", "both") else None
    if args.json:
        Path(args.json).write_text(json.dumps(portable({"step": step, "search": search, "args": vars(args)}), indent=2) + "\n")
    print(markdown(step, search))
    return 0


if __name__ == "__main__":
    sys.exit(main())
