"""Face boxes with OpenCV's Haar cascade: ships with OpenCV, so it works with no model files."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.base import ClassSpec, DetectOptions, Model, ModelSpec, bounding_box

#: The cascade is tuned for faces of about this size: larger pictures are shrunk first, which
#: is faster and avoids the false faces the cascade finds in fine texture of big photos.
DETECTION_MAX_SIDE_PX = 640
#: Smallest face, as a fraction of the shorter image side.
MIN_FACE_FRACTION = 0.08


def confidence_from_level_weight(level_weight: float) -> float:
    """Map the cascade's last-stage weight (unbounded, ~1..10) into 0..1 monotonically.

    Seen here: real faces weigh 3.9..7.5 (confidence 0.73..0.92), a cat's face 1.7 (0.44).
    """
    return float(1.0 - math.exp(-max(level_weight, 0.0) / 3.0))


class OpenCVFace(Model):
    spec = ModelSpec(
        name="opencv-face",
        description="Face boxes from OpenCV's Haar cascade (frontal faces; no download needed).",
        classes=(ClassSpec("face", "bounding_box", description="a frontal face"),),
    )

    def __init__(self, files: Mapping[str, Path] | None = None) -> None:
        super().__init__(files)
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if self._cascade.empty():
            raise RuntimeError("OpenCV's haarcascade_frontalface_default.xml could not be loaded")
        self._lock = threading.Lock()  # CascadeClassifier is not documented as thread-safe

    def detect(self, image_rgb: np.ndarray, options: DetectOptions) -> list[dict[str, Any]]:
        height, width = image_rgb.shape[:2]
        scale = min(1.0, DETECTION_MAX_SIDE_PX / max(height, width))
        grey = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        min_side_px = max(20, round(MIN_FACE_FRACTION * min(grey.shape)))
        with self._lock:
            boxes, _levels, weights = self._cascade.detectMultiScale3(
                grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_side_px, min_side_px), outputRejectLevels=True
            )
        return [
            bounding_box("face", confidence_from_level_weight(float(weight)), np.asarray(box, dtype=float) / scale)
            for box, weight in zip(boxes, np.ravel(weights), strict=True)
        ]
