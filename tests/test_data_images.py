"""Image decoding: corrupt and truncated files are skipped, any colour mode becomes RGB, EXIF rotation is applied."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autonn_nas.data import YoloDataset
from autonn_nas.data.images import ImageProblem, check_image, load_image
from test_data_support import RED, draw_image, make_split, write_image, write_labels


def _truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_corrupt_and_truncated_images_are_skipped_and_reported(tmp_path):
    files = make_split(tmp_path, "train", 2)
    folder = files[0].parent
    garbage = folder / "garbage.jpg"
    garbage.write_bytes(b"\x00" * 100)
    cut_jpeg = _truncate(write_image(folder / "cut.jpg", (200, 150), quality=95))
    cut_png = _truncate(write_image(folder / "cut.png", (200, 150)), 0.6)
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    for path in (garbage, cut_jpeg, cut_png, empty):
        write_labels(path, ["0 0.5 0.5 0.2 0.2"])
    dataset = YoloDataset([*files, garbage, cut_jpeg, cut_png, empty], 64, nc=2, cache=False)
    assert [p.name for p in dataset.image_files] == ["img0.jpg", "img1.jpg"]
    skipped = {Path(s.path).name: s.reason for s in dataset.report.skipped_images}
    assert set(skipped) == {"garbage.jpg", "cut.jpg", "cut.png", "empty.png"}
    assert all("corrupt or truncated" in reason for reason in skipped.values())
    assert dataset.report.boxes == 3  # the skipped images' labels do not count


def test_jpeg_with_trailing_bytes_is_kept(tmp_path):
    path = write_image(tmp_path / "a.jpg", (40, 30))
    path.write_bytes(path.read_bytes() + b"trailing junk")
    assert check_image(path) == (40, 30)


def test_missing_image(tmp_path):
    with pytest.raises(ImageProblem, match="not found"):
        check_image(tmp_path / "none.jpg")


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "I;16", "CMYK"])
@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp", ".bmp", ".jpg"])
def test_every_mode_loads_as_rgb(tmp_path, mode, suffix):
    image = draw_image((30, 20), [(0.5, 0.5, 0.5, 0.5)])
    if mode == "I;16":
        image = Image.fromarray((np.asarray(image.convert("L"), np.uint16) * 256))
    else:
        image = image.convert(mode)
    path = tmp_path / f"x{suffix}"
    try:
        image.save(path)
    except (OSError, KeyError, ValueError):
        pytest.skip(f"PIL cannot write {mode} as {suffix}")
    assert check_image(path) == (30, 20)
    array = load_image(path)
    assert array.dtype == np.uint8 and array.shape == (20, 30, 3)
    assert load_image(path, max_side=60).shape == (40, 60, 3)


def test_rgba_transparent_areas_become_letterbox_grey(tmp_path):
    pixels = np.zeros((10, 10, 4), np.uint8)
    pixels[:5] = (255, 0, 0, 255)  # opaque red top half, transparent bottom half
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
    array = load_image(tmp_path / "a.png")
    assert tuple(array[0, 0]) == (255, 0, 0) and tuple(array[9, 9]) == (114, 114, 114)


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_rotation_applied_and_boxes_consistent(tmp_path, orientation):
    # the displayed image is 80x40 with a red box at the left; labels describe the displayed image
    box = (0.2, 0.5, 0.2, 0.5)
    displayed = draw_image((80, 40), [box])
    undo = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}[orientation]
    stored = displayed.transpose(undo)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "images" / "t" / "rotated.jpg"
    path.parent.mkdir(parents=True)
    stored.save(path, exif=exif, quality=95)
    write_labels(path, [f"0 {' '.join(map(str, box))}"])
    plain = write_image(tmp_path / "images" / "t" / "plain.jpg", (80, 40), [box], quality=95)
    write_labels(plain, [f"0 {' '.join(map(str, box))}"])

    dataset = YoloDataset([path, plain], img_size=80, nc=1, cache=False)
    assert dataset.shapes.tolist() == [[80, 40], [80, 40]]
    for index in range(2):
        image, targets, _, ((h0, w0), _) = dataset[index]
        assert (h0, w0) == (40, 80)
        _, _, cx, cy, w, h = targets[0].tolist()
        x1, y1, x2, y2 = round((cx - w / 2) * 80), round((cy - h / 2) * 80), round((cx + w / 2) * 80), round((cy + h / 2) * 80)
        inside = image[:, y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].float().mean(dim=(1, 2))
        assert inside.tolist() == pytest.approx(RED, abs=25), f"box region is not red in {dataset.image_files[index].name}"
