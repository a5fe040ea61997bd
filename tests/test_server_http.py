"""The API as V7 meets it: real HTTP to a real gunicorn with two worker processes."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from models.samples import encode_png
from tests.contract_checks import assert_v7_answer
from tests.servers import PictureServer, start_api


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = start_api(tmp_path_factory.mktemp("api"), "--allow-private-urls")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def astronaut_png(picture) -> bytes:
    return encode_png(picture("astronaut"))


@pytest.fixture(scope="module")
def image_server(astronaut_png):
    server = PictureServer()
    server.add_bytes("/astronaut.png", astronaut_png)
    yield server
    server.close()


def test_base64_and_url_requests_give_the_same_schema_valid_answer(api, astronaut_png, image_server, v7_schema):
    classes = requests.get(f"{api.url}/classes", timeout=10).json()
    by_base64 = requests.post(
        f"{api.url}/infer", json={"image": {"base64": base64.b64encode(astronaut_png).decode()}}, timeout=30
    )
    by_url = requests.post(
        f"{api.url}/infer", json={"image": {"url": image_server.url + "/astronaut.png?sig=x"}}, timeout=30
    )
    for response in (by_base64, by_url):
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json"
        assert_v7_answer(response.json(), v7_schema, classes, (512, 512))
    assert by_base64.json() == by_url.json()
    assert {"face", "person", "face_oval"} <= {r["name"] for r in by_url.json()["results"]}


def test_errors_are_json_through_gunicorn(api, v7_schema):
    response = requests.post(f"{api.url}/infer", data="{oops", headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400 and response.headers["Content-Type"] == "application/json"
    assert_v7_answer(response.json(), v7_schema)
    assert requests.get(f"{api.url}/nothing", timeout=10).json()["status"] == "failed"


def test_mapping_change_reaches_every_worker_without_restart(api):
    config = requests.get(f"{api.url}/config", timeout=10).json()
    config["classes"] = {"opencv-face": {"face": {"v7_name": "face_box", "enabled": True, "threshold": None}}}
    assert requests.put(f"{api.url}/config", json=config, timeout=10).status_code == 200
    try:
        seen = set()
        with requests.Session() as one, requests.Session() as other:  # two connections: both workers answer
            for session in [one, other] * 10:
                names = [c["name"] for c in session.get(f"{api.url}/classes", timeout=10).json()]
                seen.add("face_box" in names and "face" not in names)
        assert seen == {True}
    finally:
        config["classes"] = {}
        requests.put(f"{api.url}/config", json=config, timeout=10)


def test_requests_log_is_shared_by_all_workers(api, astronaut_png):
    requests.delete(f"{api.url}/requests", timeout=10)
    body = {
        "image": {"base64": base64.b64encode(astronaut_png).decode()},
        "bbox": {"x": 150, "y": 40, "w": 150, "h": 150},
    }
    sessions = [requests.Session() for _ in range(4)]
    for i, session in enumerate(sessions * 2):
        session.post(f"{api.url}/models/opencv-face/infer", json={**body, "n": i}, timeout=30)
    entries = requests.get(f"{api.url}/requests?limit=100", timeout=10).json()["requests"]
    assert [e["request"]["n"] for e in entries] == list(range(7, -1, -1))  # all 8, newest first
    assert all(e["status_code"] == 200 and e["response"]["results"][0]["name"] == "face" for e in entries)
    assert all(len(json.dumps(e)) < 5000 for e in entries)  # no full base64 stored


def test_auth_and_no_request_log_options(tmp_path, astronaut_png):
    server = start_api(
        tmp_path,
        "--basic-auth",
        "v7:pw",
        "--auth-header",
        "X-MY-AUTH",
        "--auth-secret",
        "k",
        "--no-request-log",
        workers=1,
    )
    try:
        body = {"image": {"base64": base64.b64encode(astronaut_png).decode()}}
        url = f"{server.url}/models/opencv-face/infer"
        missing = requests.post(url, json=body, timeout=30)
        assert missing.status_code == 401 and missing.json()["status"] == "failed"
        wrong = requests.post(url, json=body, auth=("v7", "nope"), headers={"X-MY-AUTH": "k"}, timeout=30)
        assert wrong.status_code == 401
        ok = requests.post(url, json=body, auth=("v7", "pw"), headers={"X-MY-AUTH": "k"}, timeout=30)
        assert ok.status_code == 200 and len(ok.json()["results"]) == 1
        log = requests.get(f"{server.url}/requests", auth=("v7", "pw"), headers={"X-MY-AUTH": "k"}, timeout=10)
        assert log.status_code == 404
        assert requests.get(f"{server.url}/health", timeout=10).json()["healthy"] is True
        assert "pw" not in server.log() and "X-MY-AUTH: k" not in server.log()
    finally:
        server.stop()


def test_auth_from_the_environment(tmp_path):
    server = start_api(tmp_path, env={"BYOM_AUTH_HEADER": "X-Token", "BYOM_AUTH_SECRET": "abc"}, workers=1)
    try:
        assert requests.get(f"{server.url}/classes", timeout=10).status_code == 401
        assert requests.get(f"{server.url}/classes", headers={"X-Token": "abc"}, timeout=10).status_code == 200
    finally:
        server.stop()
