"""Face contours and named face points from MediaPipe's FaceLandmarker (478-point face mesh).

How it runs (detect, then landmark): the face detector inside the bundle (`face_detector.tflite`,
byte for byte BlazeFace short range) finds the faces on the whole picture; the FaceLandmarker then
runs on a square crop of twice each face box and keeps the face whose nose tip is in the box. Why not
one FaceLandmarker call on the whole picture: seen here, that call drops the face in `camera`
(face presence ~0.2 on the whole picture, above 0.5 on the crop), it was seen finding one of two
people on a wide picture, and it exposes no score. Confidence is therefore the face detector's score.

"left"/"right" are the subject's own sides, as MediaPipe names them (a person facing the camera
has the left eye on the image's right). The mesh has no per-point visibility: a skeleton node is
occluded only when it lay outside the image (it is then clamped onto the border).

Landmark indices per class. Polygons are closed rings (the first point is not repeated), traced
from MediaPipe's `vision.FaceLandmarksConnections` (FACE_LANDMARKS_*), which the tests check:

  face_oval (FACE_OVAL, 36 points, from the top of the forehead):
      10 338 297 332 284 251 389 356 454 323 361 288 397 365 379 378 400 377
      152 148 176 149 150 136 172 58 132 93 234 127 162 21 54 103 67 109
  left_eye (LEFT_EYE, 16, from the outer corner along the lower lid):
      263 249 390 373 374 380 381 382 362 398 384 385 386 387 388 466
  right_eye (RIGHT_EYE, 16, from the outer corner along the lower lid):
      33 7 163 144 145 153 154 155 133 173 157 158 159 160 161 246
  left_eyebrow (LEFT_EYEBROW, 10: its lower edge outwards-in, then its upper edge back out):
      276 283 282 295 285 336 296 334 293 300
  right_eyebrow (RIGHT_EYEBROW, 10: lower edge, then upper edge):
      46 53 52 65 55 107 66 105 63 70
  lips (the outer contour of LIPS, 20, from the right mouth corner along the lower lip):
      61 146 91 181 84 17 314 405 321 375 291 409 270 269 267 0 37 39 40 185

  face_landmarks (skeleton, 27 named points, name=index):
      forehead=10 right_brow_outer=70 right_brow_inner=107 left_brow_inner=336 left_brow_outer=300
      right_eye_outer=33 right_eye_top=159 right_eye_inner=133 right_eye_bottom=145
      left_eye_inner=362 left_eye_top=386 left_eye_outer=263 left_eye_bottom=374
      right_iris=468 left_iris=473 (iris centres) nose_bridge=168 nose_tip=1 nose_bottom=2
      right_nose_corner=98 left_nose_corner=327 right_mouth_corner=61 upper_lip_top=0
      left_mouth_corner=291 lower_lip_bottom=17 chin=152
      right_face_edge=234 left_face_edge=454 (the face oval at eye level)

A ring whose edges cross (a contour folded onto itself, e.g. the far eyebrow of a turned head)
is replaced by its convex hull. Iris centres exist only in 478-point meshes (the official bundle
gives 478); with a 468-point mesh they fall back to the midpoint of that eye's corners and are
marked occluded.
"""

from __future__ import annotations

import math
import threading
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from mediapipe.tasks.python import BaseOptions, vision

from models.base import (
    ClassSpec,
    DetectOptions,
    Model,
    ModelFile,
    ModelSpec,
    SkeletonSpec,
    polygon,
    skeleton,
)
from models.mediapipe_common import clamped_node, srgb_image

MODEL_FILE = ModelFile(
    name="face_landmarker.task",
    url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
    "face_landmarker.task",
    sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    size_bytes=3_758_596,
)
#: The face detector stored in the bundle (a .task file is an uncompressed zip).
BUNDLED_DETECTOR = "face_detector.tflite"

#: The detector's gate. Low on purpose: its score is reported and the driver applies the user's threshold.
MIN_DETECTION_CONFIDENCE = 0.3
#: Gates of the landmarker on a crop: its detector re-finds a face we already know is there (low);
#: face presence is not reported, so it keeps MediaPipe's default as the landmarks' quality gate.
LANDMARKER_MIN_DETECTION_CONFIDENCE = 0.3
LANDMARKER_MIN_PRESENCE_CONFIDENCE = 0.5
MAX_FACES_PER_CROP = 4
#: Crop side over the detector's box side: the box covers eyes to mouth; the landmarker's own
#: detector needs the whole head (crops of 2x and 3x found the face in `camera`; the whole picture did not).
CROP_SCALE = 2.0

NOSE_TIP = 1
POLYGON_RINGS: tuple[tuple[str, tuple[int, ...]], ...] = (
    (
        "face_oval",
        (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
         152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109),
    ),
    ("left_eye", (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)),
    ("right_eye", (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)),
    ("left_eyebrow", (276, 283, 282, 295, 285, 336, 296, 334, 293, 300)),
    ("right_eyebrow", (46, 53, 52, 65, 55, 107, 66, 105, 63, 70)),
    ("lips", (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)),
)  # fmt: skip

SKELETON_POINTS: tuple[tuple[str, int], ...] = (
    ("forehead", 10),
    ("right_brow_outer", 70),
    ("right_brow_inner", 107),
    ("left_brow_inner", 336),
    ("left_brow_outer", 300),
    ("right_eye_outer", 33),
    ("right_eye_top", 159),
    ("right_eye_inner", 133),
    ("right_eye_bottom", 145),
    ("left_eye_inner", 362),
    ("left_eye_top", 386),
    ("left_eye_outer", 263),
    ("left_eye_bottom", 374),
    ("right_iris", 468),
    ("left_iris", 473),
    ("nose_bridge", 168),
    ("nose_tip", 1),
    ("nose_bottom", 2),
    ("right_nose_corner", 98),
    ("left_nose_corner", 327),
    ("right_mouth_corner", 61),
    ("upper_lip_top", 0),
    ("left_mouth_corner", 291),
    ("lower_lip_bottom", 17),
    ("chin", 152),
    ("right_face_edge", 234),
    ("left_face_edge", 454),
)
#: Where an iris centre goes in a 468-point mesh (no iris points): between that eye's corners.
IRIS_FALLBACK_CORNERS = ((468, (33, 133)), (473, (362, 263)))

SKELETON_EDGES = (
    ("right_brow_outer", "right_brow_inner"),
    ("left_brow_inner", "left_brow_outer"),
    ("right_eye_outer", "right_eye_top"),
    ("right_eye_top", "right_eye_inner"),
    ("right_eye_inner", "right_eye_bottom"),
    ("right_eye_bottom", "right_eye_outer"),
    ("left_eye_inner", "left_eye_top"),
    ("left_eye_top", "left_eye_outer"),
    ("left_eye_outer", "left_eye_bottom"),
    ("left_eye_bottom", "left_eye_inner"),
    ("right_iris", "right_eye_top"),
    ("left_iris", "left_eye_top"),
    ("forehead", "nose_bridge"),
    ("right_brow_inner", "nose_bridge"),
    ("left_brow_inner", "nose_bridge"),
    ("nose_bridge", "nose_tip"),
    ("nose_tip", "nose_bottom"),
    ("right_nose_corner", "nose_bottom"),
    ("nose_bottom", "left_nose_corner"),
    ("nose_bottom", "upper_lip_top"),
    ("right_mouth_corner", "upper_lip_top"),
    ("upper_lip_top", "left_mouth_corner"),
    ("left_mouth_corner", "lower_lip_bottom"),
    ("lower_lip_bottom", "right_mouth_corner"),
    ("lower_lip_bottom", "chin"),
    ("right_face_edge", "right_eye_outer"),
    ("left_face_edge", "left_eye_outer"),
    ("right_face_edge", "chin"),
    ("left_face_edge", "chin"),
)
SKELETON_NODES = tuple(name for name, _ in SKELETON_POINTS)


def bundled_file(bundle_path: Path, member: str) -> bytes | None:
    """One model file out of a MediaPipe .task bundle (a zip), or None if it is not in there."""
    with zipfile.ZipFile(bundle_path) as bundle:
        return bundle.read(member) if member in bundle.namelist() else None


def crop_xyxy(box_xywh: Sequence[float], width: int, height: int, scale: float = CROP_SCALE) -> tuple[int, ...]:
    """A square of `scale` times the box's longer side around its centre, clipped to the image."""
    x, y, w, h = box_xywh
    center_x, center_y, half = x + w / 2, y + h / 2, max(w, h) * scale / 2
    return (
        max(0, math.floor(center_x - half)),
        max(0, math.floor(center_y - half)),
        min(width, math.ceil(center_x + half)),
        min(height, math.ceil(center_y + half)),
    )


def face_in_box(faces_xy: Sequence[np.ndarray], box_xywh: Sequence[float]) -> np.ndarray | None:
    """The face (landmarks in pixels) whose nose tip lies in the detector's box, nearest its centre.

    The box spans eyes to mouth, so the nose tip of the boxed face is inside it; a neighbour's
    face seen in the same crop is not, and is not taken for this one."""
    x, y, w, h = box_xywh
    center_xy = np.array([x + w / 2, y + h / 2])
    inside = [f for f in faces_xy if x <= f[NOSE_TIP][0] <= x + w and y <= f[NOSE_TIP][1] <= y + h]
    return min(inside, key=lambda f: float(np.hypot(*(f[NOSE_TIP] - center_xy))), default=None)


def skeleton_nodes(points_xy: np.ndarray, width: int, height: int) -> list[tuple[str, float, float, bool]]:
    """The named points of one face, iris centres from the eye corners if the mesh has none."""
    fallback = dict(IRIS_FALLBACK_CORNERS)
    nodes = []
    for name, index in SKELETON_POINTS:
        if index < len(points_xy):
            x, y, hidden = *points_xy[index], False
        else:
            x, y = points_xy[list(fallback[index])].mean(axis=0)
            hidden = True
        nodes.append(clamped_node(name, float(x), float(y), hidden, width, height))
    return nodes


def crosses_itself(points_xy: np.ndarray) -> bool:
    """Whether two edges of the closed ring cross (edges sharing an end point do not count)."""
    start, end = points_xy, np.roll(points_xy, -1, axis=0)
    direction = end - start

    def side_of_edges(points: np.ndarray) -> np.ndarray:  # [i, j]: side of points[j] seen from edge i
        relative = points[None, :, :] - start[:, None, :]
        return direction[:, None, 0] * relative[..., 1] - direction[:, None, 1] * relative[..., 0]

    straddles = side_of_edges(start) * side_of_edges(end) < 0  # edge j's ends lie on both sides of edge i
    return bool((straddles & straddles.T).any())


def editable_ring(points_xy: np.ndarray) -> np.ndarray:
    """The ring, or its convex hull where MediaPipe folds a contour onto itself: seen on the far
    eyebrow of a turned head, squeezed to a few pixels, whose upper and lower edges cross."""
    if not crosses_itself(points_xy):
        return points_xy
    return cv2.convexHull(points_xy.astype(np.float32)).reshape(-1, 2).astype(float)


def face_results(points_xy: np.ndarray, confidence: float, width: int, height: int) -> list[dict[str, Any]]:
    """The six contour polygons and the named-points skeleton of one face (landmarks in pixels)."""
    if len(points_xy) < 468 or not np.isfinite(points_xy).all():
        return []
    rings = [(name, editable_ring(points_xy[list(ring)])) for name, ring in POLYGON_RINGS]
    polygons = [polygon(name, confidence, ring_xy) for name, ring_xy in rings if len(ring_xy) >= 3]
    return [*polygons, skeleton("face_landmarks", confidence, skeleton_nodes(points_xy, width, height))]


class FaceLandmarks(Model):
    """Detect faces, then landmark each on a crop; see the module docstring for the indices."""

    spec = ModelSpec(
        name="face-landmarks",
        description="Face contours (oval, eyes, eyebrows, lips) and 27 named face points from MediaPipe's "
        "FaceLandmarker, one face per detected face.",
        classes=(
            *(
                ClassSpec(name, "polygon", description=f"{name.replace('_', ' ')} contour (subject's left/right)")
                for name, _ in POLYGON_RINGS
            ),
            ClassSpec(
                "face_landmarks",
                "skeleton",
                SkeletonSpec(SKELETON_NODES, SKELETON_EDGES),
                description="27 named face points: brows, eye corners and lids, irises, nose, mouth, chin",
            ),
        ),
        files=(MODEL_FILE,),
    )

    def __init__(self, files: Mapping[str, Path] | None = None) -> None:
        super().__init__(files)
        bundle_path = Path(self.files[MODEL_FILE.name])
        # Kept on the instance: MediaPipe may read the model from this buffer after creation.
        self._detector_model = bundled_file(bundle_path, BUNDLED_DETECTOR)
        if self._detector_model is None:
            raise ValueError(f"{bundle_path} holds no {BUNDLED_DETECTOR}: not a MediaPipe face landmarker bundle")
        self._detector = vision.FaceDetector.create_from_options(
            vision.FaceDetectorOptions(
                base_options=BaseOptions(model_asset_buffer=self._detector_model),
                running_mode=vision.RunningMode.IMAGE,
                min_detection_confidence=MIN_DETECTION_CONFIDENCE,
            )
        )
        self._landmarker = vision.FaceLandmarker.create_from_options(
            vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(bundle_path)),
                running_mode=vision.RunningMode.IMAGE,
                num_faces=MAX_FACES_PER_CROP,
                min_face_detection_confidence=LANDMARKER_MIN_DETECTION_CONFIDENCE,
                min_face_presence_confidence=LANDMARKER_MIN_PRESENCE_CONFIDENCE,
            )
        )
        self._lock = threading.Lock()  # MediaPipe tasks are not documented as thread-safe

    def _landmark_face(self, image_rgb: np.ndarray, box_xywh: Sequence[float]) -> np.ndarray | None:
        """Landmarks (pixels of the whole image) of the face in the box, from a crop around it."""
        height, width = image_rgb.shape[:2]
        x0, y0, x1, y1 = crop_xyxy(box_xywh, width, height)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        result = self._landmarker.detect(srgb_image(image_rgb[y0:y1, x0:x1]))
        scale_xy, offset_xy = np.array([x1 - x0, y1 - y0], float), np.array([x0, y0], float)
        faces_xy = [np.array([(lm.x, lm.y) for lm in face]) * scale_xy + offset_xy for face in result.face_landmarks]
        return face_in_box(faces_xy, box_xywh)

    def detect(self, image_rgb: np.ndarray, options: DetectOptions) -> list[dict[str, Any]]:
        height, width = image_rgb.shape[:2]
        if width == 0 or height == 0:
            return []
        results = []
        with self._lock:
            detections = self._detector.detect(srgb_image(image_rgb)).detections
            for detection in detections:
                box = detection.bounding_box
                box_xywh = (float(box.origin_x), float(box.origin_y), float(box.width), float(box.height))
                points_xy = self._landmark_face(image_rgb, box_xywh)
                if points_xy is not None:
                    score = min(max(float(detection.categories[0].score), 0.0), 1.0)
                    results.extend(face_results(points_xy, score, width, height))
        return results

    def close(self) -> None:
        """Free the tasks now (MediaPipe 1.2.3 cannot free a task still alive at interpreter exit)."""
        with self._lock:
            self._detector.close()
            self._landmarker.close()
