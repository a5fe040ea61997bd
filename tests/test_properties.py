"""Properties that must hold for any input (hypothesis).

- Any body sent to an inference route gets a JSON answer of V7's shape, and a client's mistake is
  never a 500 (real Flask app, real OpenCV and MediaPipe models on small real pictures).
- Whatever a model returns within the driver's limits, the answer lies inside the image: shifted
  back from the Auto-Annotate crop, clipped, in V7's shape; a result wholly inside stays exact.
- The fast JPEG decoder gives the very pixels of Pillow's reference path, every EXIF orientation.
"""

from __future__ import annotations

import base64
import io
import json
import math
from typing import Any, ClassVar

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from models.base import ClassSpec, DetectOptions, Model, ModelSpec, SkeletonSpec
from models.driver import Request, run_model
from models.files import ModelFileLocator
from models.geometry import crop_region_xyxy
from models.registry import BUILTIN_MODELS, ModelRegistry
from server.app import create_app
from server.images import decode_image
from server.response_schema import RESPONSE_SCHEMA
from server.settings import Settings
from tests.contract_checks import points_of


@pytest.fixture(scope="module")
def assert_v7_shape(v7_schema):
    """V7's schema and ours, compiled once (hypothesis sends hundreds of answers through them)."""
    validators = [jsonschema.validators.validator_for(s)(s) for s in (v7_schema, RESPONSE_SCHEMA)]

    def check(answer: dict) -> None:
        for validator in validators:
            validator.validate(answer)
        assert all(result["name"] == result["label"] for result in answer["results"])

    return check


PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- any body in, a V7-shaped JSON answer out ---------------------------------------------------------


def encoded(picture: np.ndarray, fmt: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def small_pictures(picture) -> list[str]:
    """Base64 of small real pictures in several formats: valid images the models really run on."""
    face = np.ascontiguousarray(picture("astronaut")[::4, ::4])  # 128 x 128
    cat = np.ascontiguousarray(picture("chelsea")[::8, ::8])
    return [encoded(face, "JPEG"), encoded(face, "PNG"), encoded(cat, "GIF"), encoded(cat, "BMP"),
            "data:image/jpeg;base64," + encoded(face, "JPEG")]  # fmt: skip


@pytest.fixture(scope="module")
def client(model_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("properties")
    registry = ModelRegistry(BUILTIN_MODELS, ModelFileLocator(model_dir, home / "cache"))
    settings_ = Settings(config_path=home / "config.json", request_log_path=home / "requests.sqlite3",
                         max_body_bytes=300_000, max_image_pixels=1_000_000, preload_models=False)  # fmt: skip
    return create_app(settings_, registry).test_client()


json_scalars = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
#: URLs that never reach the network: other schemes, no host, or private addresses (refused by default).
urls = st.sampled_from(
    ["http://127.0.0.1:9/a.jpg", "http://10.0.0.1/a.jpg", "https://[::1]/a.png", "http://169.254.169.254/",
     "file:///etc/passwd", "ftp://example.com/a.jpg", "http:///a.jpg", "http://example.com:99999/", "", "   ",
     "javascript:alert(1)", "http://0x7f.1/", "//example.com/a.jpg"]
) | st.text(max_size=30).filter(lambda u: not u.strip().lower().startswith(("http", "//")))  # fmt: skip
numbers = st.integers(-2000, 2000) | st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0, 1e308, -0.0])
boxes = st.fixed_dictionaries({"x": numbers, "y": numbers, "w": numbers, "h": numbers}) | json_values


@st.composite
def bodies(draw, pictures: list[str]) -> Any:
    kind = draw(st.sampled_from(["json", "near-valid", "near-valid", "near-valid"]))
    if kind == "json":
        return draw(json_values)
    image = draw(
        st.one_of(
            st.fixed_dictionaries({"base64": st.sampled_from(pictures)}),
            st.fixed_dictionaries({"base64": st.text(max_size=40) | st.binary(max_size=60).map(
                lambda b: base64.b64encode(b).decode())}),
            st.fixed_dictionaries({"url": urls}),
            st.fixed_dictionaries({"url": urls, "base64": st.sampled_from(pictures)}),
            json_values,
        )
    )  # fmt: skip
    body: dict[str, Any] = {"image": image}
    where = draw(st.sampled_from(["top", "data", "none"]))
    extra = {}
    if draw(st.booleans()):
        extra["bbox"] = draw(boxes)
    if draw(st.booleans()):
        extra["threshold"] = draw(st.floats(-1, 2, allow_nan=False) | json_values)
    if where == "top":
        body.update(extra)
    elif where == "data":
        body["data"] = {**extra, "clicks": draw(json_values)}
    if draw(st.booleans()):
        body[draw(st.text(max_size=6))] = draw(json_values)  # unknown keys V7 might add
    return body


CLIENT_MISTAKES = {400, 404, 413, 415}


@pytest.fixture(scope="module")
def checked_post(client, assert_v7_shape):
    def post(route: str, **send) -> tuple[int, dict]:
        response = client.post(route, **send)
        assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
        body = response.get_json()
        assert_v7_shape(body)
        assert response.status_code == 200 or response.status_code in CLIENT_MISTAKES, (response.status_code, body)
        if response.status_code == 200:
            assert body["status"] == "succeeded"
        else:
            assert body["status"] == "failed" and body["results"] == [] and body["error"].strip()
        return response.status_code, body

    return post


def test_any_json_body_gets_a_v7_answer_and_never_a_500(checked_post, small_pictures):
    routes = st.sampled_from(["/infer", "/models/opencv-face/infer", "/models/mediapipe-face/infer"])

    @PROPERTY_SETTINGS
    @given(route=routes, body=bodies(small_pictures))
    def check(route, body):
        checked_post(route, data=json.dumps(body), content_type="application/json")

    check()


def test_well_formed_requests_succeed(checked_post, small_pictures):
    corner = st.integers(-20, 30)  # every picture is at least 37 px a side: each such box overlaps it
    size = st.integers(21, 99)

    @settings(max_examples=25, deadline=None, database=None)
    @given(picture_b64=st.sampled_from(small_pictures), threshold=st.floats(0, 1), under_data=st.booleans(),
           box=st.tuples(corner, corner, size, size))  # fmt: skip
    def check(picture_b64, threshold, under_data, box):
        extra = {"bbox": dict(zip("xywh", box, strict=True)), "threshold": threshold}
        body = {"image": {"base64": picture_b64}, **({"data": extra} if under_data else extra)}
        status, _ = checked_post("/infer", json=body)
        assert status == 200

    check()


def test_any_bytes_or_content_type_get_a_json_answer(checked_post):
    @PROPERTY_SETTINGS
    @given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
           content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded",
                                         "multipart/form-data; boundary=x", "application/vnd.v7+json"]))  # fmt: skip
    def check(raw, content_type):
        checked_post("/models/opencv-face/infer", data=raw, content_type=content_type)

    check()


def test_json_with_nan_and_infinity_gets_a_clear_400(checked_post):
    for text in ('{"image": {"base64": "aGk="}, "threshold": NaN}',
                 '{"image": {"base64": "aGk="}, "bbox": {"x": Infinity, "y": 0, "w": 1, "h": 1}}'):  # fmt: skip
        status, body = checked_post("/infer", data=text, content_type="application/json")
        assert status == 400 and ("threshold" in body["error"] or "bbox" in body["error"])


# -- whatever a model returns, the answer lies inside the image ---------------------------------------

SKELETON_NODES = ("a", "b", "c")


class ScriptedModel(Model):
    """Returns the results it is given, in coordinates relative to the region it receives (0..1)."""

    spec: ClassVar[ModelSpec] = ModelSpec(
        name="scripted",
        description="returns what the test scripts",
        classes=(
            ClassSpec("box", "bounding_box"),
            ClassSpec("area", "polygon"),
            ClassSpec("path", "line"),
            ClassSpec("spot", "keypoint"),
            ClassSpec("body", "skeleton", SkeletonSpec(SKELETON_NODES, (("a", "b"), ("b", "c")))),
        ),
        default_threshold=0.0,
    )

    def __init__(self, script: list[tuple[str, float, list[tuple[float, float]]]]) -> None:
        super().__init__()
        self.script = script
        self.region_wh: tuple[int, int] | None = None

    def detect(self, image_rgb: np.ndarray, options: DetectOptions) -> list[dict[str, Any]]:
        height, width = image_rgb.shape[:2]
        self.region_wh = (width, height)
        results = []
        for label, confidence, points in self.script:
            xy = [(u * width, v * height) for u, v in points]
            result: dict[str, Any] = {"label": label, "confidence": confidence}
            if label == "box":
                (x0, y0), (x1, y1) = xy[0], xy[1]
                result["bounding_box"] = {"x": min(x0, x1), "y": min(y0, y1), "w": abs(x1 - x0), "h": abs(y1 - y0)}
            elif label == "area":
                result["polygon"] = {"path": [{"x": x, "y": y} for x, y in xy]}
            elif label == "path":
                result["line"] = {"path": [{"x": x, "y": y} for x, y in xy]}
            elif label == "spot":
                result["keypoint"] = {"x": xy[0][0], "y": xy[0][1]}
            else:
                nodes = [
                    {"name": n, "x": x, "y": y, "occluded": False}
                    for n, (x, y) in zip(SKELETON_NODES, xy[:3], strict=True)
                ]
                result["skeleton"] = {"nodes": nodes}
            results.append(result)
        return results


#: Relative coordinates from one region size before to one after it: the driver's own limit.
relative = st.floats(-0.99, 1.99, allow_nan=False)
points = st.lists(st.tuples(relative, relative), min_size=3, max_size=6)
scripted_results = st.lists(
    st.tuples(st.sampled_from(["box", "area", "path", "spot", "body"]), st.floats(0, 1), points), max_size=6
)


@st.composite
def image_and_box(draw) -> tuple[tuple[int, int], tuple[float, float, float, float] | None]:
    width, height = draw(st.integers(1, 400)), draw(st.integers(1, 400))
    if draw(st.booleans()):
        return (width, height), None
    x = draw(st.floats(-width, width - 0.5))
    y = draw(st.floats(-height, height - 0.5))
    w = draw(st.floats(max(0.5, -x + 0.5), 2 * width))
    h = draw(st.floats(max(0.5, -y + 0.5), 2 * height))
    return (width, height), (x, y, w, h)


def test_results_always_lie_inside_the_image(assert_v7_shape):
    @settings(max_examples=300, deadline=None, database=None)
    @given(script=scripted_results, frame=image_and_box(), threshold=st.none() | st.floats(0, 1))
    def check(script, frame, threshold):
        (width, height), box = frame
        model = ScriptedModel(script)
        image = np.zeros((height, width, 3), dtype=np.uint8)
        results = run_model(model, image, Request(box, threshold))
        assert_v7_shape({"status": "succeeded", "results": results})
        assert len(results) <= len(script)
        for result in results:
            assert result["name"] == result["label"] and 0 <= result["confidence"] <= 1
            for point in points_of(result):
                # rounding to 0.01 px may carry a corner 0.01 beyond the border, never further
                assert 0 <= point["x"] <= width + 0.01 and 0 <= point["y"] <= height + 0.01
            if "bounding_box" in result:
                assert result["bounding_box"]["w"] > 0 and result["bounding_box"]["h"] > 0

    check()


def test_a_result_inside_the_crop_comes_back_exactly_shifted():
    @settings(max_examples=200, deadline=None, database=None)
    @given(frame=image_and_box(), corner=st.tuples(st.floats(0, 0.5), st.floats(0, 0.5)),
           size=st.tuples(st.floats(0.05, 0.5), st.floats(0.05, 0.5)))  # fmt: skip
    def check(frame, corner, size):
        (width, height), box = frame
        assume(box is not None)
        (u, v), (du, dv) = corner, size
        model = ScriptedModel([("box", 0.9, [(u, v), (u + du, v + dv), (0, 0)])])
        results = run_model(model, np.zeros((height, width, 3), dtype=np.uint8), Request(box))
        x0, y0, _, _ = crop_region_xyxy(box, (width, height))
        region_w, region_h = model.region_wh
        expected = (x0 + u * region_w, y0 + v * region_h, du * region_w, dv * region_h)
        center = (expected[0] + expected[2] / 2, expected[1] + expected[3] / 2)
        inside_box = box[0] <= center[0] <= box[0] + box[2] and box[1] <= center[1] <= box[1] + box[3]
        assume(inside_box and expected[2] >= 0.01 and expected[3] >= 0.01)
        assert len(results) == 1
        got = results[0]["bounding_box"]
        for key, want in zip("xywh", expected, strict=True):
            assert math.isclose(got[key], want, abs_tol=0.0051), (key, got, expected)

    check()


# -- decoding: the fast path equals the reference -------------------------------------------------------


@st.composite
def encoded_pictures(draw) -> bytes:
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    mode = draw(st.sampled_from(["RGB", "L", "RGBA", "P", "CMYK"]))
    fmt = draw(st.sampled_from(["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"]))
    if fmt == "JPEG" and mode in ("RGBA", "P"):
        mode = "RGB"
    pixels = np.frombuffer(draw(st.binary(min_size=width * height * 3, max_size=width * height * 3)), np.uint8)
    image = Image.fromarray(pixels.reshape(height, width, 3)).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = draw(st.integers(1, 8))
    buffer = io.BytesIO()
    options = {"exif": exif} if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else {}
    try:
        image.save(buffer, format=fmt, **options)
    except (OSError, ValueError):
        assume(False)  # a mode this format cannot store
    return buffer.getvalue()


def test_decoding_matches_pillow_reference_for_any_picture():
    @settings(max_examples=200, deadline=None, database=None)
    @given(data=encoded_pictures())
    def check(data):
        reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        decoded = decode_image(data, max_pixels=10**6, max_side_px=10**4)
        assert decoded.dtype == np.uint8 and decoded.shape == (reference.height, reference.width, 3)
        assert np.array_equal(decoded, np.asarray(reference))

    check()
