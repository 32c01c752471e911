"""Search settings: one dataclass shared by the CLI (`autonn-nas search`), the stage (`neck_nas.yaml`)
and the search runner. Unset values (None) are filled by `resolve_defaults` from the device: small and
quick on a CPU, the real sizes on a GPU.
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass
from typing import Any, Mapping

from autonn_nas.models.bounded_yaml import shown
from autonn_nas.search.limits import SETTING_MAXIMA, check_batch_pixels
from autonn_nas.utils.img_size import img_size_problem

STRATEGIES = ("proxyless", "darts", "spos")
COST_MEASURES = ("params", "flops", "latency")
LATENCY_DEVICES = ("cpu", "cuda")  # where latency costs may be measured; None in the settings: the search's own device
# when architecture steps start: "fraction" (ours: after a weight-only warm-up of 25 % of the run's iterations)
# or "prior_art" (TANGO's earlier neck NAS: after max(3 epochs, 1000 iterations), so a short run never takes
# one; kept only to compare against it, see benchmarks/README.md)
ARCH_WARMUPS = ("fraction", "prior_art")
_KIND_WORDS = {int: "an integer", float: "a number", str: "text", bool: "true or false", dict: "a mapping"}


@dataclass
class SearchSettings:
    data: str = ""  # path to a YOLO dataset.yaml
    cfg: str = "yolov4-p5-search.yaml"  # search YAML: a built-in name or a path
    out: str = "runs/search"  # run folder (checkpoints, history, plots, report, outputs)
    strategy: str = "proxyless"
    epochs: int | None = None
    retrain_epochs: int | None = None  # fine-tune the shipped network afterwards (search/retrain.py); 0: off
    img_size: int | None = None
    batch_size: int | None = None
    width: float | None = None  # width_multiple override (None: CPU default 0.25, GPU: the YAML's)
    depth: float | None = None  # depth_multiple override
    budget: float | None = None  # max cost of the derived model relative to the base model (1.0 = equal)
    lightweight_level: int | None = None  # TANGO's 0..10; tightens the budget
    cost_measure: str = "flops"
    latency_table: str | None = None  # JSON table of per-candidate latencies for a target measured elsewhere
    latency_cache: str | None = None  # JSON file of latencies measured here (None: $XDG_CACHE_HOME/autonn_nas/latency_cache.json)
    device: str = "auto"
    latency_device: str | None = None  # measure latencies here (cpu | cuda) instead of on the search's device: the target's kind
    seed: int = 0
    workers: int | None = None
    weights: str | None = None  # optional Scaled-YOLOv4-layout state_dict to warm-start from
    hyp: dict[str, float] | None = None  # overrides of the training hyperparameters (train/hyp.py DEFAULT_HYP)
    teacher: str | None = None  # a checkpoint (model_yaml + state_dict) whose head outputs the search matches (distillation)
    resume: bool = False
    holdout_fraction: float = 0.2  # share of the training split held out for architecture decisions
    evaluations: int | None = None  # spos: most architectures to score (None: 100 on CPU, 200 on CUDA)
    progress: bool = True  # a progress bar per epoch
    arch_warmup: str = "fraction"  # one of ARCH_WARMUPS
    nproc: int = 1  # the stage: processes (GPUs) to run the search on, launched with torchrun when > 1

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "settings") -> "SearchSettings":
        """Build from a dict (e.g. a parsed neck_nas.yaml); unknown keys are an error naming the valid ones.
        `source` begins each error message (the file the values came from; "" for none)."""
        unknown = sorted(map(str, set(values) - set(cls.field_names())))
        if unknown:
            named = ", ".join(key[:40] for key in unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            raise ValueError(f"{source + ': ' if source else ''}unknown setting(s) {named}; valid: {', '.join(cls.field_names())}")
        settings = cls(**dict(values))
        settings.validate(source)
        return settings

    def replace(self, **changes: Any) -> "SearchSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self, source: str = "settings") -> None:
        def fail(message: str) -> None:
            raise ValueError(f"{source}: {message}" if source else message)

        self._check_types(fail)
        for name, most in SETTING_MAXIMA.items():
            value = getattr(self, name)
            if value is not None and value > most:
                fail(f"{name} must be at most {most:g}, got {shown(value)}")
        if self.seed < 0:
            fail(f"seed must be 0 or more, got {self.seed}")
        if self.strategy not in STRATEGIES:
            fail(f"strategy {shown(self.strategy)} is not one of {', '.join(STRATEGIES)}")
        if self.arch_warmup not in ARCH_WARMUPS:
            fail(f"arch_warmup {shown(self.arch_warmup)} is not one of {', '.join(ARCH_WARMUPS)}")
        if not isinstance(self.nproc, int) or isinstance(self.nproc, bool) or self.nproc < 1:
            fail(f"nproc must be a positive integer, got {shown(self.nproc)}")
        if self.cost_measure not in COST_MEASURES:
            fail(f"cost_measure {shown(self.cost_measure)} is not one of {', '.join(COST_MEASURES)}")
        if self.latency_device not in (None, *LATENCY_DEVICES):
            fail(f"latency_device {shown(self.latency_device)} is not one of {', '.join(LATENCY_DEVICES)}")
        for name in ("epochs", "img_size", "batch_size", "workers", "evaluations", "retrain_epochs"):
            value = getattr(self, name)
            may_be_zero = name in ("workers", "retrain_epochs")
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < (0 if may_be_zero else 1)):
                fail(f"{name} must be a {'non-negative' if may_be_zero else 'positive'} integer, got {shown(value)}")
        if self.img_size is not None and img_size_problem(self.img_size):
            fail(f"img_size {img_size_problem(self.img_size)}")
        for name in ("width", "depth", "budget"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
                fail(f"{name} must be a positive number, got {shown(value)}")
        if self.lightweight_level is not None and not (isinstance(self.lightweight_level, int) and 0 <= self.lightweight_level <= 10):
            fail(f"lightweight_level must be an integer 0..10, got {shown(self.lightweight_level)}")
        if self.hyp is not None:
            from autonn_nas.train.hyp import merge_hyp

            if not isinstance(self.hyp, dict):
                fail(f"hyp must map hyperparameter names to numbers, got {shown(self.hyp)}")
            try:
                merge_hyp(self.hyp)
            except (ValueError, TypeError) as exc:
                fail(f"hyp: {shown(str(exc), 200)}")
        if not 0.0 < self.holdout_fraction < 1.0:
            fail(f"holdout_fraction must be between 0 and 1, got {shown(self.holdout_fraction)}")
        check_batch_pixels(self.batch_size, self.img_size, source)

    def _check_types(self, fail) -> None:
        """Each value has its field's type (an int is a float too; a bool is neither), before any arithmetic on it:
        `seed: abc` or `width: [1]` in neck_nas.yaml is a reason, not a TypeError inside the search."""
        for name, hint in typing.get_type_hints(type(self)).items():
            value = getattr(self, name)
            allowed = [t for t in typing.get_args(hint) or (hint,) if t is not type(None)]
            if value is None and len(allowed) < len(typing.get_args(hint) or (hint,)):
                continue
            kinds = {typing.get_origin(t) or t for t in allowed}
            if bool in kinds:
                ok = isinstance(value, bool)
            elif isinstance(value, bool):
                ok = False
            elif float in kinds:
                ok = isinstance(value, (int, float)) and math.isfinite(value)
            elif str in kinds:
                ok = isinstance(value, (str, os.PathLike))
            else:
                ok = isinstance(value, tuple(kinds))
            if not ok:
                wanted = " or ".join(sorted(_KIND_WORDS.get(k, getattr(k, "__name__", str(k))) for k in kinds))
                fail(f"{name} must be {wanted}, got {shown(value)}")

    def resolve_defaults(self, on_gpu: bool, processes: int = 1) -> "SearchSettings":
        """Fill unset sizes: a few-minute run on CPU (one retrain epoch: a check that the hand-off trains, not a
        trained model); the real configuration on a GPU, with a default batch of 16 images per GPU (the batch is
        global: under torchrun it is split over the `processes`)."""
        if on_gpu:
            defaults = dict(epochs=50, retrain_epochs=50, img_size=640, batch_size=16 * processes, width=None, depth=None, workers=8)
        else:
            defaults = dict(epochs=3, retrain_epochs=1, img_size=256, batch_size=8, width=0.25, depth=0.33, workers=2)
        changes = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return self.replace(**changes)
