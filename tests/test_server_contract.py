"""The Flask app in-process: real models on real pictures, V7's contract, every bad input."""

from __future__ import annotations

import base64
import io
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.base import ClassSpec, DetectOptions, Model, ModelSpec, bounding_box
from models.files import ModelFileLocator
from models.registry import BUILTIN_MODELS, ModelRegistry
from models.samples import encode_jpeg, encode_png
from server.app import create_app
from server.settings import Settings
from tests.contract_checks import assert_v7_answer
from tests.servers import PictureServer

ASTRONAUT_FACE_XYWH = (177, 67, 93, 93)  # measured with OpenCV's cascade, PNG input


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make_settings(home: Path, **overrides) -> Settings:
    base = Settings(
        config_path=home / "config.json", request_log_path=home / "requests.sqlite3", allow_private_urls=True
    )
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-home")


@pytest.fixture(scope="module")
def registry(model_dir, home):
    registry = ModelRegistry(BUILTIN_MODELS, ModelFileLocator(model_dir, home / "cache"))
    yield registry
    registry.close()


@pytest.fixture(scope="module")
def client(registry, home):
    return create_app(make_settings(home), registry).test_client()


@pytest.fixture(scope="module")
def pictures(picture):
    return {name: encode_png(picture(name)) for name in ("astronaut", "camera", "grace_hopper", "coffee", "chelsea")}


def infer(client, route: str, image_bytes: bytes, **extra):
    response = client.post(route, json={"image": {"base64": b64(image_bytes)}, **extra})
    return response.status_code, response.get_json()


# -- real models on real pictures ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "picture_name", "expected_counts"),
    [
        ("opencv-face", "astronaut", {"face": 1}),
        ("opencv-face", "grace_hopper", {"face": 1}),
        ("opencv-face", "coffee", {}),
        ("opencv-face", "chelsea", {}),
        ("mediapipe-face", "astronaut", {"face": 1, "face_keypoints": 1}),
        ("mediapipe-face", "camera", {"face": 1, "face_keypoints": 1}),
        ("mediapipe-face", "coffee", {}),
        ("pose", "astronaut", {"person": 1}),
        ("pose", "grace_hopper", {"person": 1}),
        ("pose", "chelsea", {}),
        ("hands", "astronaut", {}),
        ("face-landmarks", "coffee", {}),
    ],
)
def test_model_finds_what_the_picture_shows(client, pictures, v7_schema, model, picture_name, expected_counts):
    status, body = infer(client, f"/models/{model}/infer", pictures[picture_name])
    assert status == 200, body
    classes = client.get(f"/models/{model}/classes").get_json()
    width, height = Image.open(io.BytesIO(pictures[picture_name])).size
    assert_v7_answer(body, v7_schema, classes, (width, height))
    counts: dict[str, int] = {}
    for result in body["results"]:
        counts[result["name"]] = counts.get(result["name"], 0) + 1
    assert counts == expected_counts


def test_face_box_lies_on_the_astronauts_face(client, pictures):
    _, body = infer(client, "/models/opencv-face/infer", pictures["astronaut"])
    box = body["results"][0]["bounding_box"]
    assert (box["x"], box["y"], box["w"], box["h"]) == pytest.approx(ASTRONAUT_FACE_XYWH, abs=8)
    assert 0.5 < body["results"][0]["confidence"] <= 1


def test_default_endpoint_joins_faces_landmarks_and_pose(client, pictures, v7_schema):
    status, body = infer(client, "/infer", pictures["astronaut"])
    assert status == 200, body
    classes = client.get("/classes").get_json()
    assert_v7_answer(body, v7_schema, classes, (512, 512))
    names = {r["name"] for r in body["results"]}
    assert {"face", "face_oval", "left_eye", "right_eye", "lips", "person"} <= names
    # the face oval surrounds the face box's centre, and the pose's nose is inside the face box
    box = next(r for r in body["results"] if r["name"] == "face")["bounding_box"]
    nose = next(r for r in body["results"] if r["name"] == "person")["skeleton"]["nodes"][0]
    assert nose["name"] == "nose"
    assert box["x"] <= nose["x"] <= box["x"] + box["w"] and box["y"] <= nose["y"] <= box["y"] + box["h"]


def test_api_spellings_answer_the_same(client, pictures):
    assert client.get("/classes").get_json() == client.get("/api/classes").get_json()
    assert client.get("/models/pose/classes").get_json() == client.get("/models/pose/api/classes").get_json()
    _, first = infer(client, "/infer", pictures["grace_hopper"])
    _, second = infer(client, "/api/infer", pictures["grace_hopper"])
    assert first == second


def test_classes_are_unique_and_typed(client):
    classes = client.get("/classes").get_json()
    assert len({c["name"] for c in classes}) == len(classes)
    assert {"name": "person", "type": "skeleton"} in classes
    assert {"name": "face", "type": "bounding_box"} in classes


def test_jpeg_and_png_of_the_same_picture_agree(client, picture):
    _, from_png = infer(client, "/models/pose/infer", encode_png(picture("astronaut")), threshold=0.3)
    _, from_jpeg = infer(client, "/models/pose/infer", encode_jpeg(picture("astronaut")), threshold=0.3)
    png_nose, jpeg_nose = (b["results"][0]["skeleton"]["nodes"][0] for b in (from_png, from_jpeg))
    assert (png_nose["x"], png_nose["y"]) == pytest.approx((jpeg_nose["x"], jpeg_nose["y"]), abs=4)


def test_data_uri_prefix_is_tolerated(client, pictures):
    response = client.post(
        "/models/opencv-face/infer", json={"image": {"base64": "data:image/png;base64," + b64(pictures["astronaut"])}}
    )
    assert response.status_code == 200 and len(response.get_json()["results"]) == 1


# -- the Auto-Annotate box ----------------------------------------------------------------------


class FixedBox(Model):
    """Returns one box at fixed crop coordinates and remembers the crop it was given."""

    spec = ModelSpec("fixed-box", "test model", (ClassSpec("thing", "bounding_box"),), default_threshold=0.0)
    seen: list[tuple[tuple[int, ...], tuple | None]] = []

    def detect(self, image_rgb: np.ndarray, options: DetectOptions) -> list[dict]:
        FixedBox.seen.append((image_rgb.shape, options.box_xywh))
        return [bounding_box("thing", 0.9, (30, 20, 40, 50))]


@pytest.fixture()
def fixed_client(home, model_dir):
    FixedBox.seen.clear()
    registry = ModelRegistry({"fixed-box": FixedBox}, ModelFileLocator(model_dir, home / "cache"))
    return create_app(make_settings(home / "fixed", request_log_path=None), registry).test_client()


def test_box_crop_and_shift_back_are_exact(fixed_client, pictures):
    # 512x512 picture, box (100, 120, 200, 150): margin 20 x 15 -> crop x 80..320, y 105..285
    status, body = infer(
        fixed_client, "/models/fixed-box/infer", pictures["astronaut"], bbox={"x": 100, "y": 120, "w": 200, "h": 150}
    )
    assert status == 200, body
    assert FixedBox.seen == [((180, 240, 3), (20.0, 15.0, 200.0, 150.0))]
    assert body["results"][0]["bounding_box"] == {"x": 80 + 30, "y": 105 + 20, "w": 40, "h": 50}


def test_box_under_data_is_used_too(fixed_client, pictures):
    _, body = infer(
        fixed_client,
        "/models/fixed-box/infer",
        pictures["astronaut"],
        data={"bbox": {"x": 300.5, "y": 200.25, "w": 100, "h": 100}},
    )
    # margin 10 px: crop starts at floor(290.5) = 290, floor(190.25) = 190
    assert body["results"][0]["bounding_box"] == {"x": 320, "y": 210, "w": 40, "h": 50}


def test_result_outside_the_box_is_dropped(fixed_client, pictures):
    # the fixed box's centre (50, 45 in the crop) lies left of this box's start once shifted back
    _, body = infer(
        fixed_client, "/models/fixed-box/infer", pictures["astronaut"], bbox={"x": 400, "y": 400, "w": 20, "h": 20}
    )
    assert body == {"status": "succeeded", "results": []}


def test_box_partly_outside_is_clipped_and_results_clipped_to_the_image(fixed_client, pictures):
    status, body = infer(
        fixed_client, "/models/fixed-box/infer", pictures["astronaut"], bbox={"x": 470, "y": 450, "w": 100, "h": 100}
    )
    assert status == 200
    # crop x 460..512, y 440..512; thing at (490, 460) size 40x50 -> clipped to x 490..512, y 460..510
    assert body["results"][0]["bounding_box"] == {"x": 490, "y": 460, "w": 22, "h": 50}


def test_real_pose_in_a_box_matches_the_whole_image(client, pictures):
    _, whole = infer(client, "/models/pose/infer", pictures["astronaut"], threshold=0.3)
    _, boxed = infer(
        client, "/models/pose/infer", pictures["astronaut"], threshold=0.3, bbox={"x": 100, "y": 0, "w": 300, "h": 300}
    )
    whole_nose = whole["results"][0]["skeleton"]["nodes"][0]
    boxed_nose = boxed["results"][0]["skeleton"]["nodes"][0]
    assert (boxed_nose["x"], boxed_nose["y"]) == pytest.approx((whole_nose["x"], whole_nose["y"]), abs=12)


def test_real_face_outside_the_box_is_not_reported(client, pictures):
    _, body = infer(
        client, "/models/opencv-face/infer", pictures["astronaut"], bbox={"x": 0, "y": 300, "w": 200, "h": 200}
    )
    assert body["results"] == []


def test_threshold_filters(client, pictures):
    _, low = infer(client, "/models/opencv-face/infer", pictures["astronaut"], threshold=0.1)
    _, high = infer(client, "/models/opencv-face/infer", pictures["astronaut"], threshold=0.99)
    assert len(low["results"]) == 1 and high["results"] == []


# -- the class mapping -----------------------------------------------------------------------------


def test_mapping_renames_disables_and_thresholds(home, registry, pictures, v7_schema):
    client = create_app(make_settings(home / "mapping"), registry).test_client()
    config = client.get("/config").get_json()
    config["classes"] = {
        "opencv-face": {"face": {"v7_name": "Face", "enabled": True, "threshold": None}},
        "face-landmarks": {
            "lips": {"v7_name": "lips", "enabled": False, "threshold": None},
            "face_oval": {"v7_name": "face_oval", "enabled": True, "threshold": 0.99},  # seen: 0.92 here
        },
    }
    assert client.put("/config", json=config).status_code == 200
    classes = client.get("/classes").get_json()
    names = [c["name"] for c in classes]
    assert "Face" in names and "face" not in names and "lips" not in names
    _, body = infer(client, "/infer", pictures["astronaut"])
    assert_v7_answer(body, v7_schema, classes)
    result_names = {r["name"] for r in body["results"]}
    assert "Face" in result_names and "person" in result_names
    assert "lips" not in result_names and "face_oval" not in result_names


def test_invalid_mapping_is_refused_and_changes_nothing(home, registry):
    client = create_app(make_settings(home / "bad-mapping"), registry).test_client()
    before = client.get("/classes").get_json()
    bad = {"classes": {"pose": {"person": {"v7_name": "face"}}}}  # a skeleton named like the face boxes
    response = client.put("/config", json=bad)
    assert response.status_code == 400
    assert "one name, one type" in response.get_json()["error"]
    assert client.get("/classes").get_json() == before


# -- every bad input gets its JSON answer ------------------------------------------------------


@pytest.fixture(scope="module")
def image_server(pictures):
    server = PictureServer()
    server.add_bytes("/astronaut.png", pictures["astronaut"])
    server.add_bytes("/page.html", b"<html>hello</html>", content_type="text/html")
    server.add_bytes("/big.png", b"x" * 4096)
    server.add_bytes("/missing.png", b"gone", status=404)

    def slow(handler):
        time.sleep(2)
        handler.send_response(200)
        handler.end_headers()

    server.routes["/slow.png"] = slow
    yield server
    server.close()


def _limits_client(home, registry):
    settings = make_settings(home / "limits", max_download_bytes=2048, url_timeout_s=0.5, max_image_pixels=100 * 100)
    return create_app(settings, registry).test_client()


def _tiny_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


BAD_REQUESTS = [
    # (name, how to send it, expected status, words in the error)
    ("malformed JSON", dict(data="{nope", content_type="application/json"), 400, "not valid JSON"),
    ("wrong content type", dict(data="{}", content_type="text/plain"), 415, "Content-Type must be application/json"),
    ("empty body", dict(data="", content_type="application/json"), 400, "body is empty"),
    ("missing image", dict(json={"bbox": {"x": 1, "y": 1, "w": 2, "h": 2}}), 400, 'no "image"'),
    ("both url and base64", dict(json={"image": {"url": "http://a/b.png", "base64": "aGk="}}), 400, "not both"),
    ("bad base64", dict(json={"image": {"base64": "not*base64!"}}), 400, "not valid base64"),
    ("bytes that are no image", dict(json={"image": {"base64": b64(b"hello, world")}}), 400, "not an image"),
    ("image over the pixel limit", dict(json={"image": {"base64": b64(_tiny_png(101, 100))}}), 413, "over the limit"),
    ("url not http", dict(json={"image": {"url": "file:///etc/passwd"}}), 400, "must be http or https"),
    ("url unreachable", dict(json={"image": {"url": "http://127.0.0.1:9/a.png"}}), 502, "could not be fetched"),
    ("url too slow", dict(json={"image": {"url": "{server}/slow.png"}}), 504, "did not answer within"),
    ("url too big", dict(json={"image": {"url": "{server}/big.png"}}), 413, "over the 2048 byte limit"),
    ("url not found", dict(json={"image": {"url": "{server}/missing.png"}}), 502, "HTTP 404"),
    ("url returns html", dict(json={"image": {"url": "{server}/page.html"}}), 400, "not an image"),
    (
        "bbox outside the image",
        dict(json={"image": {"base64": b64(_tiny_png(50, 50))}, "bbox": {"x": 60, "y": 0, "w": 5, "h": 5}}),
        400,
        "lies outside the 50x50",
    ),
    (
        "bbox negative size",
        dict(json={"image": {"base64": "aGk="}, "bbox": {"x": 1, "y": 1, "w": -5, "h": 5}}),
        400,
        "positive size",
    ),
    ("threshold outside 0..1", dict(json={"image": {"base64": "aGk="}, "threshold": 7}), 400, "from 0 to 1"),
]


@pytest.mark.parametrize(("name", "send", "status", "words"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_input_gets_a_clear_json_answer_and_harms_nothing(
    home, registry, image_server, v7_schema, pictures, name, send, status, words
):
    client = _limits_client(home, registry)
    url = send.get("json", {}).get("image", {}).get("url", "")
    if "{server}" in url:
        send = {"json": {"image": {"url": url.replace("{server}", image_server.url)}}}
    response = client.post("/models/opencv-face/infer", **send)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert_v7_answer(body, v7_schema)
    assert body["status"] == "failed" and body["results"] == [] and words in body["error"]
    # the next good request is served as usual
    follow_up = client.post("/models/opencv-face/infer", json={"image": {"base64": b64(_tiny_png(100, 100))}})
    assert follow_up.status_code == 200 and follow_up.get_json()["status"] == "succeeded"


def test_url_image_is_fetched_and_served(client, image_server, v7_schema):
    response = client.post("/models/opencv-face/infer", json={"image": {"url": image_server.url + "/astronaut.png"}})
    assert response.status_code == 200
    body = response.get_json()
    assert_v7_answer(body, v7_schema)
    assert len(body["results"]) == 1


def test_body_over_the_limit_is_413_json(home, registry):
    client = create_app(make_settings(home / "body", max_body_bytes=1000), registry).test_client()
    response = client.post("/infer", json={"image": {"base64": "A" * 2000}})
    assert response.status_code == 413
    assert "larger than the 1000 byte limit" in response.get_json()["error"]


def test_unknown_model_is_404_json(client):
    response = client.post("/models/nope/infer", json={"image": {"base64": "aGk="}})
    assert response.status_code == 404
    assert "unknown model 'nope'" in response.get_json()["error"]
    assert client.get("/models/nope/classes").status_code == 404


def test_unavailable_model_says_which_file_from_where_and_others_keep_working(home, pictures, tmp_path):
    registry = ModelRegistry(BUILTIN_MODELS, ModelFileLocator(tmp_path / "empty", tmp_path / "cache"))
    client = create_app(make_settings(home / "offline"), registry).test_client()
    status, body = infer(client, "/models/pose/infer", pictures["astronaut"])
    assert status == 503
    assert "pose_landmarker_full.task" in body["error"] and "https://storage.googleapis.com/" in body["error"]
    status, body = infer(client, "/models/opencv-face/infer", pictures["astronaut"])
    assert status == 200 and len(body["results"]) == 1
    # the default endpoint serves what it can and says what it left out
    status, body = infer(client, "/infer", pictures["astronaut"])
    assert status == 200 and {r["name"] for r in body["results"]} == {"face"}
    assert any("face_landmarker.task" in w for w in body["warnings"])
    health = client.get("/health").get_json()
    assert health["models"]["pose"]["available"] is False and health["models"]["opencv-face"]["available"] is True


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/nope", 404), ("GET", "/infer", 405), ("DELETE", "/classes", 405)]
)
def test_unknown_routes_and_methods_are_json(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status and response.get_json()["status"] == "failed"


# -- auth -----------------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64(f"{user}:{password}".encode())}


@pytest.mark.parametrize(
    ("settings", "headers", "status", "words"),
    [
        ({}, {}, 200, None),
        ({"basic_auth": ("v7", "s3cret")}, {}, 401, "credentials are missing"),
        ({"basic_auth": ("v7", "s3cret")}, basic("v7", "wrong"), 401, "wrong user name or password"),
        ({"basic_auth": ("v7", "s3cret")}, basic("v7", "s3cret"), 200, None),
        ({"auth_header": "X-MY-AUTH", "auth_secret": "k"}, {}, 401, "header X-MY-AUTH is missing"),
        ({"auth_header": "X-MY-AUTH", "auth_secret": "k"}, {"X-MY-AUTH": "nope"}, 401, "wrong secret"),
        ({"auth_header": "X-MY-AUTH", "auth_secret": "k"}, {"X-MY-AUTH": "k"}, 200, None),
        ({"basic_auth": ("v7", "p"), "auth_header": "X-K", "auth_secret": "k"}, basic("v7", "p"), 401, "X-K"),
        (
            {"basic_auth": ("v7", "p"), "auth_header": "X-K", "auth_secret": "k"},
            {**basic("v7", "p"), "X-K": "k"},
            200,
            None,
        ),
    ],
)
def test_auth(home, registry, pictures, settings, headers, status, words):
    client = create_app(make_settings(home / "auth", **settings), registry).test_client()
    for path in ("/classes", "/models", "/requests", "/config"):
        response = client.get(path, headers=headers)
        assert response.status_code == status, path
    response = client.post(
        "/models/opencv-face/infer", json={"image": {"base64": b64(pictures["astronaut"])}}, headers=headers
    )
    assert response.status_code == status
    if words:
        assert words in response.get_json()["error"] and response.get_json()["status"] == "failed"
        if "basic_auth" in settings:
            assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get("/health").status_code == 200  # liveness stays open


# -- the requests log --------------------------------------------------------------------------


def test_requests_log_redacts_and_lists_newest_first(home, registry, pictures):
    client = create_app(make_settings(home / "log"), registry).test_client()
    client.post(
        "/models/opencv-face/infer",
        json={"image": {"base64": b64(pictures["astronaut"])}, "bbox": {"x": 1, "y": 2, "w": 300, "h": 300}},
    )
    client.post("/infer", json={"image": {"url": "https://bucket.example/a.png?X-Amz-Signature=SECRET"}})
    entries = client.get("/requests").get_json()["requests"]
    assert [e["route"] for e in entries] == ["/infer", "/models/opencv-face/infer"]
    url_entry, b64_entry = entries
    assert "SECRET" not in str(url_entry) and url_entry["request"]["image"]["url"] == "https://bucket.example/a.png?…"
    assert url_entry["image_source"] == "url bucket.example"
    assert b64_entry["request"]["image"]["base64"].endswith("base64 characters>")
    assert b64_entry["bbox"] == {"x": 1, "y": 2, "w": 300, "h": 300}
    assert b64_entry["status_code"] == 200 and b64_entry["response"]["results"][0]["name"] == "face"
    assert b64_entry["latency_ms"] > 0


def test_requests_log_can_be_off(home, registry):
    client = create_app(make_settings(home / "nolog", request_log_path=None), registry).test_client()
    response = client.get("/requests")
    assert response.status_code == 404 and "off" in response.get_json()["error"]
