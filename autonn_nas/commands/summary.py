"""`autonn-nas summary CFG`: the per-layer table, parameters and GFLOPs of a model YAML."""
from __future__ import annotations

import argparse
import json

from autonn_nas.commands.options import add_img_size

DEFAULT_IMG_SIZE = 640


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cfg", help="model YAML: a path or a built-in name (yolov4-p5.yaml, yolov4-p5-search.yaml)")
    parser.add_argument("--nc", type=int, default=None, help="number of classes (overrides the YAML's nc)")
    add_img_size(parser, f"square image size for GFLOPs, a multiple of 32 (default {DEFAULT_IMG_SIZE})")
    parser.add_argument("--width", type=float, default=None, help="width_multiple override")
    parser.add_argument("--depth", type=float, default=None, help="depth_multiple override")
    parser.add_argument("--arch", default=None, help="architecture JSON: run these candidates in a search YAML's blocks")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from autonn_nas.models.choice import set_architecture
    from autonn_nas.models.summary import format_summary, summarize
    from autonn_nas.models.yolo import build_model
    from autonn_nas.search.arch import Architecture

    model = build_model(args.cfg, nc=args.nc, width=args.width, depth=args.depth)
    if args.arch:
        set_architecture(model, Architecture.load(args.arch))
    summary = summarize(model, args.img or DEFAULT_IMG_SIZE)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else format_summary(summary))
    return 0
