"""Checkpoints as plain dicts of tensors and Python values (no pickled modules), loadable with weights_only.

Keys: model_yaml (the built model's config dict), state_dict (EMA weights: what to evaluate/deploy),
nc, names, epoch, best_fitness, settings, hyp; and in last.pt only, what resuming needs: train_state_dict
(the raw weights), optimizer, ema, scaler, rng.
"""
from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from autonn_nas.utils.files import atomic_torch_save

RESUME_KEYS = ("train_state_dict", "optimizer", "ema", "scaler", "rng")
DEFAULT_IMG_SIZE = 640  # what a checkpoint that does not say its size was trained at (Scaled-YOLOv4's P5 default)


def rng_states(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every random state a training run draws from, in weights_only-loadable types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    for name, generator in (generators or {}).items():
        if name in states.get("generators", {}):
            generator.set_state(states["generators"][name])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any], for_resume: bool = True) -> Path:
    """Write atomically; `for_resume=False` drops the optimizer and other resume-only state (best.pt)."""
    if not for_resume:
        checkpoint = {k: v for k, v in checkpoint.items() if k not in RESUME_KEYS}
    return atomic_torch_save(path, checkpoint)


def read_weights_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """The contents of a .pt file, read as tensors and plain values only (weights_only: nothing in the file is
    executed). The one place a weights file is opened; load_checkpoint and search/weights_file.py build on it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # torch's message runs over many lines; what it means fits in one
        reason = "it holds pickled Python objects (e.g. a whole model), which are never unpickled here, or is no torch file"
    except Exception as error:  # e.g. a truncated file
        reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    raise ValueError(f"{path} cannot be read safely as tensors ({reason}); a pickled model (Scaled-YOLOv4's own "
                     "checkpoints) must be saved as a state_dict first: see docs/cli.md, 'Starting from weights'")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    checkpoint = read_weights_file(path, map_location)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "model_yaml" not in checkpoint:
        raise ValueError(f"{path} lacks 'state_dict' / 'model_yaml'; expected a checkpoint written by autonn-nas train or search")
    return checkpoint


def reject_supernet(checkpoint: dict[str, Any], path: str | Path) -> None:
    """A search's last.pt holds the supernet (every candidate of each searchable block): it is no model to evaluate,
    export or predict with. Said with what to use instead."""
    from autonn_nas.models.yolo import searchable_labels

    if searchable_labels(checkpoint["model_yaml"]):
        derived = Path(path).parent / "bestmodel.pt"
        raise ValueError(f"{path} is a supernet checkpoint (a search's last.pt, with searchable MBottleneckCSP2 blocks); use the "
                         f"search's derived model {derived}, or a checkpoint trained from its neck_nas_model.yaml")


def model_from_checkpoint(checkpoint: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model from its YAML and load the (EMA) weights; eval mode."""
    from autonn_nas.models.yolo import build_model

    model = build_model(checkpoint["model_yaml"], nc=checkpoint.get("nc"))
    model.load_state_dict(checkpoint["state_dict"])
    if checkpoint.get("names") is not None:
        model.names = list(checkpoint["names"])
    return model.to(device).eval()


def checkpoint_img_size(checkpoint: dict[str, Any]) -> int:
    """The input size the weights were trained or searched at (bestmodel.pt: img_size; train's: settings.img_size)."""
    size = checkpoint.get("img_size") or (checkpoint.get("settings") or {}).get("img_size")
    return int(size) if size else DEFAULT_IMG_SIZE
