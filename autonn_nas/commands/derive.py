"""`autonn-nas derive SEARCH_CFG ARCH.json -o OUT.yaml`: the concrete model YAML of an architecture."""
from __future__ import annotations

import argparse
import sys

from autonn_nas.models.yolo import ConfigError, cfg_to_yaml
from autonn_nas.search.arch import Architecture, ArchitectureError
from autonn_nas.search.derive import derive_yaml
from autonn_nas.utils.files import atomic_write_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("search_cfg", help="search YAML with MBottleneckCSP2 rows (a path or yolov4-p5-search.yaml)")
    parser.add_argument("arch", help='architecture JSON, e.g. {"m_16": "k5_leaky", "m_21": "k3_mish", ...}')
    parser.add_argument("-o", "--out", required=True, help="where to write the concrete model YAML")


def run(args: argparse.Namespace) -> int:
    try:
        arch = Architecture.load(args.arch)
        cfg = derive_yaml(args.search_cfg, arch)
    except (ConfigError, ArchitectureError) as exc:
        print(f"autonn-nas derive: {exc}", file=sys.stderr)
        return 2
    atomic_write_text(args.out, f"# derived from {args.search_cfg} with {arch}\n" + cfg_to_yaml(cfg))
    print(f"{arch}\nwrote {args.out}")
    return 0
