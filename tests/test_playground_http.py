"""The playground's HTTP side against a real gunicorn: V7-style calls, class mapping, curl, requests log."""

from __future__ import annotations

import subprocess

import pytest
import requests

from models.samples import sample_bytes
from playground.classes import endpoint_classes, mapping_from_rows, rows_from_models, validate_rows
from playground.client import Credentials, EndpointClient, EndpointError, build_infer_request
from playground.picture_server import PictureServer
from playground.register import curl_command, infer_url
from playground.requests_view import request_rows
from tests.servers import free_port, start_api

SECRET_HEADER, SECRET = "X-MY-AUTH", "let-me-in"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = start_api(tmp_path_factory.mktemp("playground-api"), "--auth-header", SECRET_HEADER, "--auth-secret",
                       SECRET, "--allow-private-urls", workers=2)  # fmt: skip
    yield server
    server.stop()


@pytest.fixture
def client(api):
    client = EndpointClient(api.url, Credentials(header_name=SECRET_HEADER, header_secret=SECRET))
    yield client
    client.close()


@pytest.fixture(scope="module")
def astronaut_jpeg() -> bytes:
    return sample_bytes("astronaut", "jpeg")


def test_v7_style_base64_call_with_box_under_data(client, astronaut_jpeg):
    body = build_infer_request(image_bytes=astronaut_jpeg, box_xywh=(150, 30, 150, 170), threshold=0.5,
                               placement="data")  # fmt: skip
    call = client.infer(body, "opencv-face")
    assert call.ok and call.status_code == 200
    (face,) = call.body["results"]
    box = face["bounding_box"]
    assert face["label"] == "face" and 0.5 <= face["confidence"] <= 1
    assert 150 <= box["x"] <= 200 and 30 <= box["y"] <= 90 and box["w"] > 60  # the astronaut's face
    assert call.elapsed_ms > 0


def test_presigned_style_url_is_fetched_whole(client, astronaut_jpeg):
    with PictureServer() as pictures:
        url = pictures.add(astronaut_jpeg, "astronaut.jpg")
        call = client.infer(build_infer_request(image_url=url, box_xywh=(150, 30, 150, 170)), "opencv-face")
        unsigned = requests.get(url.split("?")[0], timeout=5)
    assert call.ok, call.error
    assert [r["label"] for r in call.body["results"]] == ["face"]
    assert unsigned.status_code == 403  # the signature is required, as with S3
    assert len(pictures.hits) == 2


def test_errors_are_sentences(api, client):
    assert "HTTP 401" in EndpointClient(api.url).infer({"image": {"url": "x"}}).error
    bad = client.infer({"image": {"base64": "aGVsbG8="}})
    assert bad.status_code == 400 and bad.error.startswith("HTTP 400: ") and "image" in bad.error
    assert bad.body["status"] == "failed"
    nobody = EndpointClient(f"http://127.0.0.1:{free_port()}", timeout_s=3)
    down = nobody.call("GET", "/classes")
    assert down.status_code is None and "connection refused" in down.error and "python run.py serve" in down.error
    with pytest.raises(EndpointError, match="connection refused"):
        nobody.classes()


def test_saving_the_table_changes_classes_and_results_in_every_worker(client, astronaut_jpeg):
    models = client.models()
    rows = rows_from_models(models)
    for row in rows:
        if (row["model"], row["model_class"]) == ("opencv-face", "face"):
            row["v7_name"] = "Human face"
        if row["model"] == "face-landmarks" and row["type"] == "polygon":
            row["enabled"] = False
    default_models = ["opencv-face", "face-landmarks"]
    assert validate_rows(rows, default_models, models) == []
    saved = client.save_config(mapping_from_rows(rows, default_models))
    assert saved.ok, saved.error
    for _ in range(4):  # two workers: each must see the new mapping
        assert client.classes() == [{"name": "Human face", "type": "bounding_box"},
                                    {"name": "face_landmarks", "type": "skeleton"}]  # fmt: skip
    call = client.infer(build_infer_request(image_bytes=astronaut_jpeg, box_xywh=(100, 0, 300, 300)))
    assert {r["label"] for r in call.body["results"]} == {"Human face", "face_landmarks"}
    assert [c.name for c in endpoint_classes(client.models())] == ["Human face", "face_landmarks"]

    rows[0]["v7_name"] = "face_landmarks"  # a box named like the skeleton: refused by the server too
    refused = client.save_config(mapping_from_rows(rows, default_models))
    assert refused.status_code == 400 and "one name, one type" in refused.error
    restored = client.save_config(
        mapping_from_rows(rows_from_models({"models": []}), ["opencv-face", "face-landmarks", "pose"])
    )
    assert restored.ok
    assert {c["name"] for c in client.classes()} >= {"face", "face_oval", "person"}


def test_curl_command_reproduces_a_v7_call(api, tmp_path, astronaut_jpeg):
    (tmp_path / "photo one.jpg").write_bytes(astronaut_jpeg)
    command = curl_command(infer_url(api.url, "opencv-face"), auth_header=SECRET_HEADER, box_xywh=(150, 30, 150, 170),
                           threshold=0.5, file_name="photo one.jpg")  # fmt: skip
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "BYOM_AUTH_SECRET": SECRET})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"status":"succeeded"' in done.stdout.replace(" ", "") and '"label":"face"' in done.stdout.replace(" ", "")


def test_requests_log_shows_what_was_sent_without_secrets(client, astronaut_jpeg):
    assert client.clear_requests().ok
    with PictureServer() as pictures:
        url = pictures.add(astronaut_jpeg)
        client.infer(build_infer_request(image_url=url, box_xywh=(1, 2, 300, 300), threshold=0.4))
    client.infer(build_infer_request(image_bytes=astronaut_jpeg))
    log = client.recent_requests(10)
    assert log.ok
    rows = request_rows(log.body["requests"])
    assert [r["route"] for r in rows] == ["/infer", "/infer"]
    newest, oldest = rows
    assert newest["image"] == f"base64 {len(astronaut_jpeg)} bytes" and newest["bbox"] == ""
    assert oldest["image"] == "url 127.0.0.1" and oldest["bbox"] == "1, 2, 300, 300" and oldest["status"] == 200
    text = str(log.body)
    assert "X-Amz-Signature" not in text and SECRET not in text
