"""Images for inference and export checks: list a source, letterbox each image, and keep the mapping back."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from autonn_nas.data.config import IMAGE_EXTENSIONS
from autonn_nas.data.images import load_image
from autonn_nas.data.letterbox import RatioPad, letterbox


@dataclass
class PreparedImage:
    path: Path
    original: np.ndarray  # RGB uint8 (h0, w0, 3), EXIF orientation applied
    tensor: torch.Tensor  # float (3, S, S) in 0..1, letterboxed
    ratio_pad: RatioPad  # ((ratio_h, ratio_w), (pad_w, pad_h)) of the letterbox

    @property
    def original_hw(self) -> tuple[int, int]:
        return int(self.original.shape[0]), int(self.original.shape[1])


def list_images(sources: str | Path | Iterable[str | Path]) -> list[Path]:
    """Image files named by `sources`: files, or folders searched recursively (sorted). Errors name the path."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    found: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise FileNotFoundError(f"{path} holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            found.extend(files)
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ValueError(f"{path} is not an image this tool reads ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            found.append(path)
        else:
            raise FileNotFoundError(f"image source {path} does not exist")
    return found


def prepare_image(path: str | Path, img_size: int) -> PreparedImage:
    original = load_image(path)
    boxed, ratio, pad = letterbox(original, img_size)
    tensor = torch.from_numpy(np.ascontiguousarray(boxed.transpose(2, 0, 1))).float().div_(255.0)
    return PreparedImage(Path(path), original, tensor, (ratio, pad))


def image_batch(paths: Sequence[str | Path], img_size: int) -> torch.Tensor:
    """(n, 3, S, S) float batch of letterboxed images."""
    return torch.stack([prepare_image(p, img_size).tensor for p in paths])
