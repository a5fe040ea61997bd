"""Pure geometry on V7 result dicts: crop regions, shifting, clipping, centres.

Boxes are `xywh` (top-left corner, width, height) or `xyxy` (corners), in pixels with the
origin at the top-left of the full image; `resolution_wh` is (width, height).
"""

from __future__ import annotations

import math
from typing import Any

#: Extra context around an Auto-Annotate box, as a fraction of the box size and at least this many px.
CROP_MARGIN_FRACTION = 0.1
CROP_MARGIN_MIN_PX = 8


def xywh_to_xyxy(xywh: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x, y, w, h = xywh
    return x, y, x + w, y + h


def clip_xywh(xywh: tuple[float, float, float, float], resolution_wh: tuple[int, int]) -> tuple[float, ...]:
    """The part of the box inside the image (width/height 0 when nothing is inside)."""
    width, height = resolution_wh
    x0, y0, x1, y1 = xywh_to_xyxy(xywh)
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    return x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0)


def crop_region_xyxy(box_xywh: tuple[float, float, float, float], resolution_wh: tuple[int, int]) -> tuple[int, ...]:
    """Integer pixel region to run a model on: the box plus a margin, inside the image.

    Never empty for a box that overlaps the image (callers reject boxes that do not).
    """
    width, height = resolution_wh
    x, y, w, h = box_xywh
    margin_x = max(CROP_MARGIN_FRACTION * w, CROP_MARGIN_MIN_PX)
    margin_y = max(CROP_MARGIN_FRACTION * h, CROP_MARGIN_MIN_PX)
    x0 = max(0, math.floor(x - margin_x))
    y0 = max(0, math.floor(y - margin_y))
    x1 = min(width, math.ceil(x + w + margin_x))
    y1 = min(height, math.ceil(y + h + margin_y))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def copy_result(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars): what copy.deepcopy gives, ~6x faster.

    Results are copied at every step (shift, clip, round); a face mesh has ~500 points.
    """
    if isinstance(value, dict):
        return {key: copy_result(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_result(item) for item in value]
    return value


def _points(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every {x, y} dict of a result's geometry (bounding boxes are handled on their own)."""
    if "polygon" in result:
        return result["polygon"]["path"]
    if "line" in result:
        return result["line"]["path"]
    if "skeleton" in result:
        return result["skeleton"]["nodes"]
    if "keypoint" in result:
        return [result["keypoint"]]
    return []


def shift_result(result: dict[str, Any], dx: float, dy: float) -> dict[str, Any]:
    """A copy of the result moved by (dx, dy): from crop pixels to full-image pixels."""
    shifted = copy_result(result)
    if "bounding_box" in shifted:
        shifted["bounding_box"]["x"] += dx
        shifted["bounding_box"]["y"] += dy
    for point in _points(shifted):
        point["x"] += dx
        point["y"] += dy
    return shifted


def result_center_xy(result: dict[str, Any]) -> tuple[float, float] | None:
    """Where a result is, for "is it inside the Auto-Annotate box"; None for tags."""
    if "bounding_box" in result:
        box = result["bounding_box"]
        return box["x"] + box["w"] / 2, box["y"] + box["h"] / 2
    points = _points(result)
    if "skeleton" in result:
        visible = [p for p in points if not p["occluded"]]
        points = visible or points
    if not points:
        return None
    return sum(p["x"] for p in points) / len(points), sum(p["y"] for p in points) / len(points)


def point_in_xywh(point_xy: tuple[float, float], box_xywh: tuple[float, float, float, float]) -> bool:
    x, y = point_xy
    bx, by, bw, bh = box_xywh
    return bx <= x <= bx + bw and by <= y <= by + bh


def _polygon_area(path: list[dict[str, float]]) -> float:
    n = len(path)
    twice = sum(path[i]["x"] * path[(i + 1) % n]["y"] - path[(i + 1) % n]["x"] * path[i]["y"] for i in range(n))
    return abs(twice) / 2


def clip_result(result: dict[str, Any], resolution_wh: tuple[int, int]) -> dict[str, Any] | None:
    """A copy clipped to the image, or None when nothing usable is left inside it.

    Boxes are intersected with the image (zero-size boxes are dropped: V7 rejects them);
    polygon and line points are clamped to the border (degenerate polygons are dropped);
    skeleton nodes outside are clamped and marked occluded (V7 needs x, y >= 0); a keypoint
    outside the image is dropped.
    """
    width, height = resolution_wh
    clipped = copy_result(result)
    if "bounding_box" in clipped:
        box = clipped["bounding_box"]
        x, y, w, h = clip_xywh((box["x"], box["y"], box["w"], box["h"]), resolution_wh)
        if w <= 0 or h <= 0:
            return None
        clipped["bounding_box"] = {"x": x, "y": y, "w": w, "h": h}
        return clipped
    if "keypoint" in clipped:
        point = clipped["keypoint"]
        return clipped if 0 <= point["x"] <= width and 0 <= point["y"] <= height else None
    for point in _points(clipped):
        inside = 0 <= point["x"] <= width and 0 <= point["y"] <= height
        point["x"] = min(max(point["x"], 0.0), float(width))
        point["y"] = min(max(point["y"], 0.0), float(height))
        if "occluded" in point and not inside:
            point["occluded"] = True
    if "polygon" in clipped and _polygon_area(clipped["polygon"]["path"]) <= 0:
        return None
    if "line" in clipped:
        path = clipped["line"]["path"]
        if all((p["x"], p["y"]) == (path[0]["x"], path[0]["y"]) for p in path):
            return None
    return clipped


def round_result(result: dict[str, Any], decimals: int = 2) -> dict[str, Any]:
    """Coordinates rounded for a compact answer (sub-pixel detail beyond 0.01 px is noise)."""
    rounded = copy_result(result)
    if "bounding_box" in rounded:
        rounded["bounding_box"] = {k: round(v, decimals) for k, v in rounded["bounding_box"].items()}
    for point in _points(rounded):
        point["x"] = round(point["x"], decimals)
        point["y"] = round(point["y"], decimals)
    return rounded
