"""The model a project's search will build, checked for size before anything is allocated.

The server checks by arithmetic only (search/limits.check_cfg_rows on basemodel.yaml or neck_nas.yaml's
cfg file): nothing is built in a request thread, and torch is not imported there. The job turns
basemodel.yaml into the search space and counts the parameters of the model it will search on PyTorch's
meta device (search/limits.check_model_params), before the search builds it for real.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from autonn_nas.models.bounded_yaml import load_yaml_file
from autonn_nas.search.limits import check_cfg_rows
from autonn_nas.search.settings import SearchSettings


def check_cfg_arithmetic(cfg_file: Path, settings: SearchSettings) -> None:
    """Rows, repeats and channels of a project's model config, at the settings' width/depth (when set)."""
    check_cfg_rows(load_yaml_file(cfg_file), str(cfg_file), settings.width, settings.depth)


def search_space_of(basemodel: Path) -> tuple[dict | None, str | None]:
    """(the search config, None) built from basemodel.yaml, or (None, why the built-in base is searched instead)
    for a base of another family. ValueError naming the file and row for a base that cannot be built. In the job."""
    from autonn_nas.search.derive import OtherFamilyError, search_cfg_from_base

    try:
        return search_cfg_from_base(basemodel), None
    except OtherFamilyError as exc:  # e.g. a YOLOv7/v9 base chosen by an earlier stage
        return None, str(exc)


def check_model_size(settings: SearchSettings, search_cfg: dict[str, Any] | None) -> int:
    """The parameter count of the model the search will build on this machine (its device's default sizes),
    counted on the meta device; SizeLimitError beyond the limit. In the job."""
    from autonn_nas.search.limits import check_model_params
    from autonn_nas.utils.device import select_device

    on_gpu = select_device(settings.device).type == "cuda"
    sized = settings.resolve_defaults(on_gpu=on_gpu, processes=settings.nproc)
    sized.validate("search settings with this machine's defaults")
    cfg = search_cfg if search_cfg is not None else settings.cfg
    return check_model_params(cfg, "basemodel.yaml" if search_cfg is not None else str(settings.cfg), sized.width, sized.depth)
