"""Training settings: one dataclass for the CLI (`autonn-nas train`) and callers in Python.

Unset sizes (None) are filled by `resolve_defaults` from the device: a small model at 320 px on a CPU,
the YAML's own width/depth at 640 px on a GPU.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from autonn_nas.utils.img_size import check_img_size

DEFAULT_CFG = "yolov4-p5.yaml"  # the model when neither --cfg nor the weights give one

@dataclass
class TrainSettings:
    data: str = ""  # YOLO dataset.yaml
    cfg: str | None = None  # model YAML: a built-in name or a path (None: the weights' own YAML, else DEFAULT_CFG)
    weights: str | None = None  # start from these weights (search/weights_file.py reads every kind); None: random
    strict: bool = False  # with weights: any tensor that does not fit is an error (else what fits is loaded)
    out: str = "runs/train"
    epochs: int | None = None
    img_size: int | None = None
    batch_size: int | None = None
    width: float | None = None  # width_multiple override (None: CPU 0.25, GPU the YAML's)
    depth: float | None = None  # depth_multiple override
    device: str = "auto"
    seed: int = 0
    workers: int | None = None
    resume: bool = False
    augment: bool = True  # HSV, flip, scale/translate and (hyp 'mosaic') mosaic on the training split
    hyp: dict[str, float] = field(default_factory=dict)  # overrides of DEFAULT_HYP
    progress: bool = True  # tqdm bar per epoch
    eval_interval: int = 1  # evaluate, write last.pt/best.pt and plot every N epochs (and after the last)
    nominal_batch: int = 64  # gradients accumulate until about this many images per optimizer step

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "TrainSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown training setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**dict(values))

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "img_size", "eval_interval", "nominal_batch"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.img_size is not None:
            check_img_size(self.img_size)
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be 0 or more, got {self.workers}")
        for name in ("width", "depth"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")

    def resolve_defaults(self, on_gpu: bool, sizes_from_yaml: bool = False) -> "TrainSettings":
        """Fill unset values for the device; `sizes_from_yaml`: the model comes from a YAML that fixes its width
        and depth (the weights' own), so the CPU's small width/depth defaults do not apply."""
        if on_gpu:
            defaults: dict[str, Any] = dict(epochs=100, img_size=640, batch_size=16, workers=8)
        else:
            defaults = dict(epochs=10, img_size=320, batch_size=16, workers=2)
            if not sizes_from_yaml:
                defaults.update(width=0.25, depth=0.33)
        changes = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        resolved = dataclasses.replace(self, **changes)
        resolved.validate()
        return resolved
