"""How far an exported model's prediction is from PyTorch's, in units that mean something.

The prediction is (bs, N, nc+5): xywh in input pixels, then objectness and class probabilities. Box
differences are judged relative to the input size (a pixel at 640 is not a pixel at 64), probabilities
absolutely. The reference is always the original (unfused, fp32) PyTorch model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

# (box tolerance as a fraction of the input size, probability tolerance)
TOLERANCES = {
    "fp32": (1e-4, 1e-4),  # 0.064 px at 640; measured differences are ~1e-6 of the size (BN folding, kernels)
    "fp16": (3e-3, 1e-2),  # half precision carries ~3 decimal digits: ~2 px at 640, 0.01 in probability
}


@dataclass(frozen=True)
class Agreement:
    box_px: float  # max |difference| of x, y, w, h over every box of every image, in input pixels
    score: float  # max |difference| of objectness and class probabilities
    img_size: int
    box_tolerance_px: float
    score_tolerance: float
    images: int
    source: str  # which inputs were compared

    @property
    def ok(self) -> bool:
        return self.box_px <= self.box_tolerance_px and self.score <= self.score_tolerance

    def describe(self) -> str:
        verdict = "OK" if self.ok else "TOO LARGE"
        return (f"max difference vs PyTorch on {self.images} {self.source}: boxes {self.box_px:.3g} px "
                f"(tolerance {self.box_tolerance_px:.3g} px = {self.box_tolerance_px / self.img_size:.0e} x {self.img_size}), "
                f"probabilities {self.score:.3g} (tolerance {self.score_tolerance:.0e}) -> {verdict}")

    def to_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


def compare(reference: torch.Tensor | np.ndarray, exported: torch.Tensor | np.ndarray, img_size: int, precision: str,
            source: str) -> Agreement:
    ref = _as_float64(reference)
    out = _as_float64(exported)
    if ref.shape != out.shape:
        raise ValueError(f"exported prediction has shape {out.shape}, PyTorch's {ref.shape}")
    box_rel, score_tol = TOLERANCES[precision]
    diff = np.abs(ref - out)
    return Agreement(
        box_px=float(diff[..., :4].max(initial=0.0)), score=float(diff[..., 4:].max(initial=0.0)), img_size=img_size,
        box_tolerance_px=box_rel * img_size, score_tolerance=score_tol, images=int(ref.shape[0]), source=source,
    )


def _as_float64(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64)
