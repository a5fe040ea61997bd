"""Hands with MediaPipe's HandLandmarker: a 21-node skeleton per hand, handedness as an attribute.

Nodes are MediaPipe's 21 hand landmarks, in its order and with its names lower-cased
(`HandLandmark.WRIST` -> "wrist", ...); edges are MediaPipe's `HandLandmarksConnections.HAND_CONNECTIONS`.
The hand landmarks carry no visibility, so a node is occluded only when it lay outside the image
(it is then clamped onto the border).

Handedness: attributes=["left"] or ["right"], as MediaPipe labels the hand. MediaPipe 1.x documents
it as the subject's hand ("not the viewer's"; a mirrored picture swaps it); the legacy solution
assumed mirrored selfie input instead. Not verified here: no picture with a visible hand ships
with the installed packages.

Confidence: the handedness score, as the brief for this adapter asks. It is how sure MediaPipe is
about left vs right (always >= 0.5), not that a hand is there: MediaPipe 1.2.3 exposes no hand
score, and hand presence only gates the output, at `MIN_HAND_*_CONFIDENCE`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mediapipe.tasks.python import BaseOptions, vision

from models.base import ClassSpec, DetectOptions, Model, ModelFile, ModelSpec, SkeletonSpec, skeleton
from models.mediapipe_common import clamped_node, srgb_image

MODEL_FILE = ModelFile(
    name="hand_landmarker.task",
    url="https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/1/"
    "hand_landmarker.task",
    sha256=None,  # no checksum of the official file is known here (the test copy is a stand-in)
)

#: MediaPipe's defaults, kept on purpose: the reported score (handedness) cannot tell a hand from
#: a sleeve, so the task's own gates are the only filter (at 0.1 a coat sleeve became a hand).
MIN_HAND_DETECTION_CONFIDENCE = 0.5
MIN_HAND_PRESENCE_CONFIDENCE = 0.5
MAX_HANDS = 4

LANDMARK_NAMES = (
    "wrist",
    "thumb_cmc",
    "thumb_mcp",
    "thumb_ip",
    "thumb_tip",
    "index_finger_mcp",
    "index_finger_pip",
    "index_finger_dip",
    "index_finger_tip",
    "middle_finger_mcp",
    "middle_finger_pip",
    "middle_finger_dip",
    "middle_finger_tip",
    "ring_finger_mcp",
    "ring_finger_pip",
    "ring_finger_dip",
    "ring_finger_tip",
    "pinky_mcp",
    "pinky_pip",
    "pinky_dip",
    "pinky_tip",
)

#: MediaPipe's HAND_CONNECTIONS (palm, then thumb to pinky), by name.
EDGES = (
    ("wrist", "thumb_cmc"),
    ("wrist", "index_finger_mcp"),
    ("middle_finger_mcp", "ring_finger_mcp"),
    ("ring_finger_mcp", "pinky_mcp"),
    ("index_finger_mcp", "middle_finger_mcp"),
    ("wrist", "pinky_mcp"),
    ("thumb_cmc", "thumb_mcp"),
    ("thumb_mcp", "thumb_ip"),
    ("thumb_ip", "thumb_tip"),
    ("index_finger_mcp", "index_finger_pip"),
    ("index_finger_pip", "index_finger_dip"),
    ("index_finger_dip", "index_finger_tip"),
    ("middle_finger_mcp", "middle_finger_pip"),
    ("middle_finger_pip", "middle_finger_dip"),
    ("middle_finger_dip", "middle_finger_tip"),
    ("ring_finger_mcp", "ring_finger_pip"),
    ("ring_finger_pip", "ring_finger_dip"),
    ("ring_finger_dip", "ring_finger_tip"),
    ("pinky_mcp", "pinky_pip"),
    ("pinky_pip", "pinky_dip"),
    ("pinky_dip", "pinky_tip"),
)
HANDEDNESS = ("left", "right")


def hand_result(landmarks: Sequence[Any], handedness: Sequence[Any], width: int, height: int) -> dict[str, Any] | None:
    """The `hand` skeleton for one hand's normalised landmarks and handedness categories (None if malformed)."""
    points_xy = [(lm.x * width, lm.y * height) for lm in landmarks]
    if len(points_xy) != len(LANDMARK_NAMES) or not all(math.isfinite(v) for xy in points_xy for v in xy):
        return None
    best = max(handedness, key=lambda category: category.score, default=None)
    side = (best.category_name or best.display_name or "").lower() if best is not None else ""
    confidence = min(max(float(best.score), 0.0), 1.0) if best is not None else 0.0
    nodes = [
        clamped_node(name, x, y, lm.visibility is not None and lm.visibility < 0.5, width, height)
        for name, (x, y), lm in zip(LANDMARK_NAMES, points_xy, landmarks, strict=True)
    ]
    return skeleton("hand", confidence, nodes, attributes=[side] if side in HANDEDNESS else [])


class Hands(Model):
    """MediaPipe HandLandmarker; see the module docstring for what handedness and confidence mean."""

    spec = ModelSpec(
        name="hands",
        description="Hands from MediaPipe's HandLandmarker: 21 named landmarks per hand, up to 4 hands, "
        "handedness as the attribute 'left' or 'right'.",
        classes=(
            ClassSpec(
                "hand",
                "skeleton",
                SkeletonSpec(LANDMARK_NAMES, EDGES),
                description="MediaPipe's 21 hand landmarks; attribute 'left' or 'right'",
            ),
        ),
        files=(MODEL_FILE,),
    )

    def __init__(self, files: Mapping[str, Path] | None = None) -> None:
        super().__init__(files)
        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.files[MODEL_FILE.name])),
            running_mode=vision.RunningMode.IMAGE,
            num_hands=MAX_HANDS,
            min_hand_detection_confidence=MIN_HAND_DETECTION_CONFIDENCE,
            min_hand_presence_confidence=MIN_HAND_PRESENCE_CONFIDENCE,
        )
        self._landmarker = vision.HandLandmarker.create_from_options(options)
        self._lock = threading.Lock()  # MediaPipe tasks are not documented as thread-safe

    def detect(self, image_rgb: np.ndarray, options: DetectOptions) -> list[dict[str, Any]]:
        height, width = image_rgb.shape[:2]
        if width == 0 or height == 0:
            return []
        image = srgb_image(image_rgb)
        with self._lock:
            result = self._landmarker.detect(image)
        hands = (
            hand_result(landmarks, categories, width, height)
            for landmarks, categories in zip(result.hand_landmarks, result.handedness, strict=True)
        )
        return [hand for hand in hands if hand is not None]

    def close(self) -> None:
        """Free the task now (MediaPipe 1.2.3 cannot free a task still alive at interpreter exit)."""
        with self._lock:
            self._landmarker.close()
