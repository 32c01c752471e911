"""From (search space, architecture) to a concrete model: a pure YAML rewrite and a structural weight map.

derive_yaml turns each searchable row `[f, n, MBottleneckCSP2, [c2]]` into a concrete
`[f, n, BottleneckCSP2, args]`: `[c2]` for the base candidate (exactly Scaled-YOLOv4's row), else
`[c2, shortcut, g, e, kernel, activation]` so the choice is visible in the row; the extended space's
choices are YOLO YAML terms too: the depth is the row's `number` (`k3_mish_n1` -> `[f, 1, BottleneckCSP2,
[c2]]`) and a narrower block appends its hidden width (`[c2, False, 1, 0.5, 3, relu, 0.5]`). Because the
supernet's candidates are the same BottleneckCSP2 class as the derived blocks, a candidate's state_dict
has the derived block's layout, and subnet_state_dict is a walk over layers rather than key rewriting.

search_cfg_from_base is the inverse of derive_yaml: a base model YAML (TANGO's basemodel.yaml) whose neck
`BottleneckCSP2` rows become searchable. A base of another family (TANGO's AutoNN picks YOLOv7 or YOLOv9
bases) has no neck this search space fits: OtherFamilyError, and the stage searches the built-in base.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from autonn_nas.models.choice import MBottleneckCSP2, model_space, searchable_blocks
from autonn_nas.models.search_space import (
    BASE_CANDIDATE,
    CONCRETE_MODULE,
    SEARCHABLE_MODULE,
    SPACE_KEY,
    ArchitectureError,
    Candidate,
    block_label,
    validate_choices,
)
from autonn_nas.models.yolo import MODULES, Model, build_model, config_rows, config_space, load_cfg, searchable_labels

# BottleneckCSP2(c1, c2, n, shortcut, g, e, k, act, hidden): defaults of the optional args before k and act
_CSP2_DEFAULTS = (False, 1, 0.5)
_BASE_OP = (3, "mish", 1.0)  # kernel, activation, hidden width of Scaled-YOLOv4's block: a row that keeps them shows none


def _concrete_args(args: list, op: Candidate) -> list:
    if (op.kernel, op.act, op.hidden) == _BASE_OP:
        return list(args)
    if len(args) > 1 + len(_CSP2_DEFAULTS):
        raise ValueError(f"searchable row args {args} already carry kernel/activation; expected [c2] or [c2, shortcut, g, e]")
    given = list(args[1:])
    return [args[0], *given, *_CSP2_DEFAULTS[len(given):], op.kernel, op.act, *([op.hidden] if op.hidden != 1.0 else [])]


def _describe(cfg) -> str:
    return "the config dict" if isinstance(cfg, dict) else str(cfg)


def derive_yaml(search_cfg: dict | str | Path, arch: Mapping[str, str]) -> dict:
    """The concrete model config of `arch` within `search_cfg` (never modified; a deep copy is returned)."""
    cfg = load_cfg(search_cfg)
    labels = searchable_labels(cfg)
    if not labels:
        raise ArchitectureError(f"{_describe(search_cfg)} has no {SEARCHABLE_MODULE} rows; derive needs a search YAML such as yolov4-p5-search.yaml")
    space = config_space(cfg)
    validate_choices(arch, labels, space)
    n_backbone = len(cfg["backbone"])
    for i, row in enumerate(cfg["backbone"] + cfg["head"]):
        if row[2] != SEARCHABLE_MODULE:
            continue
        f, n, _, args = row
        op = space.candidate(arch[block_label(i)])
        concrete = [f, op.depth or n, CONCRETE_MODULE, _concrete_args(args, op)]
        section, j = ("backbone", i) if i < n_backbone else ("head", i - n_backbone)
        cfg[section][j] = concrete
    cfg.pop(SPACE_KEY, None)  # a concrete model chooses nothing
    return cfg


# the sizes a search builds its supernet with (the YAML's own unless overridden), recorded in its arch.json
SIZE_KEYS = ("nc", "width_multiple", "depth_multiple")


def model_sizes(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """nc, width_multiple and depth_multiple of a model config (what arch.json records under 'model')."""
    return {key: cfg[key] for key in SIZE_KEYS if key in cfg}


def recorded_sizes(arch_file: str | Path) -> tuple[dict[str, Any], Path | None]:
    """The sizes the search that wrote `arch_file` used, and the file they were read from: its 'model' entry, or
    (an arch.json written before it had one) the derived neck_nas_model.yaml beside it. ({}, None) for a plain
    architecture file, which records no sizes."""
    arch_file = Path(arch_file)
    try:
        record = json.loads(arch_file.read_text())
    except (OSError, ValueError):
        return {}, None  # Architecture.load says what is wrong with the file
    if isinstance(record, dict) and isinstance(record.get("model"), dict):
        return model_sizes(record["model"]), arch_file
    derived = arch_file.parent / "neck_nas_model.yaml"
    if isinstance(record, dict) and "architecture" in record and derived.is_file():
        return model_sizes(load_cfg(derived)), derived
    return {}, None


def _subnet_layers(supernet: Model, arch: Mapping[str, str]) -> nn.Module:
    """A module tree with the derived model's structure whose leaves are the supernet's own modules
    (shared, not copied): each searchable layer is replaced by its chosen candidate."""
    blocks = searchable_blocks(supernet)
    validate_choices(arch, blocks, model_space(supernet))
    layers = [layer.candidates[arch[block_label(layer.i)]] if isinstance(layer, MBottleneckCSP2) else layer for layer in supernet.model]
    tree = nn.Module()
    tree.model = nn.Sequential(*layers)
    return tree


def subnet_state_dict(supernet: Model, arch: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """The chosen candidates' (and every shared layer's) weights in the derived model's layout, ready for
    `derived.load_state_dict(..., strict=True)`. Tensors share storage with the supernet (detached)."""
    return _subnet_layers(supernet, arch).state_dict()


# Tensors of a BottleneckCSP2 laid over the concatenation of its two branches (y1, y2), and the dim that
# runs over it: a narrower block takes the same leading channels of each half.
_CONCAT_DIMS = {"bn.weight": 0, "bn.bias": 0, "bn.running_mean": 0, "bn.running_var": 0, "cv3.conv.weight": 1}


def _overlap(dst: torch.Tensor, src: torch.Tensor, name: str) -> None:
    """Copy what src and dst share into dst: leading channels, and for conv kernels the centre (a larger kernel
    receives the smaller one in its centre, zeros around it: with 'same' padding the bigger conv then computes
    what the smaller one did; a smaller kernel receives the centre of the larger one, the nearest it can)."""
    if dst.dim() != src.dim():
        raise ValueError(f"{name}: cannot map shape {tuple(src.shape)} onto {tuple(dst.shape)}")
    if dst.dim() == 0:
        dst.copy_(src)
        return
    halves = _CONCAT_DIMS.get(name)  # names relative to the block
    if halves is not None and dst.shape[halves] != src.shape[halves]:
        d, s_ = dst.shape[halves] // 2, src.shape[halves] // 2
        for start_dst, start_src in ((0, 0), (d, s_)):
            _overlap(dst.narrow(halves, start_dst, d), src.narrow(halves, start_src, s_), f"{name} half")
        return
    channels = [slice(0, min(a, b)) for a, b in zip(dst.shape[:2], src.shape[:2])]
    region, source = dst[tuple(channels)], src[tuple(channels)]
    if dst.dim() == 4 and dst.shape[-1] != src.shape[-1]:
        k_dst, k_src = dst.shape[-1], src.shape[-1]
        if k_dst >= k_src:
            offset = (k_dst - k_src) // 2
            region.zero_()
            region[..., offset : offset + k_src, offset : offset + k_src].copy_(source)
        else:
            offset = (k_src - k_dst) // 2
            region.copy_(source[..., offset : offset + k_dst, offset : offset + k_dst])
    else:
        region.copy_(source)


def _inherit_block(dst: nn.Module, src: nn.Module, flexible: bool) -> None:
    """Copy src's weights into dst, a block of the same class (module-relative names are equal). A shared
    layer (`flexible` False) must have src's shapes. A searchable block's candidate (`flexible`) may differ
    from src in kernel, hidden width and depth: it takes the overlap of each tensor (see _overlap), and a
    bottleneck src lacks takes src's last one, the nearest trained bottleneck there is."""
    src_state = src.state_dict()
    last = max((int(key.split(".")[1]) for key in src_state if key.startswith("m.")), default=None)
    with torch.no_grad():
        for name, dst_tensor in dst.state_dict().items():
            source_name = name
            if name not in src_state and flexible and name.startswith("m.") and last is not None:
                source_name = ".".join(["m", str(last), *name.split(".")[2:]])
            src_tensor = src_state.get(source_name)
            if src_tensor is None:
                raise ValueError(f"{name}: not in the source block")
            if dst_tensor.shape == src_tensor.shape:
                dst_tensor.copy_(src_tensor)
            elif flexible or (dst_tensor.dim() == 4 and dst_tensor.shape[:2] == src_tensor.shape[:2]):
                _overlap(dst_tensor, src_tensor, name)
            else:
                raise ValueError(f"{name}: cannot map shape {tuple(src_tensor.shape)} onto {tuple(dst_tensor.shape)}")


def inherit_base_weights(supernet: Model, base_state_dict: Mapping[str, torch.Tensor], arch: Mapping[str, str] | None = None,
                         source_cfg: dict | None = None) -> None:
    """Warm-start a supernet from a model's state_dict: by default the base model's (Scaled-YOLOv4 layout,
    e.g. a trained yolov4-p5), or that of a derived architecture `arch` of this supernet's space, or of any
    concrete model `source_cfg` of the same family, width and depth (a search's bestmodel.pt records its
    model_yaml, whichever space it was searched in). Every shared layer gets its weights and every
    candidate of a searchable block gets that block's: 3x3 kernels centred in the 5x5 candidates, 5x5
    kernels cropped to 3x3, the leading channels for a narrower candidate, the first bottlenecks for a
    shallower one (see _inherit_block). Raises ValueError if the state_dict does not fit (different nc,
    width or depth)."""
    labels = list(searchable_blocks(supernet))
    if source_cfg is None:
        source = dict(arch) if arch is not None else {label: BASE_CANDIDATE for label in labels}
        validate_choices(source, labels, model_space(supernet))
        source_cfg = derive_yaml(supernet.yaml, source)
    with torch.device("meta"):  # structure only; load_state_dict(assign=True) adopts the given tensors
        base = Model(source_cfg)
    try:
        base.load_state_dict(dict(base_state_dict), strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights do not fit this supernet's base model (check nc, width and depth): {exc}") from None
    if len(base.model) != len(supernet.model):
        raise ValueError(f"the weights are of a {len(base.model)}-layer model, this supernet has {len(supernet.model)} layers")
    for layer, base_layer in zip(supernet.model, base.model):
        try:
            if isinstance(layer, MBottleneckCSP2):
                for op in layer.candidates.values():
                    _inherit_block(op, base_layer, flexible=True)
            else:
                _inherit_block(layer, base_layer, flexible=False)
        except ValueError as exc:
            raise ValueError(f"the weights do not fit this supernet (check nc, width and depth): layer {layer.i}: {exc}") from None


NECK_BLOCK = CONCRETE_MODULE  # the base model's neck blocks are the concrete module the candidates derive to
SEARCHABLE_ARGS = 4  # MBottleneckCSP2(c2, shortcut, g, e): the candidates fix kernel and activation


class OtherFamilyError(ValueError):
    """The base model is a valid config of another detector family (not YOLOv4-P5-like); says which."""


def search_cfg_from_base(path: Path) -> dict:
    """The search config built from a base model YAML; ValueError naming the file and row when impossible."""
    cfg = load_cfg(path)
    foreign = sorted({str(row[2]) for row in config_rows(cfg) if isinstance(row, list) and len(row) == 4} - set(MODULES))
    if foreign:
        raise OtherFamilyError(f"a model of another family (its modules {', '.join(foreign)} are not YOLOv4-P5's)")
    if any(len(row) == 4 and row[2] == SEARCHABLE_MODULE for row in config_rows(cfg)):
        return cfg
    first_head = len(cfg["backbone"])
    converted = 0
    for offset, row in enumerate(cfg["head"]):
        if len(row) == 4 and row[2] == NECK_BLOCK:
            args = list(row[3])
            if len(args) > SEARCHABLE_ARGS:
                raise ValueError(f"{path}: row {first_head + offset} ({NECK_BLOCK} {args}) fixes the kernel/activation "
                                 f"that the search chooses; give at most [c2, shortcut, g, e]")
            row[2] = SEARCHABLE_MODULE
            converted += 1
    if not converted:
        raise OtherFamilyError(f"its head has no {NECK_BLOCK} rows, so there is no neck this search space fits "
                               f"(a YOLOv4-P5-family model is expected)")
    with torch.device("meta"):  # fails here, naming the row, rather than in the search; allocates nothing
        build_model(cfg)
    return cfg
