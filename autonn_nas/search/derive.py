"""From (search space, architecture) to a concrete model: a pure YAML rewrite and a structural weight map.

derive_yaml turns each searchable row `[f, n, MBottleneckCSP2, [c2]]` into a concrete
`[f, n, BottleneckCSP2, args]`: `[c2]` for the base candidate (exactly Scaled-YOLOv4's row), else
`[c2, shortcut, g, e, kernel, activation]` so the choice is visible in the row. Because the supernet's
candidates are the same BottleneckCSP2 class as the derived blocks, a candidate's state_dict has the
derived block's layout, and subnet_state_dict is a walk over layers rather than key rewriting.

search_cfg_from_base is the inverse of derive_yaml: a base model YAML (TANGO's basemodel.yaml) whose neck
`BottleneckCSP2` rows become searchable. A base of another family (TANGO's AutoNN picks YOLOv7 or YOLOv9
bases) has no neck this search space fits: OtherFamilyError, and the stage searches the built-in base.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from autonn_nas.models.choice import MBottleneckCSP2, searchable_blocks
from autonn_nas.models.search_space import (
    BASE_CANDIDATE,
    CONCRETE_MODULE,
    ArchitectureError,
    SEARCHABLE_MODULE,
    block_label,
    candidate,
    validate_choices,
)
from autonn_nas.models.yolo import MODULES, Model, build_model, config_rows, load_cfg, searchable_labels

# BottleneckCSP2(c1, c2, n, shortcut, g, e, k, act): defaults of the optional args before k and act
_CSP2_DEFAULTS = (False, 1, 0.5)


def _concrete_args(args: list, name: str) -> list:
    if name == BASE_CANDIDATE:
        return list(args)
    if len(args) > 1 + len(_CSP2_DEFAULTS):
        raise ValueError(f"searchable row args {args} already carry kernel/activation; expected [c2] or [c2, shortcut, g, e]")
    op = candidate(name)
    given = list(args[1:])
    return [args[0], *given, *_CSP2_DEFAULTS[len(given):], op.kernel, op.act]


def _describe(cfg) -> str:
    return "the config dict" if isinstance(cfg, dict) else str(cfg)


def derive_yaml(search_cfg: dict | str | Path, arch: Mapping[str, str]) -> dict:
    """The concrete model config of `arch` within `search_cfg` (never modified; a deep copy is returned)."""
    cfg = load_cfg(search_cfg)
    labels = searchable_labels(cfg)
    if not labels:
        raise ArchitectureError(f"{_describe(search_cfg)} has no {SEARCHABLE_MODULE} rows; derive needs a search YAML such as yolov4-p5-search.yaml")
    validate_choices(arch, labels)
    n_backbone = len(cfg["backbone"])
    for i, row in enumerate(cfg["backbone"] + cfg["head"]):
        if row[2] != SEARCHABLE_MODULE:
            continue
        f, n, _, args = row
        concrete = [f, n, CONCRETE_MODULE, _concrete_args(args, arch[block_label(i)])]
        section, j = ("backbone", i) if i < n_backbone else ("head", i - n_backbone)
        cfg[section][j] = concrete
    return cfg


def _subnet_layers(supernet: Model, arch: Mapping[str, str]) -> nn.Module:
    """A module tree with the derived model's structure whose leaves are the supernet's own modules
    (shared, not copied): each searchable layer is replaced by its chosen candidate."""
    blocks = searchable_blocks(supernet)
    validate_choices(arch, blocks)
    layers = [layer.candidates[arch[block_label(layer.i)]] if isinstance(layer, MBottleneckCSP2) else layer for layer in supernet.model]
    tree = nn.Module()
    tree.model = nn.Sequential(*layers)
    return tree


def subnet_state_dict(supernet: Model, arch: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """The chosen candidates' (and every shared layer's) weights in the derived model's layout, ready for
    `derived.load_state_dict(..., strict=True)`. Tensors share storage with the supernet (detached)."""
    return _subnet_layers(supernet, arch).state_dict()


def _inherit_block(dst: nn.Module, src: nn.Module) -> None:
    """Copy src's weights into dst, a block of the same class and structure (module-relative names are
    equal). A larger conv kernel receives the smaller one in its centre, zeros around it: with 'same'
    padding the bigger conv then computes exactly what the smaller one did. A smaller kernel receives the
    centre of the larger one (the nearest it can compute)."""
    src_state = src.state_dict()
    with torch.no_grad():
        for name, dst_tensor in dst.state_dict().items():
            src_tensor = src_state[name]
            if dst_tensor.shape == src_tensor.shape:
                dst_tensor.copy_(src_tensor)
            elif dst_tensor.dim() == 4 and dst_tensor.shape[:2] == src_tensor.shape[:2]:
                k_dst, k_src = dst_tensor.shape[-1], src_tensor.shape[-1]
                if k_dst >= k_src:
                    offset = (k_dst - k_src) // 2
                    dst_tensor.zero_()
                    dst_tensor[..., offset : offset + k_src, offset : offset + k_src].copy_(src_tensor)
                else:
                    offset = (k_src - k_dst) // 2
                    dst_tensor.copy_(src_tensor[..., offset : offset + k_dst, offset : offset + k_dst])
            else:
                raise ValueError(f"{name}: cannot map shape {tuple(src_tensor.shape)} onto {tuple(dst_tensor.shape)}")


def inherit_base_weights(supernet: Model, base_state_dict: Mapping[str, torch.Tensor], arch: Mapping[str, str] | None = None) -> None:
    """Warm-start a supernet from a model's state_dict: by default the base model's (Scaled-YOLOv4 layout,
    e.g. a trained yolov4-p5), or that of a derived architecture `arch` (a search's bestmodel.pt). Every
    shared layer gets its weights and every candidate of a searchable block gets that block's (3x3
    kernels centred in the 5x5 candidates, 5x5 kernels cropped to 3x3). Raises ValueError if the
    state_dict does not fit (different nc, width or depth)."""
    labels = list(searchable_blocks(supernet))
    source = dict(arch) if arch is not None else {label: BASE_CANDIDATE for label in labels}
    validate_choices(source, labels)
    with torch.device("meta"):  # structure only; load_state_dict(assign=True) adopts the given tensors
        base = Model(derive_yaml(supernet.yaml, source))
    try:
        base.load_state_dict(dict(base_state_dict), strict=True, assign=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights do not fit this supernet's base model (check nc, width and depth): {exc}") from None
    for layer, base_layer in zip(supernet.model, base.model):
        if isinstance(layer, MBottleneckCSP2):
            for op in layer.candidates.values():
                _inherit_block(op, base_layer)
        else:
            _inherit_block(layer, base_layer)


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
