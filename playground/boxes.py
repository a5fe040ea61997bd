"""Box maths between the drawing canvas and the picture: display scale, canvas rectangles, typed numbers.

Kept apart from any module that imports `streamlit_drawable_canvas` (that import fails outside a
running Streamlit app), so it can be unit-tested. Boxes are `xywh` in pixels of the full picture
(origin top-left), as V7's `bbox` is; canvas values are in displayed pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Largest size the picture is shown at for drawing (the canvas does not scale itself to the page).
CANVAS_MAX_WH = (760, 600)
#: A drag shorter than this (in picture pixels) is a click, not a box.
MIN_BOX_SIDE_PX = 2.0

_ORIGIN_OFFSET = {"left": 0.0, "top": 0.0, "center": 0.5, "right": 1.0, "bottom": 1.0}


def display_size_wh(
    resolution_wh: tuple[int, int], max_wh: tuple[int, int] = CANVAS_MAX_WH, *, enlarge: bool = False
) -> tuple[int, int]:
    """The size to show a picture at: as large as fits in `max_wh`, aspect kept; enlarged only if asked."""
    width, height = resolution_wh
    scale = min(max_wh[0] / width, max_wh[1] / height)
    if not enlarge:
        scale = min(1.0, scale)
    return max(1, round(width * scale)), max(1, round(height * scale))


def canvas_rects(json_data: Mapping[str, Any] | None) -> list[tuple[float, float, float, float]]:
    """Every rectangle on a drawable canvas (fabric.js JSON), as xywh in canvas pixels, oldest first.

    fabric.js reports `type` "rect" or "Rect" depending on the version: compared case-insensitively.
    A rectangle resized in the canvas keeps its width/height and gets scaleX/scaleY instead.
    """
    rects = []
    for obj in (json_data or {}).get("objects") or []:
        if not isinstance(obj, Mapping) or str(obj.get("type", "")).lower() != "rect":
            continue
        width = float(obj.get("width", 0)) * float(obj.get("scaleX", 1) or 1)
        height = float(obj.get("height", 0)) * float(obj.get("scaleY", 1) or 1)
        left = float(obj.get("left", 0)) - _ORIGIN_OFFSET.get(str(obj.get("originX", "left")), 0.0) * width
        top = float(obj.get("top", 0)) - _ORIGIN_OFFSET.get(str(obj.get("originY", "top")), 0.0) * height
        if width < 0:  # dragged leftwards
            left, width = left + width, -width
        if height < 0:
            top, height = top + height, -height
        rects.append((left, top, width, height))
    return rects


def canvas_to_image_xywh(
    rect_xywh: tuple[float, float, float, float],
    display_wh: tuple[int, int],
    resolution_wh: tuple[int, int],
) -> tuple[float, float, float, float] | None:
    """A canvas rectangle in picture pixels, clipped to the picture and rounded to 0.1 px; None if too small."""
    scale_x = resolution_wh[0] / display_wh[0]
    scale_y = resolution_wh[1] / display_wh[1]
    x, y, w, h = rect_xywh
    x0, y0 = max(0.0, x * scale_x), max(0.0, y * scale_y)
    x1, y1 = min(float(resolution_wh[0]), (x + w) * scale_x), min(float(resolution_wh[1]), (y + h) * scale_y)
    if x1 - x0 < MIN_BOX_SIDE_PX or y1 - y0 < MIN_BOX_SIDE_PX:
        return None
    return round(x0, 1), round(y0, 1), round(x1 - x0, 1), round(y1 - y0, 1)


def last_box_from_canvas(
    json_data: Mapping[str, Any] | None, display_wh: tuple[int, int], resolution_wh: tuple[int, int]
) -> tuple[float, float, float, float] | None:
    """The most recently drawn usable rectangle, in picture pixels (V7 sends one box)."""
    for rect in reversed(canvas_rects(json_data)):
        box = canvas_to_image_xywh(rect, display_wh, resolution_wh)
        if box is not None:
            return box
    return None


def image_to_canvas_xywh(
    box_xywh: tuple[float, float, float, float], display_wh: tuple[int, int], resolution_wh: tuple[int, int]
) -> tuple[float, float, float, float]:
    scale_x = display_wh[0] / resolution_wh[0]
    scale_y = display_wh[1] / resolution_wh[1]
    x, y, w, h = box_xywh
    return x * scale_x, y * scale_y, w * scale_x, h * scale_y


def whole_image_xywh(resolution_wh: tuple[int, int]) -> tuple[float, float, float, float]:
    """The box V7 sends for Ctrl/Cmd+Enter: all of the picture."""
    return 0.0, 0.0, float(resolution_wh[0]), float(resolution_wh[1])


def check_typed_box(box_xywh: tuple[float, float, float, float], resolution_wh: tuple[int, int]) -> str | None:
    """Why typed box numbers cannot be sent as V7's bbox (None when they can)."""
    x, y, w, h = box_xywh
    if not all(math.isfinite(v) for v in box_xywh):
        return "the box numbers must be finite"
    if w <= 0 or h <= 0:
        return f"the box needs a positive width and height (got w={w:g}, h={h:g})"
    width, height = resolution_wh
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return f"the box ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the {width}x{height} picture"
    return None
