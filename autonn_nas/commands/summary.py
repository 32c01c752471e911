"""`autonn-nas summary CFG`: the per-layer table, parameters and GFLOPs of a model YAML."""
from __future__ import annotations

import argparse
import json
import sys

from autonn_nas.models.choice import set_architecture
from autonn_nas.models.summary import format_summary, summarize
from autonn_nas.models.search_space import ArchitectureError
from autonn_nas.models.yolo import ConfigError, build_model
from autonn_nas.search.arch import Architecture


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cfg", help="model YAML: a path or a built-in name (yolov4-p5.yaml, yolov4-p5-search.yaml)")
    parser.add_argument("--nc", type=int, default=None, help="number of classes (overrides the YAML's nc)")
    parser.add_argument("--img", type=int, default=640, help="square image size for GFLOPs (rounded up to a multiple of 32)")
    parser.add_argument("--width", type=float, default=None, help="width_multiple override")
    parser.add_argument("--depth", type=float, default=None, help="depth_multiple override")
    parser.add_argument("--arch", default=None, help="architecture JSON: run these candidates in a search YAML's blocks")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    try:
        model = build_model(args.cfg, nc=args.nc, width=args.width, depth=args.depth)
        if args.arch:
            set_architecture(model, Architecture.load(args.arch))
    except (ConfigError, ArchitectureError) as exc:
        print(f"autonn-nas summary: {exc}", file=sys.stderr)
        return 2
    summary = summarize(model, args.img)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else format_summary(summary))
    return 0
