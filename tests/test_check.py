"""`python run.py check` over real HTTP: against our own API under gunicorn, and against small
Flask endpoints that each break one rule of V7's contract.

Every broken endpoint is the good one (`endpoint_app()`) with one thing changed, in a line or two;
the test asserts that exactly that rule fails (nothing else even warns) and that the evidence names
the fault. The good endpoint itself must pass every rule.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask, Response, jsonify, request
from PIL import Image, ImageOps
from werkzeug.serving import WSGIRequestHandler, make_server

import run
from tests.servers import PROJECT_DIR, start_api

GOOD_CLASSES = [{"name": "face", "type": "bounding_box"}, {"name": "person", "type": "skeleton"}]
NODES = ("nose", "left_shoulder", "right_shoulder")


def good_results(width: int, height: int) -> list[dict[str, Any]]:
    """A face box and a three-node person, inside any picture."""
    nodes = [
        {"name": name, "x": width * (0.4 + 0.1 * i), "y": height * 0.5, "occluded": False}
        for i, name in enumerate(NODES)
    ]
    return [
        {
            "name": "face",
            "label": "face",
            "confidence": 0.9,
            "bounding_box": {"x": width * 0.4, "y": height * 0.1, "w": width * 0.2, "h": height * 0.3},
        },
        {"name": "person", "label": "person", "confidence": 0.8, "skeleton": {"nodes": nodes}},
    ]


def changed(index: int, change: Callable[[dict, int, int], dict]) -> Callable[[int, int], list]:
    """good_results with result `index` replaced by change(result, width, height)."""

    def results(width: int, height: int) -> list[dict[str, Any]]:
        found = good_results(width, height)
        found[index] = change(found[index], width, height)
        return found

    return results


def failed(message: str, code: int) -> tuple[Response, int]:
    return jsonify({"status": "failed", "results": [], "error": message}), code


def endpoint_app(
    *,
    classes: Any = GOOD_CLASSES,
    results: Callable[[int, int], list] = good_results,
    answer: Callable[[list], Any] | None = None,
    on_bad_picture: Callable[[str], Any] = lambda message: failed(message, 400),
    accepts: tuple[str, ...] = ("base64", "url"),
    secret: str | None = None,
    delay_s: float = 0.0,
) -> Flask:
    """A small BYOM endpoint that keeps the contract unless told otherwise (serves /classes and /infer)."""
    app = Flask("endpoint_under_test")

    @app.get("/classes")
    def get_classes() -> Any:
        if secret is not None and request.headers.get("X-Key") != secret:
            return failed("wrong or missing X-Key", 401)
        return jsonify(classes)

    @app.post("/infer")
    def infer() -> Any:
        if secret is not None and request.headers.get("X-Key") != secret:
            return failed("wrong or missing X-Key", 401)
        image = (request.get_json(silent=True) or {}).get("image") or {}
        if not isinstance(image, dict) or not ({"base64", "url"} & set(image)):
            return on_bad_picture("send image.base64 or image.url")
        mode = "base64" if "base64" in image else "url"
        if mode not in accepts:
            return failed(f"this endpoint cannot take image.{mode}", 400)
        try:
            data = base64.b64decode(image["base64"]) if mode == "base64" else _fetch(image["url"])
            width, height = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).size
        except Exception as exc:
            return on_bad_picture(f"cannot read the picture: {exc}")
        time.sleep(delay_s)
        found = results(width, height)
        return answer(found) if answer else jsonify({"status": "succeeded", "results": found})

    return app


def _fetch(url: str) -> bytes:
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    return response.content


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


class EndpointServer:
    """A Flask app on 127.0.0.1, on a free port, in a thread (werkzeug's threaded server)."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/infer"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def check(url: str, *options: str, capsys) -> tuple[int, dict[str, Any]]:
    """`run.py check URL OPTIONS --json` in this process; (exit code, report)."""
    code = run.main(["check", url, *options, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["exit_code"] == code
    return code, report


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {rule["rule"]: rule["status"] for rule in report["rules"]}


def evidence(report: dict[str, Any], rule: str) -> str:
    return "\n".join(next(r for r in report["rules"] if r["rule"] == rule)["evidence"])


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """serve(**endpoint_app options) -> the inference URL of that endpoint."""
    servers: list[EndpointServer] = []

    def start(**options: Any) -> str:
        servers.append(EndpointServer(endpoint_app(**options)))
        return servers[-1].url

    yield start
    for server in servers:
        server.close()


# -- the good endpoint, and one broken endpoint per rule ----------------------------------------------


def test_the_good_endpoint_passes_every_rule(serve, capsys):
    url = serve(secret="s3cret")
    code, report = check(
        url, "--auth-header", "X-Key", "--auth-secret", "s3cret", "--bbox", "0,0,2000,2000", capsys=capsys
    )
    assert code == 0
    assert set(statuses(report).values()) == {"passed"}, statuses(report)
    assert report["classes"] == {"face": "bounding_box", "person": "skeleton"}
    assert report["classes_url"] == url.replace("/infer", "/classes")
    assert evidence(report, "skeleton-nodes") == "6 skeletons: person (3 nodes)"  # 3 pictures x 2 ways
    assert evidence(report, "auth") == "3 requests without valid credentials rejected"
    inferences = [r for r in report["requests"] if " as " in r["request"]]
    assert len(inferences) == 6 and all(r["status_code"] == 200 and r["results"] == 2 for r in inferences)


def _drop(key: str) -> Callable[[list], Any]:
    return lambda found: jsonify({key: found} if key == "status" else {"status": "succeeded", "results": found})


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


BROKEN: list[tuple[str, dict[str, Any], tuple[str, ...], str]] = [
    # (rule that must fail, how the endpoint is broken, checker options, evidence that must appear)
    (
        "json",
        dict(answer=lambda found: Response("found 2 things", content_type="text/plain")),
        (),
        "Content-Type text/plain, body is not JSON: found 2 things",
    ),
    ("classes", dict(classes={"classes": GOOD_CLASSES}), (), "expected a JSON list of {name, type}"),
    ("classes", dict(classes=[{"name": "face", "type": "box"}, GOOD_CLASSES[1]]), (), "has type 'box'"),
    ("status", dict(answer=lambda found: jsonify({"results": found})), (), "no 'status' key (keys: results)"),
    ("accepts-base64", dict(accepts=("url",)), (), "status 'failed': this endpoint cannot take image.base64"),
    ("accepts-url", dict(accepts=("base64",)), (), "status 'failed': this endpoint cannot take image.url"),
    (
        "result-fields",
        dict(results=changed(0, lambda r, w, h: {**r, "confidence": 1.5})),
        (),
        "confidence must be a number from 0 to 1, got 1.5",
    ),
    (
        "result-fields",
        dict(results=changed(0, lambda r, w, h: _without(r, "label"))),
        (),
        "needs a non-empty string 'label'",
    ),
    (
        "one-geometry",
        dict(results=changed(0, lambda r, w, h: {**r, "keypoint": {"x": 1, "y": 1}})),
        (),
        "has 2 geometries (bounding_box, keypoint); V7 needs one",
    ),
    (
        "geometry-shape",
        dict(
            results=changed(
                1,
                lambda r, w, h: {**r, "skeleton": {"nodes": [_without(n, "occluded") for n in r["skeleton"]["nodes"]]}},
            )
        ),
        (),
        "needs 'occluded': true or false",
    ),
    (
        "class-names",
        dict(results=changed(0, lambda r, w, h: {**r, "name": "Face", "label": "Face"})),
        (),
        "class 'Face' is not in GET /classes (face, person): V7 drops these results",
    ),
    (
        "class-types",
        dict(
            results=changed(
                1, lambda r, w, h: {**_without(r, "skeleton"), "bounding_box": {"x": 1, "y": 1, "w": 5, "h": 5}}
            )
        ),
        (),
        "GET /classes declares 'person' as skeleton, but the result carries a bounding_box",
    ),
    (
        "inside-image",
        dict(results=changed(0, lambda r, w, h: {**r, "bounding_box": {"x": w - 10, "y": 0, "w": 20, "h": 20}})),
        (),
        "bounding_box bottom-right corner at (522, 20) lies outside the 512x512 image",
    ),
    (
        "no-zero-size",
        dict(results=changed(0, lambda r, w, h: {**r, "bounding_box": {**r["bounding_box"], "w": 0}})),
        (),
        "bounding_box of zero size (w=0",
    ),
    (
        "skeleton-nodes",
        dict(
            results=changed(
                1,
                lambda r, w, h: {
                    **r,
                    "skeleton": {"nodes": [{**n, "name": f"{n['name']}_{w}"} for n in r["skeleton"]["nodes"]]},
                },
            )
        ),
        (),
        "nodes differ from those of POST /infer astronaut.jpg as base64: results[1] (person)",
    ),
    (
        "skeleton-nodes",
        dict(
            results=changed(
                1, lambda r, w, h: {**r, "skeleton": {"nodes": [_without(n, "name") for n in r["skeleton"]["nodes"]]}}
            )
        ),
        (),
        "have no 'name'; V7 matches nodes by name",
    ),
    (
        "latency",
        dict(delay_s=0.3),
        ("--latency-warn", "0.1", "--latency-limit", "0.25", "--send", "base64"),
        "at or over the 0.25 s limit",
    ),
    (
        "failure-json",
        dict(on_bad_picture=lambda message: Response("<h1>500 Internal Server Error</h1>", 500)),
        (),
        "HTTP 500, body is not JSON: <h1>500 Internal Server Error</h1>",
    ),
    (
        "auth",
        dict(),
        ("--auth-header", "X-Key", "--auth-secret", "s3cret"),
        "POST /infer without credentials: answered HTTP 200 instead of rejecting it (401)",
    ),
]


@pytest.mark.parametrize(
    "rule, breakage, options, expected",
    BROKEN,
    ids=[f"{rule}-{i}" for i, (rule, *_) in enumerate(BROKEN)],
)
def test_a_broken_endpoint_fails_exactly_its_rule(serve, capsys, rule, breakage, options, expected):
    code, report = check(serve(**breakage), *options, capsys=capsys)
    assert code == 1
    flagged = {name for name, status in statuses(report).items() if status in ("failed", "warning")}
    assert flagged == {rule}, {name: evidence(report, name) for name in flagged}
    assert expected in evidence(report, rule)


def test_slow_answers_and_results_outside_the_bbox_only_warn(serve, capsys):
    url = serve(delay_s=0.15)
    code, report = check(url, "--latency-warn", "0.1", "--bbox", "0,0,100,100", "--send", "base64", capsys=capsys)
    assert code == 0
    assert {k: v for k, v in statuses(report).items() if v != "passed"} == {
        "latency": "warning",
        "within-bbox": "warning",
        "accepts-url": "skipped",
        "auth": "skipped",
    }
    assert "(warning from 0.1 s)" in evidence(report, "latency")
    assert "lies outside the bbox (0, 0, 100, 100)" in evidence(report, "within-bbox")
    assert run.main(["check", url, "--latency-warn", "0.1", "--send", "base64", "--strict"]) == 1
    capsys.readouterr()


def test_an_endpoint_that_is_not_there_fails_reachable_only(capsys):
    from tests.servers import free_port

    code, report = check(f"http://127.0.0.1:{free_port()}/infer", capsys=capsys)
    assert code == 1
    assert statuses(report)["reachable"] == "failed"
    assert set(list(statuses(report).values())[1:]) == {"skipped"}
    assert "Connection refused" in evidence(report, "reachable")


def test_bad_options_exit_2(capsys):
    assert run.main(["check", "ftp://example.com/infer"]) == 2
    assert run.main(["check", "http://127.0.0.1:9/infer", "--bbox", "1,2,3"]) == 2
    assert run.main(["check", "http://127.0.0.1:9/infer", "--image", "/no/such/picture.jpg"]) == 2
    assert run.main(["check", "http://127.0.0.1:9/infer", "--auth-header", "X-Key"]) == 2
    err = capsys.readouterr().err
    assert "URL must be an http:// or https:// address" in err
    assert "--bbox must be X,Y,W,H" in err
    assert "cannot read /no/such/picture.jpg" in err
    assert "--auth-header needs --auth-secret" in err


def test_classes_url_candidates():
    from tools.check import classes_url_candidates, infer_url_of

    assert infer_url_of("http://h:8000") == "http://h:8000/infer"
    assert classes_url_candidates("http://h/infer") == ["http://h/classes", "http://h/api/classes"]
    assert classes_url_candidates("http://h/api/infer") == [
        "http://h/api/classes",
        "http://h/api/api/classes",
        "http://h/classes",
    ]
    assert classes_url_candidates("http://h/models/pose/infer?x=1")[0] == "http://h/models/pose/classes"


# -- our own API under gunicorn ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = start_api(tmp_path_factory.mktemp("api"), "--allow-private-urls")
    yield server
    server.stop()


def test_our_api_passes_every_rule_through_the_command_line(api):
    """The real CLI in a subprocess, on the default endpoint: every rule passes, with real results."""
    completed = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "run.py"), "check", f"{api.url}/infer", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_DIR,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(completed.stdout)
    assert {k: v for k, v in statuses(report).items() if v != "passed"} == {"within-bbox": "skipped", "auth": "skipped"}
    assert report["classes"] == {c["name"]: c["type"] for c in requests.get(f"{api.url}/classes").json()}
    counts = {r["request"]: r["results"] for r in report["requests"]}
    # a face and a person on the astronaut, however it is sent; nothing found on the coffee cup
    assert counts["POST /infer astronaut.jpg as base64"] == counts["POST /infer astronaut.jpg as url"] >= 2
    assert counts["POST /infer coffee.jpg as base64"] == counts["POST /infer coffee.jpg as url"] == 0
    assert "person (33 nodes)" in evidence(report, "skeleton-nodes")


def test_our_single_model_route_with_a_bbox_and_a_rotated_picture_of_the_user(api, capsys, tmp_path, picture):
    """--image with EXIF orientation 6: coordinates must fit the picture as shown (height x width swapped)."""
    stored = Image.fromarray(picture("astronaut")[:, :400]).transpose(Image.Transpose.ROTATE_90)  # 512 wide, 400 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to show": shown 400 wide, 512 high, upright
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif)
    code, report = check(
        f"{api.url}/models/pose/api/infer", "--image", str(path), "--bbox", "0,0,400,512", capsys=capsys
    )
    assert code == 0, statuses(report)
    assert report["pictures"] == [{"name": "rotated.jpg", "width": 400, "height": 512}]
    assert report["classes_url"] == f"{api.url}/models/pose/api/classes"
    assert evidence(report, "skeleton-nodes") == "2 skeletons: person (33 nodes)"
    assert statuses(report)["inside-image"] == "passed"


@pytest.fixture(scope="module")
def api_with_auth(tmp_path_factory):
    """Our API with a header secret and without --allow-private-urls."""
    server = start_api(
        tmp_path_factory.mktemp("api-auth"), "--auth-header", "X-Key", "--auth-secret", "s3cret", workers=1
    )
    yield server
    server.stop()


def test_our_api_refusing_local_urls_fails_accepts_url_with_its_own_error_text(api_with_auth, capsys):
    code, report = check(
        f"{api_with_auth.url}/infer", "--auth-header", "X-Key", "--auth-secret", "s3cret", capsys=capsys
    )
    assert code == 1
    assert {k for k, v in statuses(report).items() if v != "passed"} == {"accepts-url", "within-bbox"}
    text = evidence(report, "accepts-url")
    assert "POST /infer astronaut.jpg as url: HTTP 400, status 'failed': image.url host '127.0.0.1'" in text
    assert "non-public address" in text  # the server's own words
    assert "serve --allow-private-urls" in text  # and the checker's hint
    assert evidence(report, "auth") == "3 requests without valid credentials rejected"


def test_our_api_without_credentials_says_so(api_with_auth, capsys):
    code, report = check(f"{api_with_auth.url}/infer", "--send", "base64", capsys=capsys)
    assert code == 1
    assert {k for k, v in statuses(report).items() if v == "failed"} == {"classes", "accepts-base64"}
    assert "HTTP 401" in evidence(report, "classes")
    assert "hint: the endpoint wants credentials" in evidence(report, "accepts-base64")


def test_the_text_report(serve, capsys):
    url = serve(results=changed(0, lambda r, w, h: {**r, "confidence": 1.5}))
    assert run.main(["check", url, "--send", "base64"]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"Checking {url} against V7's BYOM contract\n")
    assert (
        "FAIL  result-fields   every result has name, label (equal) and confidence from 0 to 1\n"
        "      POST /infer astronaut.jpg as base64: results[0] (face): confidence must be a number from 0 to 1, "
        "got 1.5\n" in out
    )
    assert "PASS  class-names" in out and "SKIP  accepts-url" in out
    assert out.rstrip().endswith("the endpoint does not meet the contract (exit 1)")


def test_the_checker_imports_no_model_code():
    """The checker is an HTTP client: its modules, and its built-in pictures, load no model code."""
    code = (
        "import sys, tools.check as c; c.load_pictures(None); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mediapipe', 'cv2', 'server') "
        "or m in ('models.driver', 'models.registry', 'models.base')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_DIR, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
