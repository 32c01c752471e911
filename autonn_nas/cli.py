"""The one command-line entry point: `autonn-nas <command> ...`.

Each command lives in `autonn_nas/commands/<name>.py` and provides `add_arguments(parser)` and
`run(args) -> int`. The table below is the whole list; a command is added by adding a row.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module under autonn_nas.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("search", "neck architecture search: supernet, strategy, derived model YAML, weights and report"),
    "summary": ("summary", "per-layer table, parameters and GFLOPs of a model YAML"),
    "latency-table": ("latency_table", "measure every searchable block's candidates on this device: a target's latency table for --latency-table"),
    "derive": ("derive", "write the concrete model YAML of an architecture JSON"),
    "serve": ("serve", "run the pipeline stage's HTTP server (TANGO neck_nas container)"),
    "demo": ("demo", "run the whole stage on the embedded demo project with a PM stub, on loopback"),
    "train": ("train", "train a detector on a YOLO dataset (results.csv, last.pt/best.pt)"),
    "val": ("val", "P, R, mAP50 and mAP50-95 of a checkpoint on a dataset's val split"),
    "export": ("export", "ONNX or TorchScript file of a checkpoint (BN folded, decoded output), verified against PyTorch"),
    "predict": ("predict", "detections on images with a checkpoint or export: YOLO txt, COCO JSON, drawn pictures (--save)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autonn-nas", description="Neck architecture search for YOLOv4-P5 detectors.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"autonn_nas.commands.{module_name}")
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as error:
        # User errors (bad config, dataset, settings) carry a message meant for people: no traceback.
        print(f"autonn-nas {args.command}: error: {error}", file=sys.stderr)
        return 2
