"""`autonn-nas derive SEARCH_CFG ARCH -o OUT.yaml`: the concrete model YAML of an architecture.

ARCH is an architecture JSON ({"m_16": "k5_leaky", ...}), a search's arch.json, or a search's run folder. From a
search's record the YAML gets the search's width, depth and nc (the same model the search shipped);
--width/--depth/--nc set them explicitly."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("search_cfg", help="search YAML with MBottleneckCSP2 rows (a path or yolov4-p5-search.yaml)")
    parser.add_argument("arch", help='architecture JSON (e.g. {"m_16": "k5_leaky", "m_21": "k3_mish", ...}), a search\'s '
                                     "arch.json, or a search's run folder (its width, depth and nc come with it)")
    parser.add_argument("-o", "--out", required=True, help="where to write the concrete model YAML")
    parser.add_argument("--width", type=float, default=None, help="width_multiple (default: the search's, else the YAML's)")
    parser.add_argument("--depth", type=float, default=None, help="depth_multiple (default: the search's, else the YAML's)")
    parser.add_argument("--nc", type=int, default=None, help="number of classes (default: the search's, else the YAML's)")


def run(args: argparse.Namespace) -> int:
    import torch

    from autonn_nas.models.yolo import Model, cfg_to_yaml
    from autonn_nas.search.arch import Architecture
    from autonn_nas.search.derive import derive_yaml, recorded_sizes
    from autonn_nas.utils.files import atomic_write_text

    arch_file = Path(args.arch)
    if arch_file.is_dir():
        arch_file = arch_file / "arch.json"
    arch = Architecture.load(arch_file)
    sizes, record = recorded_sizes(arch_file)
    given = {"nc": args.nc, "width_multiple": args.width, "depth_multiple": args.depth}
    for key, value in given.items():
        if value is not None and value <= 0:
            raise ValueError(f"--{key.split('_')[0]} must be positive, got {value}")
    sizes.update({key: value for key, value in given.items() if value is not None})
    cfg = {**derive_yaml(args.search_cfg, arch), **sizes}
    with torch.device("meta"):  # shapes only: the YAML builds with these sizes (else a ConfigError naming the row)
        Model(cfg, source=str(args.search_cfg))
    atomic_write_text(args.out, f"# derived from {args.search_cfg} with {arch}\n" + cfg_to_yaml(cfg))
    options = [f"--{key.split('_')[0]}" for key, value in given.items() if value is not None]
    origin = (f"from {record}" if record else f"of {args.search_cfg}") + (f", {' '.join(options)} as given" if options else "")
    print(f"{arch}\n{', '.join(f'{key} {cfg[key]}' for key in given)} ({origin})\nwrote {args.out}")
    return 0
