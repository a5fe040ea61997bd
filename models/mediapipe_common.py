"""Small pieces every MediaPipe adapter needs (not a model: no spec here)."""

from __future__ import annotations

import mediapipe as mp
import numpy as np


def srgb_image(image_rgb: np.ndarray) -> mp.Image:
    """The picture as a MediaPipe image. mp.Image copies the raw buffer without looking at
    strides or channels, so anything but C-contiguous uint8 H x W x 3 would be read as garbage."""
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {image_rgb.shape}")
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image_rgb, dtype=np.uint8))


def clamped_node(
    name: str, x: float, y: float, hidden: bool, width: int, height: int
) -> tuple[str, float, float, bool]:
    """A skeleton node kept inside the image; a point that had to be moved in is marked occluded."""
    inside = 0.0 <= x <= width and 0.0 <= y <= height
    return name, min(max(x, 0.0), float(width)), min(max(y, 0.0), float(height)), hidden or not inside
