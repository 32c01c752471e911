"""Deployment hand-off: ONNX / TorchScript export with verification, the self-contained model package,
and image inference (predict) with drawn boxes."""
