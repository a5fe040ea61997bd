"""Tag a picture (or the Auto-Annotate box) by brightness and colour: a tag model on OpenCV (no download).

A worked example of a classification model: it returns tags (no geometry), one per question it answers:
how bright is it (`dark`, `medium`, `bright`) and is there colour (`greyscale`, `colourful`).
The confidence says how clearly the picture falls into its class: 1.0 far from the class boundary,
0.5 right at it, so the request's threshold (V7 sends one with Auto-Annotate) drops the unclear tags.

    python run.py serve --model-file examples/brightness_tag.py
    # POST /models/brightness-tag/infer with {"image": {...}}  -> [{"name": "bright", "tag": {}, ...}, ...]

With a box, only the box is judged (the driver gives the model the box plus a small margin).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from models.base import ClassSpec, DetectOptions, Model, ModelSpec, tag

#: Mean lightness (luma, the grey level of each pixel, 0..1) boundaries between dark | medium | bright.
DARK_BELOW = 1 / 3
BRIGHT_ABOVE = 2 / 3
#: Mean saturation (0..1) from which a picture counts as colourful.
COLOURFUL_FROM = 0.15
#: Pixels that are nearly black carry no colour, whatever their saturation says.
MIN_VALUE_FOR_COLOUR = 0.08


def confidence_from_margin(distance: float, full_confidence_at: float) -> float:
    """0.5 at a class boundary, rising linearly to 1.0 at `full_confidence_at` away from it."""
    return float(min(1.0, 0.5 + 0.5 * abs(distance) / full_confidence_at))


def brightness_tag(mean_value: float) -> tuple[str, float]:
    if mean_value < DARK_BELOW:
        return "dark", confidence_from_margin(DARK_BELOW - mean_value, DARK_BELOW / 2)
    if mean_value > BRIGHT_ABOVE:
        return "bright", confidence_from_margin(mean_value - BRIGHT_ABOVE, (1 - BRIGHT_ABOVE) / 2)
    nearest_boundary = min(mean_value - DARK_BELOW, BRIGHT_ABOVE - mean_value)
    return "medium", confidence_from_margin(nearest_boundary, (BRIGHT_ABOVE - DARK_BELOW) / 2)


def colour_tag(mean_saturation: float) -> tuple[str, float]:
    if mean_saturation >= COLOURFUL_FROM:
        return "colourful", confidence_from_margin(mean_saturation - COLOURFUL_FROM, COLOURFUL_FROM)
    return "greyscale", confidence_from_margin(COLOURFUL_FROM - mean_saturation, COLOURFUL_FROM / 2)


class BrightnessTag(Model):
    spec = ModelSpec(
        name="brightness-tag",
        description="Tags: dark / medium / bright, and greyscale / colourful (OpenCV, no download).",
        classes=(
            ClassSpec("dark", "tag", description="mean lightness below 1/3"),
            ClassSpec("medium", "tag", description="mean lightness from 1/3 to 2/3"),
            ClassSpec("bright", "tag", description="mean lightness above 2/3"),
            ClassSpec("greyscale", "tag", description="hardly any colour"),
            ClassSpec("colourful", "tag", description=f"mean saturation of {COLOURFUL_FROM} or more"),
        ),
        default_threshold=0.5,
    )

    def detect(self, image_rgb: np.ndarray, options: DetectOptions) -> list[dict[str, Any]]:
        lightness = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        hsv = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.float32) / 255.0
        saturation, value = hsv[:, 1], hsv[:, 2]
        lit = value >= MIN_VALUE_FOR_COLOUR
        mean_saturation = float(saturation[lit].mean()) if lit.any() else 0.0
        return [
            tag(*brightness_tag(float(lightness.mean()))),
            tag(*colour_tag(mean_saturation)),
        ]
