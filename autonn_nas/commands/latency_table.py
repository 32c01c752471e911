"""`autonn-nas latency-table -o T.json`: measure every candidate of every searchable block on this device (the
deployment target) for `autonn-nas search --cost-measure latency --latency-table T.json`, or for the stage as
`<shared>/latency_tables/<target_info>.json`."""
from __future__ import annotations

import argparse

from autonn_nas.search.settings import SearchSettings

DEFAULT_WARMUP, DEFAULT_REPEATS = 5, 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = SearchSettings()
    parser.add_argument("-o", "--out", required=True, help="where to write the table (JSON)")
    parser.add_argument("--cfg", default=d.cfg, help=f"search YAML the table is for (default {d.cfg}; the extended space: yolov4-p5-search-ext.yaml)")
    parser.add_argument("--img", "--img-size", dest="img_size", type=int,
                        help="image size of the search that will read the table (default: the search's on this device: 256 on CPU, 640 on CUDA)")
    parser.add_argument("--width", type=float, help="width_multiple of that search (default: the search's on this device: 0.25 on CPU, the YAML's on CUDA)")
    parser.add_argument("--depth", type=float, help="depth_multiple of that search (default: the search's on this device: 0.33 on CPU, the YAML's on CUDA)")
    parser.add_argument("--nc", type=int, default=80, help="number of classes (only the fixed part depends on it; default 80)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or N (default auto: CUDA when present)")
    parser.add_argument("--runtime", choices=("torch", "onnxruntime"),
                        help="what runs the blocks (default: onnxruntime when installed, as most deployments run, else torch)")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help=f"untimed runs before timing (default {DEFAULT_WARMUP})")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help=f"timed runs; the median is kept (default {DEFAULT_REPEATS})")


def run(args: argparse.Namespace) -> int:
    from autonn_nas.export.dependencies import INSTALL_HINT
    from autonn_nas.search.cost.runtimes import available_runtimes
    from autonn_nas.search.cost.target_table import measure_target_table
    from autonn_nas.utils.device import select_device
    from autonn_nas.utils.files import atomic_write_json

    device = select_device(args.device)
    runtime = args.runtime or available_runtimes()[-1]
    if runtime not in available_runtimes():
        raise ValueError(f"runtime {runtime} is not installed here ({INSTALL_HINT}); use --runtime torch")
    if args.warmup < 0 or args.repeats < 1:
        raise ValueError(f"--warmup must be >= 0 and --repeats >= 1, got {args.warmup} and {args.repeats}")
    sizes = SearchSettings(img_size=args.img_size, width=args.width, depth=args.depth).resolve_defaults(on_gpu=device.type == "cuda")
    sizes.validate("autonn-nas latency-table")
    table = measure_target_table(args.cfg, sizes.img_size, sizes.width, sizes.depth, args.nc, device, runtime, args.warmup, args.repeats)
    path = atomic_write_json(args.out, table)
    print(f"{table['source']}: {table['space']} space, {len(table['candidates'])} candidates x {len(table['blocks'])} blocks at "
          f"{table['img_size']}x{table['img_size']} (width {table['width_multiple']}, depth {table['depth_multiple']})")
    for label, entries in table["blocks"].items():
        fastest = min(entries, key=entries.__getitem__)
        print(f"  {label}: base k3_mish {entries['k3_mish']:.3f} ms, fastest {fastest} {entries[fastest]:.3f} ms, "
              f"slowest {max(entries.values()):.3f} ms")
    print(f"  the rest of the model: {table['fixed']:.3f} ms")
    print(f"wrote {path}: use it with `autonn-nas search --cost-measure latency --latency-table {path}` and the same sizes, "
          "or for the stage put it on the shared volume as latency_tables/<target_info>.json")
    return 0
