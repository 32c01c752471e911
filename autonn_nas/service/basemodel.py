"""A project's basemodel.yaml -> the search YAML: its neck (head) BottleneckCSP2 rows become searchable.

TANGO lets the user supply the base model; this stage searches its neck blocks. A basemodel.yaml that
already has MBottleneckCSP2 rows is used as it is. One of another family (TANGO's AutoNN picks YOLOv7 or
YOLOv9 bases) has no neck this search space fits: OtherFamilyError, and the job searches the built-in base.
"""
from __future__ import annotations

from pathlib import Path

from autonn_nas.models.search_space import SEARCHABLE_MODULE

NECK_BLOCK = "BottleneckCSP2"
SEARCHABLE_ARGS = 4  # MBottleneckCSP2(c2, shortcut, g, e): the candidates fix kernel and activation


class OtherFamilyError(ValueError):
    """The base model is a valid config of another detector family (not YOLOv4-P5-like); says which."""


def search_cfg_from_base(path: Path) -> dict:
    """The search config built from a base model YAML; ValueError naming the file and row when impossible."""
    from autonn_nas.models.yolo import MODULES, build_model, config_rows, load_cfg

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
    build_model(cfg, width=0.0625, depth=0.33)  # fails here, naming the row, rather than in the job
    return cfg
