"""The four MediaPipe adapters, with real inference on the built-in pictures.

Expected values were measured once on these machines (2 cores, mediapipe 1.2.3, the model files of
BYOM_MODEL_DIR) and are asserted with tolerances. No picture shipped with the installed packages
shows a hand (at a 0.1 gate the only "hands" were a coat sleeve and a collar), so the hand adapter
is checked for no false hands on real pictures and for its conversion on synthetic MediaPipe output.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from mediapipe.tasks.python import vision
from mediapipe.tasks.python.components.containers.category import Category
from mediapipe.tasks.python.components.containers.landmark import NormalizedLandmark
from mediapipe.tasks.python.vision.hand_landmarker import HandLandmark

from models import face_landmarks, hands, mediapipe_face, pose
from models.base import DetectOptions, Model
from models.driver import run_model
from models.face_landmarks import FaceLandmarks
from models.files import ModelFileLocator, ModelUnavailable
from models.hands import Hands
from models.mediapipe_face import MediaPipeFace
from models.pose import Pose
from models.registry import BUILTIN_MODELS, ModelRegistry, import_model_class

PEOPLE = ("astronaut", "camera", "grace_hopper")
NO_PEOPLE = ("coffee", "chelsea")
ALL_PICTURES = PEOPLE + NO_PEOPLE
#: The driver's default threshold: results below it never reach V7.
THRESHOLD = 0.5
#: Measured: BlazeFace's box on astronaut is x=177 y=82 w=95 h=95.
ASTRONAUT_FACE_CENTER_XY = (224.5, 129.5)
ASTRONAUT_FACE_SIDE_PX = 95.0
LARGE_SIDE_PX = 1536  # astronaut (512 px) upscaled 3x
ADAPTERS = (MediaPipeFace, FaceLandmarks, Pose, Hands)


def load(model_class: type[Model], model_dir: Path) -> Model:
    return model_class({f.name: model_dir / f.name for f in model_class.spec.files})


@pytest.fixture(scope="module")
def face_model(model_dir):
    model = load(MediaPipeFace, model_dir)
    yield model
    model.close()


@pytest.fixture(scope="module")
def landmarks_model(model_dir):
    model = load(FaceLandmarks, model_dir)
    yield model
    model.close()


@pytest.fixture(scope="module")
def pose_model(model_dir):
    model = load(Pose, model_dir)
    yield model
    model.close()


@pytest.fixture(scope="module")
def hands_model(model_dir):
    model = load(Hands, model_dir)
    yield model
    model.close()


@pytest.fixture(scope="module")
def large_astronaut(picture):
    return cv2.resize(picture("astronaut"), (LARGE_SIDE_PX, LARGE_SIDE_PX), interpolation=cv2.INTER_LINEAR)


def detect(model: Model, image_rgb: np.ndarray) -> list[dict]:
    return model.detect(image_rgb, DetectOptions(threshold=THRESHOLD))


def labelled(results: list[dict], label: str, min_confidence: float = 0.0) -> list[dict]:
    return [r for r in results if r["label"] == label and r["confidence"] >= min_confidence]


def nodes_xy(result: dict) -> np.ndarray:
    return np.array([(n["x"], n["y"]) for n in result["skeleton"]["nodes"]])


def path_xy(result: dict) -> np.ndarray:
    return np.array([(p["x"], p["y"]) for p in result["polygon"]["path"]])


def box_xyxy(result: dict, margin_fraction: float = 0.0) -> tuple[float, float, float, float]:
    box = result["bounding_box"]
    mx, my = box["w"] * margin_fraction, box["h"] * margin_fraction
    return box["x"] - mx, box["y"] - my, box["x"] + box["w"] + mx, box["y"] + box["h"] + my


def inside_xyxy(points_xy: np.ndarray, xyxy: tuple[float, float, float, float]) -> bool:
    x0, y0, x1, y1 = xyxy
    return bool(
        ((points_xy[:, 0] >= x0) & (points_xy[:, 0] <= x1) & (points_xy[:, 1] >= y0) & (points_xy[:, 1] <= y1)).all()
    )


def segments_cross(p1, p2, q1, q2) -> bool:
    """Proper crossing of two segments (touching at shared end points does not count)."""

    def side(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    return side(p1, p2, q1) * side(p1, p2, q2) < 0 and side(q1, q2, p1) * side(q1, q2, p2) < 0


def is_simple_ring(points_xy: np.ndarray) -> bool:
    """No two non-adjacent edges of the closed ring cross."""
    n = len(points_xy)
    edges = [(points_xy[i], points_xy[(i + 1) % n]) for i in range(n)]
    return not any(segments_cross(*edges[i], *edges[j]) for i in range(n) for j in range(i + 2, n) if (j + 1) % n != i)


def ring_edges(ring: tuple[int, ...]) -> set[frozenset[int]]:
    return {frozenset((a, b)) for a, b in zip(ring, ring[1:] + ring[:1], strict=True)}


def connection_edges(connections) -> set[frozenset[int]]:
    return {frozenset((c.start, c.end)) for c in connections}


# --- specs and names, no model files needed ---------------------------------------------------


@pytest.mark.parametrize("model_class", ADAPTERS, ids=lambda c: c.__name__)
def test_registry_names_these_classes(model_class):
    assert import_model_class(BUILTIN_MODELS[model_class.spec.name]) is model_class


def test_files_use_official_urls_and_pin_only_the_official_copies():
    files = {f.name: f for cls in ADAPTERS for f in cls.spec.files}
    assert set(files) == {
        "blaze_face_short_range.tflite",
        "face_landmarker.task",
        "pose_landmarker_full.task",
        "hand_landmarker.task",
    }
    for model_file in files.values():
        assert model_file.url.startswith("https://storage.googleapis.com/mediapipe-models/")
        assert model_file.url.endswith("/" + model_file.name)
    assert files["blaze_face_short_range.tflite"].sha256 == (
        "b4578f35940bf5a1a655214a1cce5cab13eba73c1297cd78e1a04c2380b0152f"
    )
    assert files["face_landmarker.task"].sha256 == "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
    assert files["pose_landmarker_full.task"].sha256 is None
    assert files["hand_landmarker.task"].sha256 is None


def test_models_without_files_are_unavailable_not_broken(tmp_path):
    registry = ModelRegistry.builtin(ModelFileLocator(tmp_path / "empty", tmp_path / "cache"))
    for model_class in ADAPTERS:
        name = model_class.spec.name
        assert registry.spec(name) is model_class.spec
        assert not registry.is_available(name)
        with pytest.raises(ModelUnavailable, match=model_class.spec.files[0].url):
            registry.get(name)


def test_pose_nodes_and_edges_are_mediapipes():
    assert pose.LANDMARK_NAMES == tuple(landmark.name.lower() for landmark in vision.PoseLandmark)
    index = {name: i for i, name in enumerate(pose.LANDMARK_NAMES)}
    spec_edges = {frozenset((index[a], index[b])) for a, b in Pose.spec.classes[0].skeleton.edges}
    assert spec_edges == connection_edges(vision.PoseLandmarksConnections.POSE_LANDMARKS)


def test_hand_nodes_and_edges_are_mediapipes():
    assert hands.LANDMARK_NAMES == tuple(landmark.name.lower() for landmark in HandLandmark)
    index = {name: i for i, name in enumerate(hands.LANDMARK_NAMES)}
    spec_edges = {frozenset((index[a], index[b])) for a, b in Hands.spec.classes[0].skeleton.edges}
    assert spec_edges == connection_edges(vision.HandLandmarksConnections.HAND_CONNECTIONS)


def test_face_rings_follow_mediapipes_connections():
    rings = dict(face_landmarks.POLYGON_RINGS)
    connections = vision.FaceLandmarksConnections
    for name, constant in [
        ("face_oval", connections.FACE_LANDMARKS_FACE_OVAL),
        ("left_eye", connections.FACE_LANDMARKS_LEFT_EYE),
        ("right_eye", connections.FACE_LANDMARKS_RIGHT_EYE),
    ]:
        assert ring_edges(rings[name]) == connection_edges(constant), name
    # Lips: the outer contour, i.e. the connected part of FACE_LANDMARKS_LIPS through corner 61.
    lips = connection_edges(connections.FACE_LANDMARKS_LIPS)
    outer = {edge for edge in lips if edge <= set(rings["lips"])}
    assert ring_edges(rings["lips"]) == outer
    assert not any(edge & set(rings["lips"]) for edge in lips - outer)
    # Eyebrows: MediaPipe gives the lower and the upper edge as two open paths; the ring joins their ends.
    for name, constant in [
        ("left_eyebrow", connections.FACE_LANDMARKS_LEFT_EYEBROW),
        ("right_eyebrow", connections.FACE_LANDMARKS_RIGHT_EYEBROW),
    ]:
        edges = connection_edges(constant)
        assert edges <= ring_edges(rings[name]) and len(ring_edges(rings[name]) - edges) == 2, name
        assert set(rings[name]) == set().union(*edges), name


def test_face_landmarks_docstring_lists_the_indices_in_use():
    words = " ".join(face_landmarks.__doc__.split())
    for name, ring in face_landmarks.POLYGON_RINGS:
        assert " ".join(map(str, ring)) in words, name
    for name, index in face_landmarks.SKELETON_POINTS:
        assert f" {name}={index} " in words, name


def test_face_landmarks_spec_lists_rings_then_named_points():
    names = [c.name for c in FaceLandmarks.spec.classes]
    assert names == ["face_oval", "left_eye", "right_eye", "left_eyebrow", "right_eyebrow", "lips", "face_landmarks"]
    assert FaceLandmarks.spec.classes[-1].skeleton.nodes == face_landmarks.SKELETON_NODES
    assert 20 <= len(face_landmarks.SKELETON_NODES) <= 30


def test_a_folded_ring_becomes_its_hull_and_a_simple_one_stays():
    square = np.array([(0, 0), (4, 0), (4, 4), (0, 4)], float)
    bow_tie = np.array([(0, 0), (4, 4), (4, 0), (0, 4)], float)
    assert not face_landmarks.crosses_itself(square) and face_landmarks.crosses_itself(bow_tie)
    assert face_landmarks.editable_ring(square) is square
    hull = face_landmarks.editable_ring(bow_tie)
    assert is_simple_ring(hull) and {tuple(p) for p in hull} == {tuple(p) for p in square}


def synthetic_hand(points_xy, side: str, score: float):
    landmarks = [NormalizedLandmark(x=x, y=y, z=0.0) for x, y in points_xy]
    return landmarks, [Category(index=0, score=score, display_name=side, category_name=side)]


def test_hand_result_from_synthetic_mediapipe_output():
    points_xy = [(0.1 + 0.02 * i, 0.5) for i in range(21)]
    points_xy[20] = (1.2, -0.1)  # pinky tip outside the picture
    landmarks, categories = synthetic_hand(points_xy, "Right", 0.93)
    result = hands.hand_result(landmarks, categories, 200, 100)
    assert result["label"] == "hand" and result["attributes"] == ["right"]
    assert result["confidence"] == pytest.approx(0.93)
    nodes = result["skeleton"]["nodes"]
    assert [n["name"] for n in nodes] == list(Hands.spec.classes[0].skeleton.nodes)
    assert (nodes[0]["x"], nodes[0]["y"], nodes[0]["occluded"]) == (pytest.approx(20.0), pytest.approx(50.0), False)
    assert (nodes[20]["x"], nodes[20]["y"], nodes[20]["occluded"]) == (200.0, 0.0, True)


def test_hand_result_rejects_malformed_output():
    landmarks, categories = synthetic_hand([(0.5, 0.5)] * 21, "Left", 0.8)
    assert hands.hand_result(landmarks[:20], categories, 100, 100) is None
    landmarks[3] = NormalizedLandmark(x=math.nan, y=0.5)
    assert hands.hand_result(landmarks, categories, 100, 100) is None


def test_pose_result_marks_unseen_and_outside_nodes_occluded():
    landmarks = [NormalizedLandmark(x=0.5, y=0.5, visibility=0.9) for _ in range(33)]
    landmarks[15] = NormalizedLandmark(x=0.5, y=0.5, visibility=0.2)  # left wrist, not visible
    landmarks[27] = NormalizedLandmark(x=0.5, y=1.8, visibility=0.9)  # left ankle, below the picture
    nodes = pose.pose_result(landmarks, 100, 100)["skeleton"]["nodes"]
    assert [n["name"] for n in nodes if n["occluded"]] == ["left_wrist", "left_ankle"]
    assert (nodes[27]["x"], nodes[27]["y"]) == (50.0, 100.0)


def test_adapters_reject_images_mediapipe_would_misread(face_model):
    with pytest.raises(ValueError, match="H x W x 3"):
        detect(face_model, np.zeros((64, 64, 4), np.uint8))
    assert detect(face_model, np.zeros((0, 64, 3), np.uint8)) == []


# --- real inference -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_PICTURES)
def test_face_detector_finds_one_face_on_people_only(face_model, picture, name):
    results = detect(face_model, picture(name))
    expected = 1 if name in PEOPLE else 0
    assert len(labelled(results, "face", THRESHOLD)) == expected
    assert len(labelled(results, "face_keypoints", THRESHOLD)) == expected
    assert all(0.0 <= r["confidence"] <= 1.0 for r in results)


def test_face_box_and_keypoints_on_astronaut(face_model, picture):
    image = picture("astronaut")
    results = detect(face_model, image)
    [face] = labelled(results, "face", THRESHOLD)
    [keypoints] = labelled(results, "face_keypoints", THRESHOLD)
    box = face["bounding_box"]
    assert face["confidence"] > 0.85
    assert (box["x"] + box["w"] / 2, box["y"] + box["h"] / 2) == pytest.approx(ASTRONAUT_FACE_CENTER_XY, abs=15)
    assert (box["w"], box["h"]) == pytest.approx((ASTRONAUT_FACE_SIDE_PX, ASTRONAUT_FACE_SIDE_PX), abs=15)
    points = dict(zip(mediapipe_face.KEYPOINT_NAMES, nodes_xy(keypoints), strict=True))
    # She faces the camera: her right eye and ear are on the image's left.
    assert points["right_ear_tragion"][0] < points["right_eye"][0] < points["nose_tip"][0] < points["left_eye"][0]
    assert points["left_eye"][0] < points["left_ear_tragion"][0]
    assert max(points["right_eye"][1], points["left_eye"][1]) < points["nose_tip"][1] < points["mouth_center"][1]
    assert inside_xyxy(nodes_xy(keypoints), box_xyxy(face, 0.25))


@pytest.mark.parametrize("name", ALL_PICTURES)
def test_face_landmarks_one_set_per_face(landmarks_model, picture, name):
    results = detect(landmarks_model, picture(name))
    expected = 1 if name in PEOPLE else 0
    for class_spec in FaceLandmarks.spec.classes:
        assert len(labelled(results, class_spec.name, THRESHOLD)) == expected, class_spec.name
    assert len(results) == expected * len(FaceLandmarks.spec.classes)


@pytest.mark.parametrize("name", PEOPLE)
def test_face_landmarks_lie_on_the_detected_face(landmarks_model, face_model, picture, name):
    image = picture(name)
    [face] = labelled(detect(face_model, image), "face", THRESHOLD)
    face_area = box_xyxy(face, 0.25)
    results = detect(landmarks_model, image)
    assert {r["confidence"] for r in results} == {face["confidence"]}  # the detector's score
    for result in results:
        if "polygon" in result:
            ring = path_xy(result)
            assert len(ring) >= 3 and np.isfinite(ring).all()
            assert inside_xyxy(ring, face_area), result["label"]
            assert is_simple_ring(ring), result["label"]
    [points] = labelled(results, "face_landmarks")
    nodes = points["skeleton"]["nodes"]
    assert [n["name"] for n in nodes] == list(face_landmarks.SKELETON_NODES)
    assert inside_xyxy(nodes_xy(points), face_area)
    assert not any(n["occluded"] for n in nodes)
    by_name = {n["name"]: (n["x"], n["y"]) for n in nodes}
    for side in ("left", "right"):
        [eye] = labelled(results, f"{side}_eye")
        contour = path_xy(eye).astype(np.float32)
        assert cv2.pointPolygonTest(contour, by_name[f"{side}_iris"], False) >= 0, side
    assert by_name["nose_tip"][1] < by_name["upper_lip_top"][1] < by_name["lower_lip_bottom"][1] < by_name["chin"][1]


@pytest.mark.parametrize("name", ALL_PICTURES)
def test_pose_one_person_on_people_only(pose_model, picture, name):
    image = picture(name)
    height, width = image.shape[:2]
    results = detect(pose_model, image)
    assert len(results) == (1 if name in PEOPLE else 0)
    for person in results:
        assert person["label"] == "person" and 0.0 <= person["confidence"] <= 1.0
        nodes = person["skeleton"]["nodes"]
        assert [n["name"] for n in nodes] == list(pose.LANDMARK_NAMES)
        assert all(0 <= n["x"] <= width and 0 <= n["y"] <= height for n in nodes)


@pytest.mark.parametrize("name", PEOPLE)
def test_pose_nose_lies_in_the_face_box(pose_model, face_model, picture, name):
    image = picture(name)
    [face] = labelled(detect(face_model, image), "face", THRESHOLD)
    [person] = detect(pose_model, image)
    nose = person["skeleton"]["nodes"][0]
    assert nose["name"] == "nose" and not nose["occluded"]
    assert inside_xyxy(np.array([(nose["x"], nose["y"])]), box_xyxy(face))
    assert person["confidence"] > 0.9


def test_pose_on_a_portrait_hides_the_legs(pose_model, picture):
    """astronaut shows head and shoulders: MediaPipe guesses the legs far below the picture."""
    [person] = detect(pose_model, picture("astronaut"))
    occluded = {n["name"] for n in person["skeleton"]["nodes"] if n["occluded"]}
    assert {"left_ankle", "right_ankle", "left_knee", "right_knee"} <= occluded
    assert not occluded & {"nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"}


@pytest.mark.parametrize("name", ALL_PICTURES)
def test_no_hands_where_none_are_visible(hands_model, picture, name):
    assert detect(hands_model, picture(name)) == []


@pytest.mark.parametrize(
    ("model_fixture", "tolerance_px"),
    [("face_model", 15.0), ("landmarks_model", 10.0), ("pose_model", 30.0)],
)
def test_results_scale_with_the_picture(request, picture, large_astronaut, model_fixture, tolerance_px):
    """The 3x upscaled astronaut gives the same answer x3 (tolerance in pixels of the large picture;
    measured worst cases: 8 face box, 2 landmarks, 19 pose)."""
    model = request.getfixturevalue(model_fixture)
    small = [r for r in detect(model, picture("astronaut")) if r["confidence"] >= THRESHOLD]
    large = [r for r in detect(model, large_astronaut) if r["confidence"] >= THRESHOLD]
    assert [r["label"] for r in large] == [r["label"] for r in small] and small
    for s, big in zip(small, large, strict=True):
        if "bounding_box" in s:
            expected, got = np.array(box_xyxy(s)) * 3, np.array(box_xyxy(big))
        elif "polygon" in s:
            expected, got = path_xy(s) * 3, path_xy(big)
        else:
            seen = np.array([not n["occluded"] for n in s["skeleton"]["nodes"]])
            expected, got = nodes_xy(s)[seen] * 3, nodes_xy(big)[seen]
        assert np.abs(got - expected).max() <= tolerance_px, s["label"]


@pytest.mark.parametrize("model_fixture", ["face_model", "landmarks_model", "pose_model", "hands_model"])
def test_eight_threads_get_the_single_thread_answer(request, picture, model_fixture):
    model = request.getfixturevalue(model_fixture)
    image = picture("astronaut")
    expected = detect(model, image)
    start = threading.Barrier(8)

    def run(_: int) -> list[list[dict]]:
        start.wait()
        return [detect(model, image) for _ in range(2)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = [a for batch in pool.map(run, range(8)) for a in batch]
    assert all(answer == expected for answer in answers)


@pytest.mark.parametrize("model_fixture", ["face_model", "landmarks_model", "pose_model", "hands_model"])
def test_driver_output_passes_v7s_schema(request, picture, v7_schema, model_fixture):
    model = request.getfixturevalue(model_fixture)
    for name in ("astronaut", "camera"):
        results = run_model(model, picture(name))
        jsonschema.validate({"status": "succeeded", "results": results}, v7_schema)
        assert all(r["name"] == r["label"] for r in results)
