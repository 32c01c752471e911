"""Boxes and class names drawn on an image, for people to look at (predict --save)."""
from __future__ import annotations

import colorsys
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def class_color(cls: int) -> tuple[int, int, int]:
    """A stable, well-separated colour per class (golden-ratio steps around the hue circle)."""
    hue = (cls * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(image_rgb: np.ndarray, detections: np.ndarray, names: Sequence[str]) -> Image.Image:
    """The image with each detection [x1, y1, x2, y2, conf, cls] (original pixels) drawn as a box and a
    'name 0.87' label; line width and font size follow the image size."""
    image = Image.fromarray(image_rgb).convert("RGB")
    draw = ImageDraw.Draw(image)
    side = max(image.size)
    line = max(1, round(side / 320))
    font = ImageFont.load_default(size=max(10, round(side / 40)))
    for x1, y1, x2, y2, conf, cls in np.asarray(detections, dtype=np.float64).reshape(-1, 6):
        cls = int(cls)
        color = class_color(cls)
        name = names[cls] if 0 <= cls < len(names) else str(cls)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=line)
        text = f"{name} {conf:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        width, height = right - left + 2 * line, bottom - top + 2 * line
        label_x, label_y = label_origin((x1, y1), (width, height), image.size)
        draw.rectangle((label_x, label_y, label_x + width, label_y + height), fill=color)
        draw.text((label_x + line, label_y + line - top), text, fill=(255, 255, 255), font=font)
    return image


def label_origin(box_top_left: tuple[float, float], label_size: tuple[float, float], image_size: tuple[int, int]) -> tuple[float, float]:
    """Where a box's label goes: on the box's top edge, above it; inside the box when there is no room above;
    always wholly inside the image (a box at the right or bottom edge pushes its label in)."""
    (x1, y1), (width, height), (image_w, image_h) = box_top_left, label_size, image_size
    y = y1 - height if y1 - height >= 0 else y1
    return max(0.0, min(x1, image_w - width)), max(0.0, min(y, image_h - height))
