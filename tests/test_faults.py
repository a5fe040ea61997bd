"""Image servers that misbehave: each gets a clear JSON error in bounded time, and the API keeps serving.

A real gunicorn (2 workers, the default one request at a time each) fetches image.url from a loopback
picture server that hangs, drips bytes, lies about Content-Length, redirects to private addresses,
sends web pages or endless bodies. The download deadline is 2 s here (--url-timeout 2).
"""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace

import pytest
import requests

from models.samples import encode_jpeg
from tests.contract_checks import assert_v7_answer
from tests.servers import PictureServer, start_api

URL_TIMEOUT_S = 2
MAX_DOWNLOAD_BYTES = 3_000_000
#: Deadline plus generous slack for a loaded CI machine: "bounded", not a speed measurement.
BOUND_S = URL_TIMEOUT_S + 6


@pytest.fixture(scope="module")
def jpeg(picture) -> bytes:
    return encode_jpeg(picture("astronaut"), quality=90)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = start_api(
        tmp_path_factory.mktemp("faults"),
        "--allow-url-network", "127.0.0.1/32", "--url-timeout", str(URL_TIMEOUT_S),
        env={"BYOM_MAX_DOWNLOAD_BYTES": str(MAX_DOWNLOAD_BYTES), "BYOM_PRELOAD_MODELS": "0"},
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bad_server(jpeg):
    server = PictureServer()
    release = threading.Event()
    sent: dict[str, int] = {}

    def head(handler: BaseHTTPRequestHandler, status: int = 200, length: int | None = None, **headers) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", headers.pop("content_type", "image/jpeg"))
        if length is not None:
            handler.send_header("Content-Length", str(length))
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()

    def hang(handler):
        release.wait(60)

    def hang_after_headers(handler):
        head(handler, length=len(jpeg))
        handler.wfile.flush()
        release.wait(60)

    def drip(length: int | None):
        def route(handler):
            head(handler, length=length)
            for byte in jpeg:
                if release.wait(0.1):
                    return
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()

        return route

    def short_body(handler):
        head(handler, length=len(jpeg))
        handler.wfile.write(jpeg[:1000])
        handler.close_connection = True

    def long_body(handler):
        head(handler, length=len(jpeg) // 2)
        handler.wfile.write(jpeg)

    def endless(handler):
        head(handler)
        chunk = b"\xff" * 65536
        sent["endless"] = 0
        try:
            while not release.is_set() and sent["endless"] < 200_000_000:
                handler.wfile.write(chunk)
                sent["endless"] += len(chunk)
        except OSError:
            pass

    def redirect(location: str):
        return lambda handler: head(handler, status=302, length=0, Location=location)

    port = server.httpd.server_address[1]
    server.routes.update(
        {
            "/hang": hang,
            "/hang-after-headers": hang_after_headers,
            "/drip": drip(len(jpeg)),
            "/drip-no-length": drip(None),
            "/short-body": short_body,
            "/long-body": long_body,
            "/endless": endless,
            "/to-private": redirect(f"http://127.0.0.2:{port}/ok.jpg"),
            "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/iam/"),
            "/loop": redirect("/loop"),
        }
    )
    server.add_bytes("/ok.jpg", jpeg, "image/jpeg")
    server.add_bytes("/page.html", b"<html><body>Please log in</body></html>", "text/html; charset=utf-8")
    server.routes["/huge-declared"] = lambda handler: head(handler, length=10**10)
    server.add_bytes("/error", b'{"message": "internal"}', "application/json", status=500)
    yield SimpleNamespace(url=server.url, sent=sent)
    release.set()
    server.close()


def post_url(api, url: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(f"{api.url}/models/opencv-face/infer", json={"image": {"url": url}}, timeout=60)
    return response, time.monotonic() - started


def assert_failed(response: requests.Response, status: int, words: str, v7_schema: dict) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert_v7_answer(body, v7_schema)
    assert body["status"] == "failed" and body["results"] == []
    assert words in body["error"], body["error"]


SLOW_FAULTS = [
    ("/hang", "did not answer within 2 s"),
    ("/hang-after-headers", "within 2 s"),
    ("/drip", "within 2 s"),
    ("/drip-no-length", "did not finish sending the picture within 2 s"),
]


@pytest.mark.parametrize(("path", "words"), SLOW_FAULTS, ids=[f[0] for f in SLOW_FAULTS])
def test_slow_image_servers_time_out_while_others_are_served(api, bad_server, jpeg, v7_schema, path, words):
    outcome: dict = {}

    def send_slow() -> None:
        outcome["response"], outcome["seconds"] = post_url(api, bad_server.url + path)

    slow = threading.Thread(target=send_slow)
    slow.start()
    time.sleep(0.3)  # the slow request is now holding one worker
    good = requests.post(f"{api.url}/models/opencv-face/infer",
                         json={"image": {"base64": base64.b64encode(jpeg).decode()}}, timeout=60)  # fmt: skip
    assert slow.is_alive(), "the good request should have been answered while the slow one was still waiting"
    assert good.status_code == 200 and len(good.json()["results"]) == 1
    slow.join(BOUND_S + 5)
    assert_failed(outcome["response"], 504, words, v7_schema)
    assert URL_TIMEOUT_S - 0.5 <= outcome["seconds"] <= BOUND_S


FAST_FAULTS = [
    ("/short-body", 502, "broke off before the end"),
    ("/long-body", 400, "could not be decoded"),
    ("/page.html", 400, "web page (text/html), not an image"),
    ("/to-private", 400, "non-public address (127.0.0.2)"),
    ("/to-metadata", 400, "non-public address (169.254.169.254)"),
    ("/loop", 502, "redirected more than 3 times"),
    ("/huge-declared", 413, "10000000000 bytes, over the 3000000 byte limit"),
    ("/endless", 413, "more than the 3000000 byte limit"),
    ("/error", 502, "answered HTTP 500"),
    ("/missing.jpg", 502, "answered HTTP 404"),
]


@pytest.mark.parametrize(("path", "status", "words"), FAST_FAULTS, ids=[f[0] for f in FAST_FAULTS])
def test_lying_and_wrong_image_servers_get_clear_errors(api, bad_server, v7_schema, path, status, words):
    response, seconds = post_url(api, bad_server.url + path)
    assert_failed(response, status, words, v7_schema)
    assert seconds <= BOUND_S


def test_byte_limit_stops_the_download_early(api, bad_server):
    """The limit is enforced while streaming: the download stops near the limit, not at the end."""
    response, _ = post_url(api, bad_server.url + "/endless")
    assert response.status_code == 413
    time.sleep(0.5)
    # What the picture server got written before the API hung up: the limit plus socket buffers.
    assert bad_server.sent["endless"] < 40_000_000


def failures_by_reason(api) -> dict[str, float]:
    """byom_request_failures_total summed over routes, from GET /metrics (all workers)."""
    counts: dict[str, float] = {}
    for line in requests.get(f"{api.url}/metrics", timeout=10).text.splitlines():
        if line.startswith("byom_request_failures_total{"):
            labels, value = line.rsplit(" ", 1)
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = counts.get(reason, 0) + float(value)
    return counts


def test_failures_are_counted_by_reason_and_a_good_url_still_works(api, bad_server):
    before = failures_by_reason(api)
    for path in ("/to-private", "/to-metadata", "/huge-declared", "/page.html", "/loop"):
        post_url(api, bad_server.url + path)
    after = failures_by_reason(api)
    added = {reason: after[reason] - before.get(reason, 0) for reason in after if after[reason] != before.get(reason)}
    assert added == {"private_url": 2, "too_large": 1, "url_not_image": 1, "url_redirects": 1}
    response, _ = post_url(api, bad_server.url + "/ok.jpg")
    assert response.status_code == 200 and len(response.json()["results"]) == 1
