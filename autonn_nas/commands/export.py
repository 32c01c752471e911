"""`autonn-nas export --weights bestmodel.pt --format onnx|torchscript`: a deployable file, verified.

BN is folded into the convs and only the decoded prediction (batch, boxes, nc+5) is exported. The file is
then run (onnxruntime / torch.jit.load) on the check images and compared with PyTorch; the measured
maximum difference is printed, and an export outside the tolerance is removed and reported as an error.
"""
from __future__ import annotations

import argparse
import json

from autonn_nas.commands.options import add_img_size
from autonn_nas.export.formats import FORMATS, LAYOUTS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="checkpoint of a derived or trained model (bestmodel.pt, best.pt)")
    parser.add_argument("--format", required=True, choices=list(FORMATS), help="onnx (TensorRT, tflite, TVM, ...) or torchscript (libtorch)")
    add_img_size(parser, "input size, a multiple of 32 (default: the size the weights were searched/trained at, else 640)")
    parser.add_argument("--half", action="store_true", help="fp16 model (needs CUDA)")
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch, height and width (ONNX); TorchScript traces are shape-generic anyway")
    parser.add_argument("-o", "--out", default=None, help="output file (default: next to the weights, bestmodel.onnx / bestmodel.torchscript)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or N")
    parser.add_argument("--check-images", nargs="+", default=None, metavar="IMAGE_OR_DIR",
                        help="real images to compare the export with PyTorch on (default: seeded random inputs)")
    parser.add_argument("--layout", default="yolov5", choices=list(LAYOUTS),
                        help="yolov5: (batch, boxes, 5+nc) with objectness; yolov9: (batch, 4+nc, boxes), class scores (TANGO's code_gen)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from autonn_nas.export.exporter import export_weights

    result = export_weights(args.weights, args.format, img_size=args.img, half=args.half, dynamic=args.dynamic, out=args.out,
                            device=args.device, check_images=args.check_images, layout=args.layout)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        size_mb = result.path.stat().st_size / 1e6
        shape = "dynamic batch/height/width" if result.dynamic and result.format == "onnx" else f"1x3x{result.img_size}x{result.img_size}"
        print(f"{result.format} ({'fp16' if result.half else 'fp32'}, input {shape}, BN folded): {result.path} ({size_mb:.1f} MB)")
        print(result.agreement.describe())
    return 0
