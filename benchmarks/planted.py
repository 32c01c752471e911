"""Planted-architecture benchmark (issue 12): does the search find an architecture that is best by
construction?

A task, for a planted architecture A* and a seed:
1. Teacher: the stand-alone network of A* (derive_yaml of the search space) with seeded random weights,
   its BatchNorm statistics estimated on the dataset's training images (so every layer sees normalised
   inputs, as in a trained network), saved as `teacher.pt` in bestmodel.pt's layout.
2. Search: the product's own search, `autonn-nas search --teacher teacher.pt --weights teacher.pt`: the
   objective is to match the teacher's head outputs on real images, and the supernet starts with every
   candidate of a block holding the teacher block's weights (3x3 kernels centred in the 5x5 candidates,
   5x5 kernels cropped to 3x3). The candidate of A* thus reproduces the teacher exactly and every other
   candidate differs in its activation or its kernel; the weights then train as in any search, every
   candidate getting closer to the teacher. Nothing tells the search which candidate is A*'s but the
   objective: it must find it with its own estimator, derivation and confirmation against the base.
3. Score: the architecture the search ships (after the confirmation against the base), block by block:
   the activation is recovered when it equals A*'s; where A* has a 5x5 kernel, the 5x5 kernel must be
   recovered too (a 5x5 candidate can imitate a 3x3 teacher exactly, a 3x3 cannot imitate a 5x5 one, so
   5x5 for a 3x3 teacher is not counted as an error). The budget admits every candidate (--budget 2):
   the benchmark measures the evidence, not the cost term.

Every unit (strategy x planted architecture x seed) runs as a subprocess with one torch thread, --jobs at a
time, and writes one JSON under <out>/units (skipped on a rerun); the report is <out>/planted.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/planted.py --out runs/planted            # 3 strategies x 5 x 2
    .venv/bin/python benchmarks/planted.py --out runs/planted --report-only                  # tables so far
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing the package pulls in torch
    from autonn_nas.search.settings import SearchSettings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEARCH_CFG = "yolov4-p5-search.yaml"
LABELS = ("m_16", "m_21", "m_25", "m_29")
# five planted architectures: uniform ones, and mixed ones with 5x5 kernels and the base's own candidate
PLANTED = [
    ("k3_relu", "k3_relu", "k3_relu", "k3_relu"),
    ("k3_leaky", "k3_leaky", "k3_leaky", "k3_leaky"),
    ("k5_relu", "k3_leaky", "k3_mish", "k5_leaky"),
    ("k3_leaky", "k5_mish", "k3_relu", "k5_relu"),
    ("k5_leaky", "k3_relu", "k5_mish", "k3_leaky"),
]


# the supernet starts at the teacher's weights: fine-tune them (the recipe's lr0 0.01 and warm-up bias lr 0.1 are
# for training from scratch, and scatter the teacher's function before the search can compare candidates)
FINE_TUNE = {"lr0": 0.0001, "warmup_bias_lr": 0.0001}


def planted_arch(names: tuple[str, ...]) -> dict[str, str]:
    return dict(zip(LABELS, names))


def make_teacher(arch: dict[str, str], data: str | Path, out: str | Path, img_size: int, width: float, depth: float,
                 seed: int, batch_size: int = 8) -> Path:
    """The stand-alone network of `arch`, random weights of `seed`, BN statistics from the train images; writes
    `out` (model_yaml, state_dict, arch, nc, names, img_size) and returns its path."""
    import torch

    from autonn_nas.data import YoloDataset, create_dataloader, load_dataset_config
    from autonn_nas.models.yolo import build_model, load_cfg
    from autonn_nas.search.bn_recalibration import recalibrate_bn
    from autonn_nas.search.derive import derive_yaml
    from autonn_nas.utils.files import atomic_torch_save

    config = load_dataset_config(data)
    search_cfg = load_cfg(SEARCH_CFG)
    search_cfg.update(nc=config.nc, width_multiple=width, depth_multiple=depth)
    torch.manual_seed(seed)
    teacher = build_model(derive_yaml(search_cfg, arch))
    images = YoloDataset(config.train, img_size, augment=False, nc=config.nc, names=config.names, seed=seed)
    loader = create_dataloader(images, batch_size=batch_size, shuffle=True, workers=0, seed=seed)
    recalibrate_bn(teacher, loader, len(loader), "cpu")  # every training image
    return atomic_torch_save(Path(out), {
        "model_yaml": teacher.yaml, "state_dict": teacher.state_dict(), "arch": dict(arch), "nc": config.nc,
        "names": list(config.names), "img_size": img_size, "note": f"planted teacher, random weights of seed {seed}",
    })


def recovery(planted: dict[str, str], shipped: dict[str, str]) -> dict[str, Any]:
    """Per block: activation recovered; 5x5 recovered where the planted block has a 5x5 kernel."""
    blocks = {}
    for label, truth in planted.items():
        got = shipped[label]
        activation = got.split("_")[1] == truth.split("_")[1]
        kernel = got.startswith("k5") if truth.startswith("k5") else True
        blocks[label] = {"planted": truth, "shipped": got, "activation": activation, "kernel": kernel}
    return {
        "blocks": blocks,
        "activation": sum(b["activation"] for b in blocks.values()),
        "kernel": sum(b["kernel"] for b in blocks.values() if b["planted"].startswith("k5")),
        "k5_blocks": sum(b["planted"].startswith("k5") for b in blocks.values()),
        "both": sum(b["activation"] and b["kernel"] for b in blocks.values()),
    }


def search_settings(strategy: str, seed: int, teacher: Path, unit_dir: Path, args: argparse.Namespace) -> "SearchSettings":
    """The search of one unit: the task's sizes, the teacher as objective and starting weights, no retrain."""
    from autonn_nas.search.settings import SearchSettings

    return SearchSettings(
        data=str(args.data), out=str(unit_dir / "search"), strategy=strategy, epochs=args.epochs, img_size=args.img,
        batch_size=args.batch, width=args.width, depth=args.depth, budget=args.budget, seed=seed, workers=0, device="cpu",
        holdout_fraction=args.holdout_fraction,
        teacher=str(teacher), weights=str(teacher), evaluations=args.evaluations, progress=False, hyp=json.loads(args.hyp) or None, retrain_epochs=0,
    )


def run_unit(strategy: str, planted: tuple[str, ...], seed: int, args: argparse.Namespace, unit_dir: Path) -> dict[str, Any]:
    from autonn_nas.search.runner import run_search

    arch = planted_arch(planted)
    unit_dir.mkdir(parents=True, exist_ok=True)
    teacher = make_teacher(arch, args.data, unit_dir / "teacher.pt", args.img, args.width, args.depth, seed=1000 + seed)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run_search(search_settings(strategy, seed, teacher, unit_dir, args))
    seconds = time.perf_counter() - started
    report = json.loads(result.report.read_text())
    decision = report["decision"]
    return {
        "strategy": strategy, "planted": arch, "seed": seed, "seconds": seconds, "cpu_minutes": seconds / 60.0,
        "process_cpu_minutes": (time.process_time() - cpu_started) / 60.0, "phase_seconds": report.get("seconds"),
        "shipped": dict(result.arch), "searched": decision["searched"], "decision": decision["shipped"],
        "confirmation": decision.get("confirmation"), "recovered": recovery(arch, dict(result.arch)),
        "recovered_searched": recovery(arch, decision["searched"]), "probabilities": report.get("probabilities"),
    }


def unit_name(strategy: str, index: int, seed: int) -> str:
    return f"{strategy}-planted{index}-seed{seed}"


def _worker(args: argparse.Namespace) -> int:
    strategy, index, seed = args.unit.split(":")
    planted = PLANTED[int(index)]
    unit_dir = Path(args.out) / "units" / unit_name(strategy, int(index), int(seed))
    result = run_unit(strategy, planted, int(seed), args, unit_dir)
    (unit_dir.parent / f"{unit_dir.name}.json").write_text(json.dumps(result, indent=1))
    return 0


def report(out: Path, strategies: list[str]) -> str:
    units = [json.loads(p.read_text()) for p in sorted((out / "units").glob("*.json"))]
    lines = ["# Planted-architecture benchmark", "",
             "| strategy | units | activation recovered | 5x5 recovered | both | searched (before confirmation): activation "
             "| shipped the base | CPU minutes per search (median, max) |",
             "|---|---|---|---|---|---|---|---|"]
    for strategy in strategies:
        mine = [u for u in units if u["strategy"] == strategy]
        if not mine:
            continue
        blocks = 4 * len(mine)
        act = sum(u["recovered"]["activation"] for u in mine)
        k5 = sum(u["recovered"]["kernel"] for u in mine)
        k5_total = sum(u["recovered"]["k5_blocks"] for u in mine)
        both = sum(u["recovered"]["both"] for u in mine)
        searched = sum(u["recovered_searched"]["activation"] for u in mine)
        base = sum(u["decision"] == "base" for u in mine)
        minutes = sorted(u["cpu_minutes"] for u in mine)
        median = minutes[len(minutes) // 2]
        lines.append(f"| {strategy} | {len(mine)} | {act}/{blocks} = {act / blocks:.0%} | {k5}/{k5_total} = {k5 / max(k5_total, 1):.0%} | "
                     f"{both}/{blocks} = {both / blocks:.0%} | {searched}/{blocks} = {searched / blocks:.0%} | {base}/{len(mine)} | "
                     f"{median:.1f}, {minutes[-1]:.1f} |")
    lines += ["", "| unit | planted | shipped | decision | confirmation (derived - base, interval) | minutes |", "|---|---|---|---|---|---|"]
    for u in units:
        c = u.get("confirmation")
        conf = f"{c['mean_difference']:+.4g} [{c['ci_low']:+.4g}, {c['ci_high']:+.4g}] on {c['images']} images" if c else "-"
        lines.append(f"| {u['strategy']} seed {u['seed']} | {' '.join(u['planted'].values())} | {' '.join(u['shipped'].values())} | "
                     f"{u['decision']} | {conf} | {u['cpu_minutes']:.1f} |")
    text = "\n".join(lines) + "\n"
    (out / "planted.md").write_text(text)
    return text


def add_task_arguments(parser: argparse.ArgumentParser) -> None:
    """The task's options (data, sizes, schedule, objective), shared by every tool that runs these tasks."""
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "coco128" / "dataset.yaml"))
    parser.add_argument("--planted", nargs="+", type=int, default=list(range(len(PLANTED))), help="indices into PLANTED")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--img", type=int, default=128)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--depth", type=float, default=0.33)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--holdout-fraction", type=float, default=0.4, help="of the train split: half for the search, half for the confirmation")
    parser.add_argument("--evaluations", type=int, default=60, help="spos: architectures scored")
    parser.add_argument("--hyp", default=json.dumps(FINE_TUNE), help="training hyperparameter overrides, as JSON")
    parser.add_argument("--jobs", type=int, default=2)


def task_argv(args: argparse.Namespace) -> list[str]:
    """add_task_arguments' options of `args` as a command line (what a unit's worker process is given)."""
    return ["--data", str(args.data), "--img", str(args.img), "--width", str(args.width), "--depth", str(args.depth),
            "--epochs", str(args.epochs), "--batch", str(args.batch), "--budget", str(args.budget),
            "--holdout-fraction", str(args.holdout_fraction), "--evaluations", str(args.evaluations), "--hyp", args.hyp]


def run_pending(out: Path, commands: dict[str, list[str]], jobs: int) -> None:
    """Run every unit (name -> command line) that has no <out>/units/<name>.json yet, `jobs` at a time, each with
    one torch thread and its output in <out>/units/<name>.log; the command writes the JSON when its unit is done."""
    running: list[subprocess.Popen] = []
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for name, cmd in commands.items():
        if (out / "units" / f"{name}.json").exists():
            continue
        while len(running) >= jobs:
            running = [p for p in running if p.poll() is None]
            time.sleep(1.0)
        log = out / "units" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        print(f"running {name}", flush=True)
        running.append(subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env))
    for p in running:
        p.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_task_arguments(parser)
    parser.add_argument("--out", default="runs/planted")
    parser.add_argument("--strategies", nargs="+", default=["proxyless", "darts", "spos"])
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--unit", help=argparse.SUPPRESS)  # worker mode: strategy:index:seed
    args = parser.parse_args()
    out = Path(args.out)
    if args.unit:
        return _worker(args)
    if not args.report_only:
        forwarded = [a for a in sys.argv[1:] if a != "--report-only"]
        run_pending(out, {unit_name(s, i, seed): [sys.executable, __file__, *forwarded, "--unit", f"{s}:{i}:{seed}"]
                          for s in args.strategies for i in args.planted for seed in args.seeds}, args.jobs)
    print(report(out, args.strategies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
