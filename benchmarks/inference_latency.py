"""Per-image inference latency of the base and a derived model: PyTorch eager vs onnxruntime on this CPU.

    .venv/bin/python benchmarks/inference_latency.py [--width 0.25] [--sizes 320 640] [--batches 1 8] [--repeats 7]

Both runtimes run the same deployable graph (BN folded into the convs, decoded output (bs, N, nc+5), no NMS),
with the same number of threads. Inputs are letterboxed real images from the embedded coco128_mini val split
(repeated to fill a batch); each ONNX export is checked against PyTorch before it is timed. Per configuration:
warm-up runs, then `repeats` timed runs; the figure is the median batch time divided by the batch size.
Prints a Markdown table and writes the raw numbers as JSON (--json). Results go in benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autonn_nas.export.exporter import DecodedPrediction  # noqa: E402
from autonn_nas.export.fuse import fuse_conv_bn  # noqa: E402
from autonn_nas.export.images import image_batch, list_images  # noqa: E402
from autonn_nas.export.onnx import export_onnx, onnx_session, run_onnx  # noqa: E402
from autonn_nas.export.verify import compare  # noqa: E402
from autonn_nas.models.summary import count_gflops  # noqa: E402
from autonn_nas.models.yolo import build_model  # noqa: E402
from autonn_nas.search.derive import derive_yaml  # noqa: E402

IMAGES = REPO / "shared_volume" / "datasets" / "coco128_mini" / "images" / "val2017"
# base: Scaled-YOLOv4's k3_mish everywhere; derived: a latency-minded result (cheap activations, one 5x5 block)
ARCHITECTURES = {
    "base (all k3_mish)": {"m_16": "k3_mish", "m_21": "k3_mish", "m_25": "k3_mish", "m_29": "k3_mish"},
    "derived (k3_relu, k3_leaky, k5_relu, k3_leaky)": {"m_16": "k3_relu", "m_21": "k3_leaky", "m_25": "k5_relu", "m_29": "k3_leaky"},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--depth", type=float, default=0.33)
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads for both runtimes")
    parser.add_argument("--json", default=None, help="also write the raw numbers here")
    return parser.parse_args()


def median_ms_per_image(run, batch: int, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000 / batch


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    files = list_images(IMAGES)
    search = build_model("yolov4-p5-search.yaml", nc=80, width=args.width, depth=args.depth).yaml
    rows, started = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for name, arch in ARCHITECTURES.items():
            torch.manual_seed(0)
            model = build_model(derive_yaml(search, arch)).eval()
            params = sum(p.numel() for p in model.parameters())
            deployable = DecodedPrediction(fuse_conv_bn(model)).eval()
            onnx_path = export_onnx(deployable, torch.zeros(1, 3, args.sizes[0], args.sizes[0]), Path(tmp) / "m.onnx", dynamic=True)
            session = onnx_session(onnx_path, threads=args.threads)
            for size in args.sizes:
                gflops = count_gflops(model, size)
                for batch in args.batches:
                    images = image_batch([files[i % len(files)] for i in range(batch)], size)
                    array = images.numpy()
                    with torch.no_grad():
                        agreement = compare(model(images)[0], run_onnx(session, array), size, "fp32", "images")
                    if not agreement.ok:
                        raise SystemExit(f"{name}: ONNX export disagrees with PyTorch: {agreement.describe()}")

                    def eager():
                        with torch.no_grad():
                            deployable(images)

                    row = {
                        "model": name, "params": params, "gflops_per_image": round(gflops, 2), "img": size, "batch": batch,
                        "pytorch_ms": median_ms_per_image(eager, batch, args.warmup, args.repeats),
                        "onnxruntime_ms": median_ms_per_image(lambda: run_onnx(session, array), batch, args.warmup, args.repeats),
                        "max_box_rel_diff": agreement.box_rel,
                    }
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    environment = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": args.threads,
                   "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
                   "load_average_1m_after": os.getloadavg()[0], "seconds": round(time.time() - started, 1),
                   "width": args.width, "depth": args.depth, "repeats": args.repeats, "warmup": args.warmup}
    print(f"width {args.width}, depth {args.depth}; {environment}\n")
    print("| model | params | GFLOPs/img | img | batch | PyTorch eager ms/img | onnxruntime ms/img | ORT speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['gflops_per_image']:.1f} | {r['img']} | {r['batch']} | "
              f"{r['pytorch_ms']:.1f} | {r['onnxruntime_ms']:.1f} | {r['pytorch_ms'] / r['onnxruntime_ms']:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": environment, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
