"""Place the model code next to a project's outputs, as a package that needs only torch and PyYAML.

autonn_nas/models/ imports its own modules relatively, so the folder works under any package name:
copied as `<dest>/neck_nas_models/`, `from neck_nas_models import build_model` rebuilds the network from
the derived YAML without autonn_nas installed (what TANGO's code-generation stages do with class_file).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import autonn_nas.models as models_package

DEFAULT_PACKAGE = "neck_nas_models"
README = """\
# {package}: the model code of neck_nas_model.yaml (copied from autonn_nas/models; needs torch and PyYAML only)

    import sys, torch
    sys.path.insert(0, "<the folder that holds {package}/>")
    from {package} import build_model
    model = build_model("{config_file}")
    model.load_state_dict(torch.load("{weight_file}", map_location="cpu", weights_only=True)["state_dict"])
    model.eval()
    pred, raw = model(images)  # images: float (bs, 3, H, W) RGB in 0..1, H and W multiples of 32
    # pred: (bs, N, nc+5) = xywh in input pixels, objectness, class probabilities (apply NMS);
    # raw: per level (bs, anchors, H/stride, W/stride, nc+5) logits
"""


def model_source_files() -> list[Path]:
    """The Python files of autonn_nas/models (the package that is copied)."""
    return sorted(Path(models_package.__file__).resolve().parent.glob("*.py"))


def place_model_package(dest_dir: str | Path, package: str = DEFAULT_PACKAGE, config_file: str = "neck_nas_model.yaml",
                        weight_file: str = "bestmodel.pt") -> Path:
    """Copy the model code to `dest_dir/package/` (replacing an older copy as a whole); returns that folder.

    The copy is assembled in a temporary folder beside it and renamed into place, so a reader never sees
    half a package."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / package
    staging = Path(tempfile.mkdtemp(prefix=f".{package}.", dir=dest_dir))
    try:
        for source in model_source_files():
            shutil.copyfile(source, staging / source.name)
        (staging / "README.md").write_text(README.format(package=package, config_file=config_file, weight_file=weight_file))
        os.chmod(staging, 0o755)  # mkdtemp makes 0700; other stages' users read the shared volume
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{package}.old.", dir=dest_dir))
            os.replace(target, old / package)
            shutil.rmtree(old)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target

