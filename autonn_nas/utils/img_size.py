"""The one rule for square input sizes (a multiple of the largest stride) and the message that says the fix."""
from __future__ import annotations

MAX_STRIDE = 32  # YOLOv4-P5's largest stride: every feature map must divide the input evenly


def img_size_problem(value: object) -> str | None:
    """Why `value` cannot be an input size, with the sizes nearest to it; None when it can."""
    if isinstance(value, bool) or not isinstance(value, int) or value < MAX_STRIDE:
        return f"must be a positive multiple of {MAX_STRIDE} (the largest stride), got {value!r}; e.g. 320 or 640"
    if value % MAX_STRIDE:
        below = value // MAX_STRIDE * MAX_STRIDE
        return f"must be a multiple of {MAX_STRIDE} (the largest stride), got {value}; use {below} or {below + MAX_STRIDE}"
    return None


def check_img_size(value: int, name: str = "img_size") -> int:
    """`value`, or a ValueError naming `name` and the nearest valid sizes."""
    problem = img_size_problem(value)
    if problem:
        raise ValueError(f"{name} {problem}")
    return value
