"""Body poses with MediaPipe's PoseLandmarker (BlazePose full): a 33-node skeleton per person.

Nodes are MediaPipe's 33 pose landmarks, in MediaPipe's order and with its names lower-cased
(`PoseLandmark.NOSE` -> "nose", ...); edges are MediaPipe's `PoseLandmarksConnections`.
"left"/"right" are the subject's own sides (a person facing the camera has the left shoulder on
the image's right). A node is occluded when MediaPipe's visibility is below 0.5 or the landmark
lay outside the image (it is then clamped onto the border); limbs out of frame are normal in
portraits, where MediaPipe still guesses them far outside the picture.

Confidence: MediaPipe 1.2.3 exposes neither the pose detector's score nor the pose-presence score;
both only gate the output (at `MIN_POSE_*_CONFIDENCE`). We report the mean visibility of the 11
head landmarks (nose .. mouth_right): BlazePose's detector is anchored on the head, and a mean over
all 33 would punish half-length portraits (seen: astronaut 0.50, grace_hopper 0.44, though both
are clear people). It says how surely the head is seen, not a calibrated person probability.
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
    name="pose_landmarker_full.task",
    url="https://storage.googleapis.com/mediapipe-models/pose_landmarker/pose_landmarker_full/float16/1/"
    "pose_landmarker_full.task",
    sha256=None,  # no checksum of the official file is known here (the test copy is a stand-in)
)

#: MediaPipe's defaults, kept on purpose: no score comes out to filter on afterwards, and lower
#: gates gave a duplicate pose of the one person in `camera` (at 0.3) and poses on a cat (at 0.2).
MIN_POSE_DETECTION_CONFIDENCE = 0.5
MIN_POSE_PRESENCE_CONFIDENCE = 0.5
MAX_POSES = 4
MIN_VISIBILITY = 0.5

LANDMARK_NAMES = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
#: The head landmarks (nose .. mouth_right) whose mean visibility is the reported confidence.
HEAD_LANDMARK_COUNT = 11

#: MediaPipe's POSE_CONNECTIONS, by name.
EDGES = (
    ("nose", "left_eye_inner"),
    ("left_eye_inner", "left_eye"),
    ("left_eye", "left_eye_outer"),
    ("left_eye_outer", "left_ear"),
    ("nose", "right_eye_inner"),
    ("right_eye_inner", "right_eye"),
    ("right_eye", "right_eye_outer"),
    ("right_eye_outer", "right_ear"),
    ("mouth_left", "mouth_right"),
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("left_wrist", "left_pinky"),
    ("left_wrist", "left_index"),
    ("left_wrist", "left_thumb"),
    ("left_pinky", "left_index"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("right_wrist", "right_pinky"),
    ("right_wrist", "right_index"),
    ("right_wrist", "right_thumb"),
    ("right_pinky", "right_index"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_hip", "right_hip"),
    ("left_hip", "left_knee"),
    ("right_hip", "right_knee"),
    ("left_knee", "left_ankle"),
    ("right_knee", "right_ankle"),
    ("left_ankle", "left_heel"),
    ("right_ankle", "right_heel"),
    ("left_heel", "left_foot_index"),
    ("right_heel", "right_foot_index"),
    ("left_ankle", "left_foot_index"),
    ("right_ankle", "right_foot_index"),
)


def _visibility(landmark: Any) -> float:
    """MediaPipe's visibility (a probability for BlazePose); 1.0 when the model gives none."""
    return 1.0 if landmark.visibility is None else min(max(float(landmark.visibility), 0.0), 1.0)


def pose_result(landmarks: Sequence[Any], width: int, height: int) -> dict[str, Any] | None:
    """The `person` skeleton for one pose's normalised landmarks (None if malformed)."""
    points_xy = [(lm.x * width, lm.y * height) for lm in landmarks]
    if len(points_xy) != len(LANDMARK_NAMES) or not all(math.isfinite(v) for xy in points_xy for v in xy):
        return None
    visibilities = [_visibility(lm) for lm in landmarks]
    nodes = [
        clamped_node(name, x, y, visible < MIN_VISIBILITY, width, height)
        for name, (x, y), visible in zip(LANDMARK_NAMES, points_xy, visibilities, strict=True)
    ]
    confidence = sum(visibilities[:HEAD_LANDMARK_COUNT]) / HEAD_LANDMARK_COUNT
    return skeleton("person", confidence, nodes)


class Pose(Model):
    """MediaPipe PoseLandmarker; see the module docstring for what the confidence means."""

    spec = ModelSpec(
        name="pose",
        description="Body poses from MediaPipe's PoseLandmarker (full): 33 named landmarks per person, up to 4 people.",
        classes=(
            ClassSpec(
                "person",
                "skeleton",
                SkeletonSpec(LANDMARK_NAMES, EDGES),
                description="MediaPipe's 33 body landmarks (subject's left/right)",
            ),
        ),
        files=(MODEL_FILE,),
    )

    def __init__(self, files: Mapping[str, Path] | None = None) -> None:
        super().__init__(files)
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.files[MODEL_FILE.name])),
            running_mode=vision.RunningMode.IMAGE,
            num_poses=MAX_POSES,
            min_pose_detection_confidence=MIN_POSE_DETECTION_CONFIDENCE,
            min_pose_presence_confidence=MIN_POSE_PRESENCE_CONFIDENCE,
        )
        self._landmarker = vision.PoseLandmarker.create_from_options(options)
        self._lock = threading.Lock()  # MediaPipe tasks are not documented as thread-safe

    def detect(self, image_rgb: np.ndarray, options: DetectOptions) -> list[dict[str, Any]]:
        height, width = image_rgb.shape[:2]
        if width == 0 or height == 0:
            return []
        image = srgb_image(image_rgb)
        with self._lock:
            result = self._landmarker.detect(image)
        poses = (pose_result(landmarks, width, height) for landmarks in result.pose_landmarks)
        return [pose for pose in poses if pose is not None]

    def close(self) -> None:
        """Free the task now (MediaPipe 1.2.3 cannot free a task still alive at interpreter exit)."""
        with self._lock:
            self._landmarker.close()
