"""Export formats and output layouts, as plain names (no torch here: the CLI lists them in --help)."""
from __future__ import annotations

# format -> file suffix; the file goes next to the weights by default (bestmodel.pt -> bestmodel.onnx)
FORMATS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".torchscript"}
# output layouts: yolov5 = (batch, anchors, 5 + nc): xywh px, objectness, class probabilities (ours);
# yolov9 = (batch, 4 + nc, anchors): xywh px, class scores = objectness x class probability, which is what
# TANGO's code_gen templates parse (they take the max class score as the confidence, as our NMS ranks boxes)
LAYOUTS = ("yolov5", "yolov9")
