"""Reading images: a cheap check at scan time, and decoding to RGB uint8 arrays at load time.

Sizes are those of the image as displayed, i.e. after its EXIF orientation is applied, because that is the
frame YOLO labels are drawn in. Grayscale, RGBA, palette and 16-bit images all come out as 3-channel RGB.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from autonn_nas.data.letterbox import resize_interpolation

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # these swap width and height
_JPEG_END = b"\xff\xd9"
MIN_IMAGE_SIDE = 2  # a 1-pixel image cannot carry a box


class ImageProblem(Exception):
    """An image that cannot be used; the message says why (it becomes a 'skipped' entry of the report)."""


def check_image(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image as displayed, or ImageProblem when it is missing, corrupt or truncated."""
    path = Path(path)
    if not path.is_file():
        raise ImageProblem("image file not found")
    try:
        with Image.open(path) as image:
            image.verify()  # structure and checksums, without decoding all pixels
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            if image.format == "JPEG" and not _ends_with_jpeg_marker(path):
                # No end marker: either trailing bytes after it (harmless) or a cut-off file. Decode to tell.
                image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageProblem(f"corrupt or truncated image ({error})") from error
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageProblem(f"image too small ({width}x{height})")
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    return width, height


def _ends_with_jpeg_marker(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-2, 2)
        return f.read() == _JPEG_END


def load_image(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """Decode an image to an RGB uint8 array (H, W, 3), EXIF orientation applied.

    max_side: resize so that the longer side is exactly this many pixels (aspect ratio kept). JPEGs are then
    decoded at a reduced scale when that is at least twice the target (much faster; same result after resize).
    """
    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            transposed = orientation in _TRANSPOSED_ORIENTATIONS
            target = _target_size(image.size, transposed, max_side) if max_side is not None else None
            if target is not None and image.format == "JPEG":
                # draft() decodes at 1/2, 1/4 or 1/8 scale while both sides stay at least the requested size
                image.draft("RGB", target[::-1] if transposed else target)
            if orientation != 1:  # exif_transpose copies the image even when there is nothing to do
                image = ImageOps.exif_transpose(image)
            array = _to_rgb_array(image)
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageProblem(f"{path}: cannot decode image ({error})") from error
    if target is not None and (array.shape[1], array.shape[0]) != target:
        scale = target[0] / array.shape[1]
        array = cv2.resize(array, target, interpolation=resize_interpolation(scale))
    return np.ascontiguousarray(array)


def _target_size(stored_size: tuple[int, int], transposed: bool, max_side: int) -> tuple[int, int]:
    """(width, height) with the longer side at max_side, computed from the full-size, oriented image so that
    it does not depend on how the decoder happened to reduce it."""
    width, height = stored_size[::-1] if transposed else stored_size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale to 8 bits rather than letting PIL clip everything above 255
        values = np.asarray(image, dtype=np.float64)
        peak = values.max() if values.size and values.max() > 0 else 1.0
        gray = np.clip(values * (255.0 / peak if peak > 255 else 1.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # composite on the letterbox grey, so transparent areas look like padding rather than black
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (114, 114, 114, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
