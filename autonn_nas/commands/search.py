"""`autonn-nas search --data D ...`: run a neck search and write the derived model and its report."""
from __future__ import annotations

import argparse

from autonn_nas.commands.options import add_img_size, add_run_folder, run_folder
from autonn_nas.search.settings import ARCH_WARMUPS, COST_MEASURES, LATENCY_DEVICES, STRATEGIES, SearchSettings
from autonn_nas.train.hyp import load_hyp_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = SearchSettings()
    parser.add_argument("--data", default="", help="YOLO dataset.yaml (required unless --resume, which reuses the run's)")
    parser.add_argument("--cfg", default=d.cfg, help=f"search YAML with MBottleneckCSP2 rows (default {d.cfg})")
    parser.add_argument("--strategy", choices=STRATEGIES, default=d.strategy, help=f"search strategy (default {d.strategy})")
    parser.add_argument("--epochs", type=int, help="supernet training epochs (default: 3 on CPU, 50 on CUDA)")
    parser.add_argument("--retrain-epochs", type=int, help="then fine-tune the shipped network from its inherited weights "
                                                           "for this many epochs (default: 1 on CPU, 50 on CUDA; 0: no retrain)")
    add_img_size(parser, "image size, a multiple of 32 (default: 256 on CPU, 640 on CUDA)", dest="img_size")
    parser.add_argument("--batch", "--batch-size", dest="batch_size", type=int,
                        help="global batch size (default: 8 on CPU; on CUDA 16 per GPU, halved on out-of-memory in a single process)")
    parser.add_argument("--width", type=float, help="width_multiple (default: 0.25 on CPU, the YAML's on CUDA)")
    parser.add_argument("--depth", type=float, help="depth_multiple (default: 0.33 on CPU, the YAML's on CUDA)")
    parser.add_argument("--budget", type=float, help="most the derived model may cost, relative to the base model (default 1.0)")
    parser.add_argument("--lightweight-level", type=int, help="TANGO lightweight_level 0..10: tightens the budget toward the cheapest architecture")
    parser.add_argument("--cost-measure", choices=COST_MEASURES, default=d.cost_measure, help=f"cost of an architecture (default {d.cost_measure})")
    parser.add_argument("--latency-table", help="JSON latency table of a target measured elsewhere (with --cost-measure latency)")
    parser.add_argument("--latency-device", choices=LATENCY_DEVICES,
                        help="measure latencies on this device instead of the search's (the kind of device the model is for)")
    parser.add_argument("--latency-cache", help="JSON file of the latencies measured here, reused by later runs (default: under $XDG_CACHE_HOME or ~/.cache)")
    parser.add_argument("--evaluations", type=int, help="spos: most architectures to score (default 100 on CPU, 200 on CUDA)")
    parser.add_argument("--holdout-fraction", type=float, default=d.holdout_fraction, help="share of the train split held out for architecture decisions")
    parser.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:N or N (default auto)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--workers", type=int, help="data loader workers (default 2 on CPU, 8 on CUDA)")
    parser.add_argument("--resume", action="store_true", help="continue a run from its last.pt: the one in --out (or "
                        "--project/--name), else the newest under --project")
    parser.add_argument("--weights", help="warm start: a Scaled-YOLOv4-layout state_dict of the base model, or a search's bestmodel.pt")
    parser.add_argument("--hyp", help="YAML of training hyperparameter overrides (keys of DEFAULT_HYP, e.g. lr0: 0.001)")
    parser.add_argument("--teacher", help="a checkpoint (bestmodel.pt, best.pt) whose head outputs the search matches instead of the labels (distillation)")
    parser.add_argument("--arch-warmup", choices=ARCH_WARMUPS, default=d.arch_warmup,
                        help="when architecture steps start: fraction (25%% of the run) or prior_art (max(3 epochs, 1000 "
                             "iterations), TANGO's earlier schedule, for comparison only)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars (there are none "
                        "when stderr is not a terminal: a line per phase instead)")
    add_run_folder(parser, "search", resumable=True)


def settings_from_args(args: argparse.Namespace) -> SearchSettings:
    names = set(SearchSettings.field_names())
    values = {k: v for k, v in vars(args).items() if k in names and k != "out"}
    values["hyp"] = load_hyp_overrides(args.hyp) or None
    # under torchrun every rank picks the folder before any rank can create it (that happens after the ranks meet
    # in SearchRun), so all ranks pick the same one
    values["out"] = str(run_folder(args, resume=args.resume))
    return SearchSettings.from_mapping(values, source="")


def run(args: argparse.Namespace) -> int:
    from autonn_nas.search.arch import Architecture
    from autonn_nas.search.distributed import is_main_process
    from autonn_nas.search.report import val_summary
    from autonn_nas.search.runner import run_search

    result = run_search(settings_from_args(args))
    if not is_main_process():  # under torchrun the result is printed once, by rank 0
        return 0
    m = result.metrics
    decision = m.get("decision") or {}
    print(f"architecture: {result.arch}" + (f" (searched {Architecture(decision['searched'])}; ships the {decision['shipped']})" if decision else ""))
    if decision:
        print(f"decision: {decision['reason']}")
    print(f"cost: {m['cost']:.6g} {m['cost_measure']} = {m['cost_ratio']:.3f} x base (budget {m['budget']:.6g})")
    print(val_summary(m))
    print(f"model YAML: {result.model_yaml}\nweights: {result.weights}\nreport: {result.report}\nrun folder: {result.out_dir}")
    return 0
