"""Faces with MediaPipe's FaceDetector (BlazeFace short range): a box and six keypoints per face.

BlazeFace short range is made for faces that fill a good part of the picture (selfies, portraits,
faces within ~2 m of the camera); small faces in a crowd need the full-range model.

Per detected face the model returns two results with the detector's score as confidence:
`face` (bounding_box) and `face_keypoints` (skeleton). The keypoints come in the order BlazeFace
outputs them (MediaPipe's `FaceKeyPoint`: RIGHT_EYE=0, LEFT_EYE=1, NOSE_TIP=2, MOUTH_CENTER=3,
RIGHT_EAR_TRAGION=4, LEFT_EAR_TRAGION=5). "right"/"left" are the subject's own sides, as MediaPipe
names them: a person facing the camera has the right eye on the image's left. BlazeFace gives no
per-keypoint visibility, so a node is occluded only when it lay outside the image.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mediapipe.tasks.python import BaseOptions, vision

from models.base import (
    ClassSpec,
    DetectOptions,
    Model,
    ModelFile,
    ModelSpec,
    SkeletonSpec,
    bounding_box,
    skeleton,
)
from models.mediapipe_common import clamped_node, srgb_image

MODEL_FILE = ModelFile(
    name="blaze_face_short_range.tflite",
    url="https://storage.googleapis.com/mediapipe-models/face_detector/blaze_face_short_range/float16/1/"
    "blaze_face_short_range.tflite",
    sha256="b4578f35940bf5a1a655214a1cce5cab13eba73c1297cd78e1a04c2380b0152f",
    size_bytes=229_746,
)

#: The task's own gate. Low on purpose: the score is reported and the driver applies the
#: user's threshold (seen here: real faces score 0.77..0.94, a cat and a coffee cup 0.2..0.43).
MIN_DETECTION_CONFIDENCE = 0.3

KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")
KEYPOINT_EDGES = (
    ("right_eye", "left_eye"),
    ("right_eye", "nose_tip"),
    ("left_eye", "nose_tip"),
    ("nose_tip", "mouth_center"),
    ("right_eye", "right_ear_tragion"),
    ("left_eye", "left_ear_tragion"),
)


def face_results(detection: Any, width: int, height: int) -> list[dict[str, Any]]:
    """One `face` box and one `face_keypoints` skeleton for a MediaPipe detection (none if degenerate)."""
    box = detection.bounding_box
    box_xywh = (float(box.origin_x), float(box.origin_y), float(box.width), float(box.height))
    points_xy = [(kp.x * width, kp.y * height) for kp in detection.keypoints]
    coordinates = [*box_xywh, *(v for xy in points_xy for v in xy)]
    if len(points_xy) != len(KEYPOINT_NAMES) or not all(math.isfinite(v) for v in coordinates):
        return []
    if box_xywh[2] <= 0 or box_xywh[3] <= 0:  # V7 rejects zero-size boxes
        return []
    score = min(max(float(detection.categories[0].score), 0.0), 1.0)
    nodes = [
        clamped_node(name, x, y, False, width, height) for name, (x, y) in zip(KEYPOINT_NAMES, points_xy, strict=True)
    ]
    return [bounding_box("face", score, box_xywh), skeleton("face_keypoints", score, nodes)]


class MediaPipeFace(Model):
    """MediaPipe FaceDetector; confidence is the detector's own score for the face."""

    spec = ModelSpec(
        name="mediapipe-face",
        description="Face boxes and six face keypoints from MediaPipe's BlazeFace short-range detector "
        "(faces within ~2 m of the camera).",
        classes=(
            ClassSpec("face", "bounding_box", description="a face (eyes to mouth, roughly square)"),
            ClassSpec(
                "face_keypoints",
                "skeleton",
                SkeletonSpec(KEYPOINT_NAMES, KEYPOINT_EDGES),
                description="eyes, nose tip, mouth centre and ear tragions (subject's left/right)",
            ),
        ),
        files=(MODEL_FILE,),
    )

    def __init__(self, files: Mapping[str, Path] | None = None) -> None:
        super().__init__(files)
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(self.files[MODEL_FILE.name])),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=MIN_DETECTION_CONFIDENCE,
        )
        self._detector = vision.FaceDetector.create_from_options(options)
        self._lock = threading.Lock()  # MediaPipe tasks are not documented as thread-safe

    def detect(self, image_rgb: np.ndarray, options: DetectOptions) -> list[dict[str, Any]]:
        height, width = image_rgb.shape[:2]
        if width == 0 or height == 0:
            return []
        image = srgb_image(image_rgb)
        with self._lock:
            result = self._detector.detect(image)
        return [r for detection in result.detections for r in face_results(detection, width, height)]

    def close(self) -> None:
        """Free the task now (MediaPipe 1.2.3 cannot free a task still alive at interpreter exit)."""
        with self._lock:
            self._detector.close()
