"""Outline the object inside the Auto-Annotate box: a polygon model on OpenCV's GrabCut (no download).

A worked example of a plug-in model that *uses* the box the user draws in V7: GrabCut takes the box
as "the object is somewhere in here, everything outside is background", learns colour models of both,
and labels each pixel; the largest foreground region becomes one polygon.

    python run.py serve --model-file examples/box_contours.py
    # POST /models/box-contours/infer with {"image": {...}, "bbox": {"x", "y", "w", "h"}}

Without a box (V7's Ctrl/Cmd+Enter sends the whole image) the object is looked for in the whole
picture minus a thin border, which works for centred objects only: this model is meant for the box.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from models.base import ClassSpec, DetectOptions, Model, ModelSpec, polygon

#: GrabCut is slow on big pictures (seconds at 2000 px): it runs on a copy at most this large.
WORK_MAX_SIDE_PX = 320
GRABCUT_ITERATIONS = 5
#: Background GrabCut can learn from when the box covers (nearly) everything: this share of each side.
MIN_BORDER_FRACTION = 0.03
#: Foreground smaller than this share of the box is noise, not an object.
MIN_AREA_FRACTION = 0.02
#: Polygon simplification: points may move this share of the outline's length (keeps ~50-200 points).
SIMPLIFY_FRACTION = 0.002


def grabcut_rect_xywh(box_xywh: tuple[float, ...] | None, resolution_wh: tuple[int, int]) -> tuple[int, ...]:
    """The box in whole pixels, kept inside the image with a thin border for GrabCut's background."""
    width, height = resolution_wh
    border_x = max(1, round(MIN_BORDER_FRACTION * width))
    border_y = max(1, round(MIN_BORDER_FRACTION * height))
    x, y, w, h = box_xywh if box_xywh is not None else (0, 0, width, height)
    x0, y0 = max(border_x, round(x)), max(border_y, round(y))
    x1, y1 = min(width - border_x, round(x + w)), min(height - border_y, round(y + h))
    return x0, y0, max(x1 - x0, 1), max(y1 - y0, 1)


class BoxContours(Model):
    spec = ModelSpec(
        name="box-contours",
        description="Outline of the object in the Auto-Annotate box (OpenCV GrabCut, no download).",
        classes=(ClassSpec("object", "polygon", description="the main object inside the box"),),
        default_threshold=0.3,
    )

    def detect(self, image_rgb: np.ndarray, options: DetectOptions) -> list[dict[str, Any]]:
        height, width = image_rgb.shape[:2]
        scale = min(1.0, WORK_MAX_SIDE_PX / max(height, width))
        small = (
            cv2.resize(
                image_rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
            )
            if scale < 1
            else image_rgb
        )
        box = None if options.box_xywh is None else tuple(v * scale for v in options.box_xywh)
        rect = grabcut_rect_xywh(box, (small.shape[1], small.shape[0]))
        if rect[2] < 3 or rect[3] < 3:
            return []  # a box a few pixels wide holds nothing to outline

        mask = np.zeros(small.shape[:2], np.uint8)
        background_model, foreground_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(
            cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
            mask,
            rect,
            background_model,
            foreground_model,
            GRABCUT_ITERATIONS,
            cv2.GC_INIT_WITH_RECT,
        )
        foreground = np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
        foreground = cv2.morphologyEx(foreground, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))

        contours, _ = cv2.findContours(foreground, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return []
        largest = max(contours, key=cv2.contourArea)
        area = cv2.contourArea(largest)
        if area < MIN_AREA_FRACTION * rect[2] * rect[3]:
            return []
        # Confidence: how much of the foreground is this one piece (1.0 for one clean object,
        # low when GrabCut found scattered bits: no clear object in the box).
        confidence = min(1.0, area / max(1.0, float(np.count_nonzero(foreground))))
        outline = cv2.approxPolyDP(largest, SIMPLIFY_FRACTION * cv2.arcLength(largest, True), True)
        points_xy = outline.reshape(-1, 2).astype(float) / scale
        if len(points_xy) < 3:
            return []
        return [polygon("object", confidence, points_xy)]
