"""YOLO model YAML -> nn.Module, with Scaled-YOLOv4/YOLOv5 semantics and state_dict layout.

A config has `nc`, `depth_multiple`, `width_multiple`, `anchors` and `backbone`/`head` lists of rows
`[from, number, module, args]`. Module names are looked up in MODULES (no eval); the strings
'nc', 'anchors' and 'None' in args are resolved from ARG_CONSTANTS. Strides are tracked through the
rows while parsing, so building (even the 201M-parameter supernet) needs no forward pass.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from .bounded_yaml import YamlInputError, load_yaml_file
from .choice import MBottleneckCSP2
from .common import SPPCSP, Bottleneck, BottleneckCSP, BottleneckCSP2, Concat, Conv, Detect
from .search_space import SEARCHABLE_MODULE, SPACE_KEY, ArchitectureError, SearchSpace, block_label, scale_depth, search_space

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
REQUIRED_KEYS = ("nc", "depth_multiple", "width_multiple", "anchors", "backbone", "head")

# How the parser treats a module's args:
#   conv   - args start with c2; c1 is prepended and c2 scaled by width_multiple
#   csp    - like conv, and the repeat count is passed into the module (built once, n blocks inside)
#   choice - like csp, and the module also gets the config's search space resolved for the row
#   concat - output channels are the sum of the inputs'
#   detect - the inputs' channels are appended to args
#   same   - output channels equal the input's (args untouched)
MODULES: dict[str, tuple[type[nn.Module], str]] = {
    "Conv": (Conv, "conv"),
    "nn.Conv2d": (nn.Conv2d, "conv"),
    "Bottleneck": (Bottleneck, "conv"),
    "BottleneckCSP": (BottleneckCSP, "csp"),
    "BottleneckCSP2": (BottleneckCSP2, "csp"),
    SEARCHABLE_MODULE: (MBottleneckCSP2, "choice"),
    "SPPCSP": (SPPCSP, "csp"),
    "Concat": (Concat, "concat"),
    "nn.Upsample": (nn.Upsample, "same"),
    "Detect": (Detect, "detect"),
}


class ConfigError(ValueError):
    """A model YAML that cannot be built; the message names the file and the row."""


def builtin_configs() -> list[str]:
    return sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))


def resolve_cfg_path(cfg: str | Path) -> Path:
    """An existing file path, or the name of a built-in config ('yolov4-p5.yaml' or 'yolov4-p5')."""
    path = Path(cfg)
    if path.is_file():
        return path
    for name in (str(cfg), f"{cfg}.yaml"):
        if "/" not in name and (CONFIG_DIR / name).is_file():
            return CONFIG_DIR / name
    raise ConfigError(f"model config {str(cfg)!r} is neither a file nor a built-in config; built-in configs: {', '.join(builtin_configs())}")


def load_cfg(cfg: str | Path | dict) -> dict:
    """The config as a fresh dict: a deep copy of a dict, or a YAML file / built-in config read from disk."""
    if isinstance(cfg, dict):
        data, source = copy.deepcopy(cfg), "<config dict>"
    else:
        path = resolve_cfg_path(cfg)
        source = str(path)
        try:
            data = load_yaml_file(path)
        except YamlInputError as exc:
            raise ConfigError(str(exc)) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a model config must be a mapping with keys {', '.join(REQUIRED_KEYS)}")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ConfigError(f"{source}: missing key(s) {', '.join(missing)} (a model config needs {', '.join(REQUIRED_KEYS)})")
    return data


def cfg_to_yaml(cfg: dict) -> str:
    """YAML text of a config in the YOLO layout: one flow-style line per anchor level and per row."""
    def flow(value) -> str:
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()

    lines = []
    for key, value in cfg.items():
        if key in ("anchors", "backbone", "head") and isinstance(value, list):
            lines.append(f"{key}:")
            lines.extend(f"  - {flow(item)}" for item in value)
        else:
            lines.append(yaml.safe_dump({key: value}, default_flow_style=False, sort_keys=False, width=10_000).rstrip())
    return "\n".join(lines) + "\n"


def config_rows(cfg: dict) -> list[list]:
    """backbone + head rows, in layer-index order (row i builds layer i)."""
    return list(cfg["backbone"]) + list(cfg["head"])


def searchable_labels(cfg: dict) -> list[str]:
    """Labels ('m_<i>') of the searchable rows of a config, in layer order."""
    return [block_label(i) for i, row in enumerate(config_rows(cfg)) if len(row) == 4 and row[2] == SEARCHABLE_MODULE]


def config_space(cfg: dict) -> SearchSpace:
    """The search space a config's searchable rows choose from, resolved for its rows and depth_multiple
    (the seed's when the config names none). ConfigError when the rows would resolve to different sets."""
    try:
        space = search_space(cfg.get(SPACE_KEY))
    except ArchitectureError as exc:
        raise ConfigError(str(exc)) from None
    numbers = sorted({row[1] for row in config_rows(cfg)
                      if isinstance(row, (list, tuple)) and len(row) == 4 and row[2] == SEARCHABLE_MODULE and isinstance(row[1], int)})
    resolved = {space.resolve(number, cfg["depth_multiple"]) for number in numbers}
    if len(resolved) > 1:
        raise ConfigError(f"{SPACE_KEY} {space.name}: searchable rows with numbers {numbers} would choose from different "
                          "candidates; give every searchable row the same number")
    return resolved.pop() if resolved else space


def make_divisible(x: float, divisor: int = 8) -> int:
    return math.ceil(x / divisor) * divisor


def _stride_gain(module: nn.Module) -> float:
    """Factor by which a layer multiplies the stride of its input."""
    if isinstance(module, nn.Sequential):  # a plain module repeated n times
        return math.prod(_stride_gain(child) for child in module)
    if isinstance(module, Conv):
        return float(module.conv.stride[0])
    if isinstance(module, nn.Conv2d):
        return float(module.stride[0])
    if isinstance(module, nn.Upsample):
        if not isinstance(module.scale_factor, (int, float)):
            raise ConfigError("nn.Upsample needs a single scale_factor (e.g. [None, 2, 'nearest'])")
        return 1.0 / float(module.scale_factor)
    return 1.0


class _RowError(Exception):
    pass


def parse_model(cfg: dict, ch_in: int = 3, source: str = "<config dict>") -> tuple[nn.Sequential, list[int]]:
    """Build the layers of a config. Returns (layers, save) where save lists the layer indices whose
    outputs later layers read. Each layer gets .i, .f, .type, .np, .n (repeats) and .args (resolved)."""
    nc, gd, gw, anchors = cfg["nc"], cfg["depth_multiple"], cfg["width_multiple"], cfg["anchors"]
    constants: dict[str, Any] = {"None": None, "nc": nc, "anchors": anchors}
    layers: list[nn.Module] = []
    channels: list[int] = []  # output channels per layer
    strides: list[float] = []  # output stride per layer (input pixels per output pixel)
    save: list[int] = []
    rows = config_rows(cfg)
    n_backbone = len(cfg["backbone"])
    try:
        space = config_space(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None

    def where(i: int) -> str:
        section, row = ("backbone", i) if i < n_backbone else ("head", i - n_backbone)
        return f"{source}: {section} row {row} (layer {i})"

    def source_of(j: int, i: int) -> tuple[int, float]:
        k = i + j if j < 0 else j
        if k == -1:
            return ch_in, 1.0
        if not 0 <= k < i:
            raise _RowError(f"'from' index {j} does not name an earlier layer (valid: -1..-{i} or 0..{i - 1})")
        return channels[k], strides[k]

    for i, row in enumerate(rows):
        try:
            if not isinstance(row, (list, tuple)) or len(row) != 4:
                raise _RowError(f"expected [from, number, module, args], got {row!r}")
            f, n, name, args = row
            if name not in MODULES:
                raise _RowError(f"unknown module {name!r}; valid modules: {', '.join(MODULES)}")
            if not isinstance(n, int) or n < 1:
                raise _RowError(f"number must be a positive integer, got {n!r}")
            if not isinstance(f, (int, list)) or (isinstance(f, list) and not all(isinstance(j, int) for j in f)):
                raise _RowError(f"'from' must be an integer or a list of integers, got {f!r}")
            cls, kind = MODULES[name]
            args = [constants.get(a, a) if isinstance(a, str) else a for a in (args or [])]
            row_number, n = n, scale_depth(n, gd)
            sources = [source_of(j, i) for j in ([f] if isinstance(f, int) else f)]
            c1, stride = sources[0]
            options = {}
            if kind in ("conv", "csp", "choice"):
                c2 = make_divisible(args[0] * gw, 8)
                args = [c1, c2, *args[1:]]
                if kind in ("csp", "choice"):
                    args.insert(2, n)
                if kind == "choice":
                    options = dict(space=space, row_number=row_number, depth_multiple=gd)
            elif kind == "concat":
                c2 = sum(c for c, _ in sources)
                if len({s for _, s in sources}) > 1:
                    raise _RowError(f"Concat inputs have different strides {[s for _, s in sources]}: 'from' {f} joins maps of different sizes")
            elif kind == "detect":
                args.append([c for c, _ in sources])
                c2 = 0
            else:
                c2 = c1
            repeats = 1 if kind in ("csp", "choice") else n
            module = nn.Sequential(*(cls(*args) for _ in range(repeats))) if repeats > 1 else cls(*args, **options)
        except _RowError as exc:
            raise ConfigError(f"{where(i)}: {exc}") from None
        except (TypeError, ValueError, IndexError) as exc:
            raise ConfigError(f"{where(i)}: cannot build {row[2]} with args {row[3]}: {exc}") from None
        if isinstance(module, Detect):
            module.set_strides([s for _, s in sources])
        stride = stride * _stride_gain(module)
        module.i, module.f, module.type, module.n, module.args = i, f, cls.__name__, n, args
        module.np = sum(p.numel() for p in module.parameters())
        save.extend(j % i for j in ([f] if isinstance(f, int) else f) if j != -1)
        layers.append(module)
        channels.append(c2)
        strides.append(stride)
    if not layers or not isinstance(layers[-1], Detect):
        raise ConfigError(f"{source}: the last row must be a Detect layer")
    return nn.Sequential(*layers), sorted(set(save))


class Model(nn.Module):
    """A YOLO detector built from a config dict. `model.yaml` reproduces it exactly."""

    def __init__(self, cfg: dict, ch: int = 3, source: str = "<config dict>"):
        super().__init__()
        self.yaml = cfg
        self.model, self.save = parse_model(copy.deepcopy(cfg), ch, source)
        self.detect.initialize_biases()
        self.names = [str(i) for i in range(self.detect.nc)]

    @property
    def detect(self) -> Detect:
        return self.model[-1]

    @property
    def stride(self) -> torch.Tensor:
        return self.detect.stride

    @property
    def nc(self) -> int:
        return self.detect.nc

    def forward(self, x: torch.Tensor):
        outputs: list[torch.Tensor | None] = []
        for layer in self.model:
            if layer.f != -1:
                x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
            x = layer(x)
            outputs.append(x if layer.i in self.save else None)
        return x

    def forward_from(self, x: torch.Tensor | None, start: int = 0, record: list | None = None) -> tuple[Any, list]:
        """Run layers start.. and return (output, every layer's output). Layers before `start` are not run:
        their outputs come from `record`, an earlier call's. Lets a caller that changed one layer (a
        searchable block's active candidate) re-run only what follows it; x is the image when start is 0."""
        outputs = list(record[:start]) if start else []
        if start:
            x = outputs[start - 1]
        for layer in self.model[start:]:
            if layer.f != -1:
                x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
            x = layer(x)
            outputs.append(x)
        return x, outputs


def build_model(
    cfg: str | Path | dict,
    nc: int | None = None,
    width: float | None = None,
    depth: float | None = None,
    ch: int = 3,
) -> Model:
    """Build a model from a config (path, built-in name or dict). nc/width/depth override the config's
    nc/width_multiple/depth_multiple and are written into model.yaml, so it rebuilds the same model."""
    data = load_cfg(cfg)
    source = "<config dict>" if isinstance(cfg, dict) else str(resolve_cfg_path(cfg))
    for key, value in (("nc", nc), ("width_multiple", width), ("depth_multiple", depth)):
        if value is not None:
            data[key] = value
    if not isinstance(data["nc"], int) or data["nc"] < 1:
        raise ConfigError(f"{source}: nc must be a positive integer, got {data['nc']!r}")
    return Model(data, ch=ch, source=source)
