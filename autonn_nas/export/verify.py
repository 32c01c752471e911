"""How far an exported model's prediction is from PyTorch's, in units that mean something.

The prediction is (bs, N, nc+5): xywh in input pixels, then objectness and class probabilities. A box
value's difference is judged relative to its scale, max(|value|, input size): widths and heights reach
several times the input size (up to 4 x the largest anchor), and fp32 rounding grows with the value
(a 1-epoch model at 64 px has w up to 3200 px, where fp32 itself is ~0.04 px off an fp64 run).
Probabilities are judged absolutely. The reference is always the original (unfused, fp32) PyTorch model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

# precision -> (box tolerance as a fraction of max(|value|, input size), probability tolerance)
TOLERANCES = {
    "fp32": (1e-3, 1e-3),  # measured: ~5e-5 of the scale for boxes, ~4e-5 for probabilities (BN folding, kernel order)
    "fp16": (1e-2, 1e-2),  # half precision carries ~3 decimal digits
}


@dataclass(frozen=True)
class Agreement:
    box_px: float  # max |difference| of x, y, w, h over every box of every image, in input pixels
    box_rel: float  # max |difference| / max(|value|, input size) over the same values
    score: float  # max |difference| of objectness and class probabilities
    img_size: int
    box_tolerance: float  # on box_rel
    score_tolerance: float  # on score
    images: int
    source: str  # which inputs were compared

    @property
    def ok(self) -> bool:
        return self.box_rel <= self.box_tolerance and self.score <= self.score_tolerance

    def describe(self) -> str:
        verdict = "OK" if self.ok else "TOO LARGE"
        return (f"max difference vs PyTorch on {self.images} {self.source}: boxes {self.box_px:.3g} px = {self.box_rel:.2g} of "
                f"max(|value|, {self.img_size} px) (tolerance {self.box_tolerance:.0e}), probabilities {self.score:.2g} "
                f"(tolerance {self.score_tolerance:.0e}) -> {verdict}")

    def to_dict(self) -> dict:
        return asdict(self) | {"ok": self.ok}


def compare(reference: torch.Tensor | np.ndarray, exported: torch.Tensor | np.ndarray, img_size: int, precision: str,
            source: str) -> Agreement:
    ref = _as_float64(reference)
    out = _as_float64(exported)
    if ref.shape != out.shape:
        raise ValueError(f"exported prediction has shape {out.shape}, PyTorch's {ref.shape}")
    box_tol, score_tol = TOLERANCES[precision]
    box_diff = np.abs(ref[..., :4] - out[..., :4])
    scale = np.maximum(np.abs(ref[..., :4]), float(img_size))
    return Agreement(
        box_px=float(box_diff.max(initial=0.0)), box_rel=float((box_diff / scale).max(initial=0.0)),
        score=float(np.abs(ref[..., 4:] - out[..., 4:]).max(initial=0.0)), img_size=img_size,
        box_tolerance=box_tol, score_tolerance=score_tol, images=int(ref.shape[0]), source=source,
    )


def _as_float64(values: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64)
