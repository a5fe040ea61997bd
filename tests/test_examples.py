"""The worked plug-in examples in examples/: loaded from their files as `serve --model-file` does.

box_contours.py (polygons of what is in the Auto-Annotate box, GrabCut) and brightness_tag.py (tags).
They are also served through gunicorn in tests/test_plugins.py.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pytest

from models.driver import Request, run_model
from models.registry import ModelRegistry
from models.samples import encode_png
from server.app import create_app
from server.settings import Settings
from tests.servers import PROJECT_DIR

EXAMPLES = PROJECT_DIR / "examples"


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    registry = ModelRegistry.with_plugins(
        [str(EXAMPLES / "box_contours.py"), str(EXAMPLES / "brightness_tag.py")], entry_points=False
    )
    assert registry.plugin_failures == []
    return registry


def polygon_mask(result: dict, resolution_wh: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((resolution_wh[1], resolution_wh[0]), np.uint8)
    points = np.array([[p["x"], p["y"]] for p in result["polygon"]["path"]], np.float64).round().astype(np.int32)
    cv2.fillPoly(mask, [points], 1)
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / max(1, np.logical_or(a, b).sum()))


# -- box-contours: the Auto-Annotate box decides what is outlined -------------------------------------


@pytest.fixture(scope="module")
def two_objects():
    """Noisy background, a red ellipse and a blue square: the picture, and each object's true mask."""
    picture = np.random.default_rng(7).integers(60, 140, (480, 640, 3), dtype=np.uint8)
    ellipse, square = np.zeros((480, 640), np.uint8), np.zeros((480, 640), np.uint8)
    cv2.ellipse(ellipse, (440, 250), (100, 70), -15, 0, 360, 1, thickness=-1)
    cv2.rectangle(square, (80, 120), (220, 260), 1, thickness=-1)
    picture[ellipse == 1] = (210, 50, 40)
    picture[square == 1] = (40, 60, 200)
    return picture, {"ellipse": ellipse, "square": square}


@pytest.mark.parametrize(("box_xywh", "inside"), [((320, 160, 240, 180), "ellipse"), ((60, 100, 180, 180), "square")])
def test_box_contours_outlines_the_object_in_the_box(registry, two_objects, box_xywh, inside):
    picture, truth = two_objects

    (result,) = run_model(registry.get("box-contours"), picture, Request(box_xywh=box_xywh))

    outline = polygon_mask(result, (640, 480))
    assert result["name"] == "object" and result["confidence"] > 0.9
    assert iou(outline, truth[inside]) > 0.9
    other = "square" if inside == "ellipse" else "ellipse"
    assert iou(outline, truth[other]) == 0


def test_box_contours_on_a_photo_follows_the_box(registry, picture):
    """coffee: a box on the spoon outlines the spoon, a box on the cup's rim the cup: two separate shapes."""
    coffee = picture("coffee")
    model = registry.get("box-contours")
    spoon_box, cup_box = (320, 230, 90, 100), (165, 10, 250, 200)

    (spoon,) = run_model(model, coffee, Request(box_xywh=spoon_box))
    (cup,) = run_model(model, coffee, Request(box_xywh=cup_box))

    spoon_mask, cup_mask = polygon_mask(spoon, (600, 400)), polygon_mask(cup, (600, 400))
    for mask, (x, y, w, h) in ((spoon_mask, spoon_box), (cup_mask, cup_box)):
        ys, xs = np.nonzero(mask)
        assert x - 10 <= xs.min() and xs.max() <= x + w + 10 and y - 10 <= ys.min() and ys.max() <= y + h + 10
        assert 0.4 < mask.sum() / (w * h) < 0.9  # an object in the box: neither nothing nor the whole box
    assert iou(spoon_mask, cup_mask) < 0.02


def test_box_contours_without_a_box_or_with_a_box_over_everything(registry):
    picture = np.full((300, 400, 3), 40, np.uint8)
    cv2.circle(picture, (200, 150), 80, (230, 200, 30), thickness=-1)
    truth = np.zeros((300, 400), np.uint8)
    cv2.circle(truth, (200, 150), 80, 1, thickness=-1)
    model = registry.get("box-contours")

    for request in (Request(), Request(box_xywh=(0, 0, 400, 300))):  # V7's Ctrl+Enter sends the whole image
        (result,) = run_model(model, picture, request)
        assert iou(polygon_mask(result, (400, 300)), truth) > 0.9


def test_box_contours_finds_nothing_in_a_plain_or_tiny_box(registry):
    model = registry.get("box-contours")
    plain = np.full((200, 200, 3), 120, np.uint8)

    assert run_model(model, plain, Request(box_xywh=(50, 50, 100, 100))) == []
    assert run_model(model, plain, Request(box_xywh=(10, 10, 2, 2))) == []


# -- brightness-tag: classification as tags ---------------------------------------------------------


def tags(registry, image, **request) -> dict[str, float]:
    return {r["name"]: r["confidence"] for r in run_model(registry.get("brightness-tag"), image, Request(**request))}


@pytest.mark.parametrize(
    ("sample", "expected"),
    [("camera", {"medium", "greyscale"}), ("astronaut", {"medium", "colourful"}), ("coffee", {"medium", "colourful"})],
)
def test_brightness_tag_on_real_pictures(registry, picture, sample, expected):
    assert set(tags(registry, picture(sample))) == expected


def test_brightness_tag_extremes_are_sure_and_brightness_is_luma(registry):
    assert tags(registry, np.zeros((60, 80, 3), np.uint8)) == {"dark": 1.0, "greyscale": 1.0}
    assert tags(registry, np.full((60, 80, 3), 255, np.uint8)) == {"bright": 1.0, "greyscale": 1.0}
    assert tags(registry, np.full((60, 80, 3), (250, 30, 30), np.uint8)) == {
        "medium": pytest.approx(0.63, abs=0.01),
        "colourful": 1.0,
    }


def test_brightness_tag_judges_only_the_box(registry, picture):
    coffee, camera = picture("coffee"), picture("camera")

    assert "dark" in tags(registry, coffee, box_xywh=(0, 0, 60, 60))  # the dark corner behind the cup
    assert "bright" in tags(registry, camera, box_xywh=(300, 20, 150, 100))  # the sky
    assert "dark" in tags(registry, camera, box_xywh=(150, 100, 80, 150))  # the photographer's coat


def test_brightness_tag_threshold_drops_the_unsure_tag(registry, picture):
    coffee = picture("coffee")

    assert tags(registry, coffee)["medium"] == pytest.approx(0.72, abs=0.01)
    assert set(tags(registry, coffee, threshold=0.8)) == {"colourful"}


def test_brightness_tag_is_served_with_its_five_tag_classes(registry, picture, tmp_path):
    client = create_app(Settings(config_path=tmp_path / "config.json", request_log_path=None), registry).test_client()

    classes = client.get("/models/brightness-tag/classes").get_json()
    answer = client.post(
        "/models/brightness-tag/infer",
        json={"image": {"base64": base64.b64encode(encode_png(picture("camera"))).decode()}},
    ).get_json()

    assert classes == [{"name": n, "type": "tag"} for n in ("dark", "medium", "bright", "greyscale", "colourful")]
    assert answer["status"] == "succeeded"
    assert [(r["name"], r["tag"]) for r in answer["results"]] == [("medium", {}), ("greyscale", {})]
