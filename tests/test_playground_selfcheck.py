"""The self-check: each contract rule judged on hand-made answers, then on a real server and a broken one."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from models.samples import sample_bytes
from playground.client import Call, Credentials, EndpointClient
from playground.selfcheck import (
    FAILED,
    PASSED,
    RULE_AUTH,
    RULE_CLASSES_SHAPE,
    RULE_CLASSES_VALUES,
    RULE_CONFIDENCE,
    RULE_DEADLINE,
    RULE_GEOMETRY,
    RULE_INSIDE,
    RULE_NAMES,
    RULE_SAME_RESULTS,
    RULE_SKELETON,
    RULE_ZERO_SIZE,
    SKIPPED,
    check_classes_answer,
    check_deadline,
    check_failure_answer,
    check_results,
    result_problems,
    run_self_check,
    same_results,
)
from tests.servers import start_api

CLASSES = {"face": "bounding_box", "person": "skeleton", "lips": "polygon"}
NODES = {"person": ["nose", "left_eye"]}
WH = (100, 80)


def box(**overrides):
    return {"name": "face", "label": "face", "confidence": 0.9,
            "bounding_box": {"x": 10, "y": 10, "w": 20, "h": 20}, **overrides}  # fmt: skip


def person(nodes):
    return {"name": "person", "label": "person", "confidence": 0.9, "skeleton": {"nodes": nodes}}


def problems(result):
    return result_problems(result, CLASSES, NODES, WH)


def test_a_good_result_has_no_problem():
    assert problems(box()) == {}
    nodes = [
        {"name": "nose", "x": 1, "y": 2, "occluded": False},
        {"name": "left_eye", "x": 3, "y": 4, "occluded": True},
    ]
    assert problems(person(nodes)) == {}


@pytest.mark.parametrize(
    ("result", "rule", "text"),
    [
        (box(label="Face"), RULE_NAMES, "differs from label"),
        (box(name="cat", label="cat"), RULE_NAMES, "not a class /classes lists"),
        ({k: v for k, v in box().items() if k != "name"}, RULE_NAMES, "both required"),
        (box(confidence=1.2), RULE_CONFIDENCE, "confidence 1.2"),
        (box(confidence="0.9"), RULE_CONFIDENCE, "confidence '0.9'"),
        (box(polygon={"path": []}), RULE_GEOMETRY, "2 geometries"),
        ({"name": "face", "label": "face", "confidence": 1}, RULE_GEOMETRY, "0 geometries"),
        (box(bounding_box=None) | {"bounding_box": None, "keypoint": {"x": 1, "y": 1}}, RULE_GEOMETRY, "2 geometries"),
        ({"name": "lips", "label": "lips", "confidence": 1, "bounding_box": {"x": 1, "y": 1, "w": 2, "h": 2}},
         RULE_GEOMETRY, "/classes says polygon"),
        (box(bounding_box={"x": 1, "y": 1, "w": 0, "h": 5}), RULE_ZERO_SIZE, "w=0"),
        (box(bounding_box={"x": 90, "y": 10, "w": 20, "h": 5}), RULE_INSIDE, "outside the 100x80 image"),
        (box(bounding_box={"x": -1, "y": 10, "w": 20, "h": 5}), RULE_INSIDE, "(-1, 10)"),
        (person([{"name": "nose", "x": 1, "y": 2}]), RULE_SKELETON, "node"),
        (person([{"name": "nose", "x": -1, "y": 2, "occluded": False}]), RULE_SKELETON, "node"),
        (person([{"name": "nose", "x": 1, "y": 2, "occluded": False}]), RULE_SKELETON, "missing ['left_eye']"),
    ],
)  # fmt: skip
def test_each_rule(result, rule, text):
    found = problems(result)
    assert rule in found, found
    assert any(text in p for p in found[rule]), found[rule]


def test_classes_answer():
    checks, classes = check_classes_answer(Call("GET", "u", 200, body=[{"name": "a", "type": "polygon"}]))
    assert [c.outcome for c in checks] == [PASSED, PASSED] and classes == {"a": "polygon"}
    checks, _ = check_classes_answer(
        Call("GET", "u", 200, body=[{"name": "a", "type": "mask"}, {"name": "a", "type": "tag"}])
    )
    assert checks[1].outcome == FAILED and "'a' is listed 2 times" in checks[1].detail and "'mask'" in checks[1].detail
    checks, classes = check_classes_answer(Call("GET", "u", 200, body={"classes": []}))
    assert (checks[0].rule, checks[0].outcome, classes) == (RULE_CLASSES_SHAPE, FAILED, {})
    assert checks[1].rule == RULE_CLASSES_VALUES and checks[1].outcome == SKIPPED


def test_result_rules_are_skipped_without_results_and_list_at_most_three_problems():
    empty = Call("POST", "u", 200, body={"status": "succeeded", "results": []})
    assert {c.outcome for c in check_results([empty], CLASSES, NODES, WH)} == {SKIPPED}
    many = Call("POST", "u", 200, body={"status": "succeeded", "results": [box(confidence=2)] * 5})
    confidence = next(c for c in check_results([many], CLASSES, NODES, WH) if c.rule == RULE_CONFIDENCE)
    assert confidence.outcome == FAILED and confidence.detail.endswith("(+2 more)")


def test_failure_answers():
    good = Call("POST", "u", 400, body={"status": "failed", "results": [], "error": "no image"})
    assert check_failure_answer("x", good).outcome == PASSED
    html = Call("POST", "u", 500, text="<html>", content_type="text/html")
    assert "non-JSON" in check_failure_answer("x", html).detail
    wrong_code = Call("POST", "u", 500, body={"status": "failed", "results": []})
    assert "HTTP 500 (expected 400..499)" == check_failure_answer("x", wrong_code).detail
    no_status = Call("POST", "u", 400, body={"error": "x"})
    assert check_failure_answer("x", no_status).outcome == FAILED


def test_deadline_and_same_results():
    slow = Call("POST", "u", 200, elapsed_ms=31_000)
    assert check_deadline([slow]).outcome == FAILED and check_deadline([slow]).rule == RULE_DEADLINE
    a = Call("POST", "u", 200, body={"status": "succeeded", "results": [box()]})
    b = Call(
        "POST",
        "u",
        200,
        body={"status": "succeeded", "results": [box(bounding_box={"x": 10.5, "y": 10, "w": 20, "h": 20})]},
    )
    c = Call(
        "POST",
        "u",
        200,
        body={"status": "succeeded", "results": [box(bounding_box={"x": 15, "y": 10, "w": 20, "h": 20})]},
    )
    assert same_results(a, b).outcome == PASSED
    assert same_results(a, c).outcome == FAILED and same_results(a, c).rule == RULE_SAME_RESULTS


# -- against real endpoints ---------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = start_api(
        tmp_path_factory.mktemp("selfcheck-api"), "--basic-auth", "v7:pw", "--allow-private-urls", workers=1
    )
    yield server
    server.stop()


def test_our_server_passes_every_rule(api, picture):
    client = EndpointClient(api.url, Credentials(basic=("v7", "pw")))
    models = client.models()
    nodes = {c["name"]: c["skeleton"]["nodes"] for m in models["models"] for c in m["classes"] if "skeleton" in c}
    checks = run_self_check(
        client,
        picture_bytes=sample_bytes("astronaut", "jpeg"),
        resolution_wh=(512, 512),
        box_xywh=(100, 0, 300, 320),
        threshold=0.5,
        skeleton_nodes=nodes,
    )
    assert [c for c in checks if c.outcome != PASSED] == []
    assert len(checks) == 18
    results_rule = next(c for c in checks if c.rule == RULE_NAMES)
    assert int(results_rule.detail.split()[0]) >= 10  # faces, face parts and a person, in 4 answers


def test_wrong_credentials_are_reported_not_raised(api):
    client = EndpointClient(api.url, Credentials(basic=("v7", "wrong")))
    checks = run_self_check(
        client, picture_bytes=sample_bytes("astronaut", "jpeg"), resolution_wh=(512, 512), box_xywh=(0, 0, 512, 512)
    )
    classes_check = next(c for c in checks if c.rule == RULE_CLASSES_SHAPE)
    assert classes_check.outcome == FAILED and "HTTP 401" in classes_check.detail


class BrokenEndpoint(BaseHTTPRequestHandler):
    """Breaks the contract on purpose: bad results, HTML errors, no auth."""

    def do_GET(self):  # noqa: N802
        self._send(200, json.dumps([{"name": "face", "type": "bounding_box"}]).encode(), "application/json")

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            image = json.loads(body).get("image", {})
        except ValueError:
            image = {}
        if not image.get("base64", "").startswith("/9j/"):  # not our JPEG: crash like a naive server
            self._send(500, b"<html><body>Internal Server Error</body></html>", "text/html")
            return
        results = [
            {"name": "face", "label": "face", "confidence": 97, "bounding_box": {"x": 600, "y": 0, "w": 0, "h": 9}},
            {"name": "face", "label": "face", "confidence": 0.5, "bounding_box": {"x": 1, "y": 1, "w": 9, "h": 9},
             "polygon": {"path": [{"x": 1, "y": 1}, {"x": 2, "y": 2}, {"x": 1, "y": 3}]}},
        ]  # fmt: skip
        self._send(200, json.dumps({"status": "succeeded", "results": results}).encode(), "application/json")

    def _send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_broken_endpoint_fails_the_rules_it_breaks():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BrokenEndpoint)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = EndpointClient(f"http://127.0.0.1:{httpd.server_address[1]}")
        checks = run_self_check(
            client,
            picture_bytes=sample_bytes("astronaut", "jpeg"),
            resolution_wh=(512, 512),
            box_xywh=(0, 0, 512, 512),
            serve_url=False,
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    outcome = {c.rule: c.outcome for c in checks}
    assert outcome[RULE_CONFIDENCE] == FAILED
    assert outcome[RULE_GEOMETRY] == FAILED
    assert outcome[RULE_ZERO_SIZE] == FAILED
    assert outcome[RULE_INSIDE] == FAILED
    assert outcome[RULE_NAMES] == PASSED
    failures = [c for c in checks if "JSON failure" in c.rule]
    assert len(failures) == 3 and all(c.outcome == FAILED and "non-JSON" in c.detail for c in failures)
    assert outcome[RULE_AUTH] == SKIPPED and outcome[RULE_SAME_RESULTS] == SKIPPED
