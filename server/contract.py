"""V7's request and response shapes as pure functions: parse what V7 sends, build what it reads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


class ApiError(Exception):
    """An error answered as V7's failed shape with this HTTP status and message."""

    def __init__(self, status_code: int, message: str, reason: str = "bad_request") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        #: A short machine-readable cause, for metrics and logs.
        self.reason = reason


@dataclass(frozen=True)
class InferRequest:
    image_url: str | None
    image_base64: str | None
    box_xywh: tuple[float, float, float, float] | None
    threshold: float | None


def succeeded(results: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"status": "succeeded", "results": results, **extra}


def failed(message: str) -> dict[str, Any]:
    return {"status": "failed", "results": [], "error": message}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_box_xywh(raw: Any) -> tuple[float, float, float, float]:
    """`{"x", "y", "w", "h"}` in full-image pixels; sizes must be positive."""
    if not isinstance(raw, dict):
        raise ApiError(400, 'bbox must be an object {"x", "y", "w", "h"} in image pixels', "bad_bbox")
    missing = [k for k in ("x", "y", "w", "h") if k not in raw]
    if missing:
        raise ApiError(400, f"bbox is missing {', '.join(missing)}", "bad_bbox")
    if not all(_number(raw[k]) for k in ("x", "y", "w", "h")):
        raise ApiError(400, "bbox x, y, w and h must be finite numbers", "bad_bbox")
    x, y, w, h = (float(raw[k]) for k in ("x", "y", "w", "h"))
    if w <= 0 or h <= 0:
        raise ApiError(400, f"bbox must have a positive size, got w={w:g}, h={h:g}", "bad_bbox")
    return x, y, w, h


def parse_infer_request(body: Any) -> InferRequest:
    """Check a request body; `bbox` and `threshold` may sit at the top or under `data`.

    Unknown keys (V7 may add some, e.g. `dicom`) are ignored.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", "bad_json")
    image = body.get("image")
    if image is None:
        raise ApiError(
            400, 'the request has no "image": send {"image": {"url": …}} or {"image": {"base64": …}}', "missing_image"
        )
    if not isinstance(image, dict):
        raise ApiError(400, '"image" must be an object with "url" or "base64"', "missing_image")
    url, b64 = image.get("url"), image.get("base64")
    if url is not None and b64 is not None:
        raise ApiError(400, 'send either "image.url" or "image.base64", not both', "both_url_and_base64")
    if url is None and b64 is None:
        raise ApiError(400, '"image" needs "url" or "base64"', "missing_image")
    if url is not None and (not isinstance(url, str) or not url.strip()):
        raise ApiError(400, '"image.url" must be a non-empty string', "bad_url")
    if b64 is not None and (not isinstance(b64, str) or not b64.strip()):
        raise ApiError(400, '"image.base64" must be a non-empty string', "bad_base64")

    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    raw_box = body.get("bbox", data.get("bbox"))
    box = None if raw_box is None else parse_box_xywh(raw_box)
    raw_threshold = body.get("threshold", data.get("threshold"))
    threshold = None
    if raw_threshold is not None:
        if not _number(raw_threshold) or not 0 <= raw_threshold <= 1:
            raise ApiError(400, f"threshold must be a number from 0 to 1, got {raw_threshold!r}", "bad_threshold")
        threshold = float(raw_threshold)
    return InferRequest(url.strip() if url else None, b64, box, threshold)


def box_within_image(box_xywh: tuple[float, float, float, float], resolution_wh: tuple[int, int]) -> None:
    """Reject a box that does not overlap the image at all (a partly outside box is fine)."""
    x, y, w, h = box_xywh
    width, height = resolution_wh
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ApiError(
            400, f"bbox ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the {width}x{height} image", "bbox_outside_image"
        )
