"""How large a search may be, checked by arithmetic before anything is allocated.

The settings' sizes (SearchSettings.validate) and a model config's rows (check_cfg_rows) are checked without
torch, so the stage's server can refuse a project at /start without building anything. The model itself
is checked by the job, on PyTorch's meta device (parameters without storage), before the search builds it
for real (check_model_params).

The bounds are far above any real search (the YOLOv4-P5 supernet at full width has 201 M parameters, its
widest row 1024 channels) and far below what would take a machine down.
"""
from __future__ import annotations

from typing import Any

from autonn_nas.data.config import MAX_CLASSES as MAX_NC

MAX_IMG_SIZE = 2048
MAX_BATCH_SIZE = 1024
MAX_BATCH_PIXELS = 256 * 1024 * 1024  # batch_size x img_size^2: 256 images of 1024 px, 64 of 2048 px
MAX_MULTIPLE = 4.0  # width / depth multiples
MAX_EPOCHS = 10_000
MAX_WORKERS = 64
MAX_EVALUATIONS = 100_000
MAX_NPROC = 64
MAX_SEED = 2**32 - 1  # numpy's seeds
MAX_BUDGET = 100.0  # times the base model's cost
MAX_ROWS = 512  # layers of a model config
MAX_CHANNELS = 8192  # output channels of one row, after the width multiple
MAX_REPEATS = 64  # a row's number, after the depth multiple
MAX_MODEL_PARAMS = 1_000_000_000  # 4 GB of fp32 weights, before gradients and optimizer state

# upper bounds of SearchSettings' numeric fields (the lower bounds are in SearchSettings.validate)
SETTING_MAXIMA: dict[str, float] = {
    "epochs": MAX_EPOCHS, "img_size": MAX_IMG_SIZE, "batch_size": MAX_BATCH_SIZE, "width": MAX_MULTIPLE,
    "depth": MAX_MULTIPLE, "budget": MAX_BUDGET, "seed": MAX_SEED, "workers": MAX_WORKERS,
    "evaluations": MAX_EVALUATIONS, "nproc": MAX_NPROC, "retrain_epochs": MAX_EPOCHS,
}


class SizeLimitError(ValueError):
    """A setting or a model config beyond the limits above; the message names it, the limit and the fix."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_cfg_rows(cfg: Any, source: str, width: float | None = None, depth: float | None = None) -> None:
    """Arithmetic checks of a model config dict (rows `[from, number, module, args]`): the number of rows, each
    row's repeats after the depth multiple and, where its first argument is a number (its output channels), the
    channels after the width multiple. `width`/`depth` override the config's multiples, as the search does.
    Nothing is built and torch is not imported; the module names and the rest are checked when the model is built."""
    if not isinstance(cfg, dict):
        raise SizeLimitError(f"{source}: a model config must be a mapping, got a YAML {type(cfg).__name__}")
    gw = cfg.get("width_multiple", 1.0) if width is None else width
    gd = cfg.get("depth_multiple", 1.0) if depth is None else depth
    for name, value in (("width_multiple", gw), ("depth_multiple", gd)):
        if not _number(value) or not 0 < value <= MAX_MULTIPLE:
            raise SizeLimitError(f"{source}: {name} must be a number in (0, {MAX_MULTIPLE:g}], got {str(value)[:40]!r}")
    nc = cfg.get("nc")
    if _number(nc) and not 1 <= nc <= MAX_NC:
        raise SizeLimitError(f"{source}: nc must be 1..{MAX_NC}, got {nc}")
    rows = []
    for section in ("backbone", "head"):
        part = cfg.get(section)
        if not isinstance(part, list):
            raise SizeLimitError(f"{source}: '{section}' must be a list of rows [from, number, module, args]")
        rows.extend((section, index, row) for index, row in enumerate(part))
    if len(rows) > MAX_ROWS:
        raise SizeLimitError(f"{source}: {len(rows)} rows; a model config may have at most {MAX_ROWS}")
    for section, index, row in rows:
        where = f"{source}: {section} row {index}"
        if not isinstance(row, list) or len(row) != 4:
            raise SizeLimitError(f"{where}: expected [from, number, module, args]")
        number, args = row[1], row[3]
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number * max(gd, 1.0) <= MAX_REPEATS:
            raise SizeLimitError(f"{where}: number must be a positive integer of at most {MAX_REPEATS} repeats "
                                 f"(after depth_multiple {gd:g}), got {str(number)[:40]!r}")
        first = args[0] if isinstance(args, list) and args and row[2] != "Detect" else None  # Detect's is nc
        if _number(first) and not 0 < first * gw <= MAX_CHANNELS:
            raise SizeLimitError(f"{where}: {first:g} output channels x width_multiple {gw:g} is beyond "
                                 f"{MAX_CHANNELS} channels a row")


def check_batch_pixels(batch_size: int | None, img_size: int | None, source: str) -> None:
    if batch_size is not None and img_size is not None and batch_size * img_size**2 > MAX_BATCH_PIXELS:
        raise SizeLimitError(f"{source}: batch_size {batch_size} x img_size {img_size}^2 is beyond {MAX_BATCH_PIXELS} "
                             f"pixels a step; lower batch_size or img_size")


def check_model_params(cfg: Any, source: str, width: float | None = None, depth: float | None = None) -> int:
    """The parameter count of the model `cfg` builds (a config dict or path), counted on the meta device: no
    memory is allocated, however large; SizeLimitError beyond MAX_MODEL_PARAMS. Needs torch: run it in the job."""
    import torch

    from autonn_nas.models.yolo import build_model, load_cfg

    data = load_cfg(cfg)
    check_cfg_rows(data, source, width, depth)  # bounds the meta build's own work (rows x repeats)
    with torch.device("meta"):
        model = build_model(data, width=width, depth=depth)
    params = sum(p.numel() for p in model.parameters())
    if params > MAX_MODEL_PARAMS:
        raise SizeLimitError(f"{source}: the model has {params / 1e6:.0f} M parameters (at width {width or data['width_multiple']:g}, "
                             f"depth {depth or data['depth_multiple']:g}); the limit is {MAX_MODEL_PARAMS / 1e6:.0f} M")
    return params
