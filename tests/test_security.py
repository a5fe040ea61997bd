"""The fence around image.url (SSRF), decoding limits, and what the running server guards and never logs.

fetch_url is tested in-process against real loopback servers (HTTP and HTTPS); the rest through a real
gunicorn started with auth and the default policy (private addresses refused).
"""

from __future__ import annotations

import base64
import io
import socket
import ssl
import struct
import subprocess
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from models.samples import encode_jpeg, encode_png
from server.cli import warn_if_open
from server.contract import ApiError
from server.images import AddressPolicy, decode_image, fetch_url, is_public_address
from tests.servers import PictureServer, start_api

USER, PASSWORD = "v7", "pw-Kx81-never-logged"
SECRET_HEADER, SECRET = "X-MY-AUTH", "secret-Qz9-never-logged"
AUTH = {"auth": (USER, PASSWORD), "headers": {SECRET_HEADER: SECRET}}


def fetch(url: str, **overrides) -> bytes:
    options = dict(max_bytes=5_000_000, timeout_s=5.0, max_redirects=3, allow_private=False)
    return fetch_url(url, **{**options, **overrides})


def api_error(url: str, **overrides) -> ApiError:
    with pytest.raises(ApiError) as caught:
        fetch(url, **overrides)
    return caught.value


def redirect(location: str):
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


@pytest.fixture(scope="module")
def jpeg(picture) -> bytes:
    return encode_jpeg(picture("astronaut"), quality=90)


@pytest.fixture()
def pictures(jpeg):
    """A loopback picture server, fresh per test so that `hits` tells what this test reached."""
    server = PictureServer()
    server.add_bytes("/a.jpg", jpeg, "image/jpeg")
    yield server
    server.close()


# -- which addresses image.url may reach ------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
     "2002:7f00:1::", "64:ff9b::a00:1", "2001:0:4136:e378:8000:63bf:80ff:fffe"],
)  # fmt: skip
def test_non_public_addresses_are_recognised(address):
    import ipaddress

    assert not is_public_address(ipaddress.ip_address(address))
    assert AddressPolicy.of(allow_private=True).permits(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_recognised(address):
    import ipaddress

    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "127.1"],
)
def test_loopback_in_any_spelling_is_refused_without_connecting(pictures, host):
    port = pictures.httpd.server_address[1]
    error = api_error(f"http://{host}:{port}/a.jpg")
    assert (error.status_code, error.reason) == (400, "private_url")
    assert "non-public address" in error.message and "--allow-private-urls" in error.message
    assert pictures.hits == []  # refused before any connection


@pytest.mark.parametrize(
    "url",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/a.jpg", "http://[fd00::1]:8080/a.jpg",
     "http://user:pw@192.168.0.1/a.jpg", "https://100.100.100.200/a.jpg"],
)  # fmt: skip
def test_private_networks_and_cloud_metadata_are_refused(url):
    assert api_error(url).reason == "private_url"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("file:///etc/passwd", "must be http or https"),
        ("ftp://example.com/a.jpg", "must be http or https"),
        ("gopher://127.0.0.1:70/_x", "must be http or https"),
        ("//example.com/a.jpg", "must be http or https"),
        ("http:///a.jpg", "no host"),
        ("http://example.com:99999/a.jpg", "invalid port"),
    ],
)
def test_only_http_and_https_urls_with_a_host(url, words):
    error = api_error(url)
    assert (error.status_code, error.reason) == (400, "bad_url") and words in error.message


def test_allowed_network_is_fetched(pictures, jpeg):
    assert fetch(pictures.url + "/a.jpg", allowed_networks=["127.0.0.1/32"]) == jpeg
    assert fetch(pictures.url + "/a.jpg", allow_private=True) == jpeg


def test_redirect_to_a_private_address_is_refused_at_that_hop(pictures):
    port = pictures.httpd.server_address[1]
    pictures.routes["/to-private"] = redirect(f"http://127.0.0.2:{port}/a.jpg")
    pictures.routes["/to-metadata"] = redirect("http://169.254.169.254/latest/meta-data/")
    pictures.routes["/to-file"] = redirect("file:///etc/passwd")
    allowed = {"allowed_networks": ["127.0.0.1/32"]}
    assert api_error(pictures.url + "/to-private", **allowed).reason == "private_url"
    assert api_error(pictures.url + "/to-metadata", **allowed).reason == "private_url"
    assert api_error(pictures.url + "/to-file", **allowed).reason == "bad_url"
    assert pictures.hits == ["/to-private", "/to-metadata", "/to-file"]


def test_redirects_are_followed_up_to_the_limit(pictures, jpeg):
    for hop in range(1, 5):
        pictures.routes[f"/r{hop}"] = redirect(f"/r{hop + 1}" if hop < 4 else "/a.jpg")
    allowed = {"allowed_networks": ["127.0.0.1/32"]}
    assert fetch(pictures.url + "/r1", max_redirects=4, **allowed) == jpeg
    error = api_error(pictures.url + "/r1", max_redirects=3, **allowed)
    assert (error.status_code, error.reason) == (502, "url_redirects") and "more than 3 times" in error.message


@pytest.fixture()
def fake_dns(monkeypatch):
    """Names ending in .test resolve to what `answers[name]` pops next; other names as usual."""
    answers: dict[str, list[str]] = {}
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".test"):
            lookups.append(host)
            address = answers[host].pop(0)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, lookups


def test_dns_rebinding_cannot_swap_the_address_after_the_check(pictures, fake_dns):
    """The first answer (allowed) is the one connected to; a second lookup, where a rebinding DNS server
    would answer with the private picture server, never happens."""
    answers, lookups = fake_dns
    answers["rebind.test"] = ["127.0.0.2", "127.0.0.1", "127.0.0.1"]
    port = pictures.httpd.server_address[1]
    error = api_error(f"http://rebind.test:{port}/a.jpg", allowed_networks=["127.0.0.2/32"])
    assert (error.status_code, error.reason) == (502, "url_unreachable")  # nothing listens on 127.0.0.2
    assert lookups == ["rebind.test"]
    assert pictures.hits == []


def test_a_name_resolving_to_a_private_address_is_refused(pictures, fake_dns):
    answers, _ = fake_dns
    answers["internal.test"] = ["127.0.0.1"]
    port = pictures.httpd.server_address[1]
    error = api_error(f"http://internal.test:{port}/a.jpg")
    assert error.reason == "private_url" and "'internal.test'" in error.message and "127.0.0.1" in error.message
    assert pictures.hits == []


# -- HTTPS: the address is checked, the certificate and SNI still use the host name ----------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=pictures.test",
             "-addext", "subjectAltName=DNS:pictures.test"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    except FileNotFoundError:
        pytest.skip("the openssl command is not installed (needed to make a test certificate)")
    return cert, key


@pytest.fixture()
def tls_pictures(tls_files, jpeg):
    cert, key = tls_files
    server_names: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)

        def log_message(self, *args) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], server_names
    httpd.shutdown()
    httpd.server_close()


def test_https_verifies_the_host_name_and_sends_it_as_sni(tls_pictures, tls_files, fake_dns, monkeypatch, jpeg):
    port, server_names = tls_pictures
    answers, _ = fake_dns
    answers["pictures.test"] = ["127.0.0.1"]
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files[0]))
    assert fetch(f"https://pictures.test:{port}/a.jpg", allowed_networks=["127.0.0.1/32"]) == jpeg
    assert server_names == ["pictures.test"]


def test_https_certificate_for_another_name_is_refused(tls_pictures, tls_files, monkeypatch):
    port, _ = tls_pictures
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files[0]))
    error = api_error(f"https://127.0.0.1:{port}/a.jpg", allowed_networks=["127.0.0.1/32"])
    assert (error.status_code, error.reason) == (502, "url_unreachable") and "certificate" in error.message


# -- decoding limits: checked from the header, before any pixel is decoded --------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height (1-bit grey) and carries a few bytes of pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """The JPEG with its frame header (SOF0) rewritten to declare width x height."""
    at = jpeg.index(b"\xff\xc0")
    return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]


@pytest.fixture()
def no_decoding(monkeypatch):
    """Fail the test if any pixel gets decoded (Pillow or OpenCV)."""
    import cv2
    from PIL import ImageFile

    def refuse(*_args, **_kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)
    monkeypatch.setattr(cv2, "imdecode", refuse)


@pytest.mark.parametrize(
    ("width", "height", "words"),
    [(60_000, 60_000, "over the limit of 50000000 pixels"), (30_000, 10, "30000x10"), (8_000, 7_000, "8000x7000")],
)
def test_decompression_bombs_are_refused_from_the_header(no_decoding, width, height, words):
    bomb = png_header_only(width, height)
    assert len(bomb) < 200
    with pytest.raises(ApiError) as caught:
        decode_image(bomb, max_pixels=50_000_000, max_side_px=20_000)
    assert (caught.value.status_code, caught.value.reason) == (413, "too_many_pixels")
    assert words in caught.value.message


def test_jpeg_bomb_is_refused_before_opencv_decodes_it(no_decoding, jpeg):
    with pytest.raises(ApiError) as caught:
        decode_image(jpeg_declaring(jpeg, 9_000, 6_000), max_pixels=50_000_000, max_side_px=20_000)
    assert caught.value.reason == "too_many_pixels" and "9000x6000" in caught.value.message


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(picture, orientation):
    """The fast OpenCV path for JPEG gives the very pixels of Pillow's reference path."""
    from PIL import ImageOps

    rgb = picture("astronaut")[:200, :120]
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95, exif=exif)
    data = buffer.getvalue()
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    decoded = decode_image(data, max_pixels=10**8, max_side_px=10**5)
    assert decoded.shape == (expected.height, expected.width, 3)
    assert (decoded == np.asarray(expected)).all()


# -- the running server: auth on every operator route, limits as JSON, secrets never logged ---------


@pytest.fixture(scope="module")
def guarded_api(tmp_path_factory):
    server = start_api(
        tmp_path_factory.mktemp("guarded"),
        "--basic-auth", f"{USER}:{PASSWORD}", "--auth-header", SECRET_HEADER, "--auth-secret", SECRET,
        env={"BYOM_MAX_BODY_BYTES": "2000000", "BYOM_PRELOAD_MODELS": "0"},
    )  # fmt: skip
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/metrics"), ("GET", "/requests"), ("DELETE", "/requests"), ("GET", "/config"), ("PUT", "/config"),
     ("GET", "/models"), ("GET", "/classes"), ("POST", "/infer"), ("POST", "/models/opencv-face/infer")],
)  # fmt: skip
def test_every_route_but_health_needs_auth(guarded_api, method, path):
    for credentials in (
        {},
        {"auth": (USER, "wrong")},
        {"auth": (USER, PASSWORD)},
        {"headers": {SECRET_HEADER: SECRET}},
    ):
        response = requests.request(method, guarded_api.url + path, json={}, timeout=10, **credentials)
        assert response.status_code == 401, (credentials, response.text)
        assert response.json()["status"] == "failed" and response.json()["results"] == []
    assert requests.get(guarded_api.url + "/health", timeout=10).status_code == 200
    assert requests.get(guarded_api.url + "/metrics", timeout=10, **AUTH).status_code == 200


def test_private_image_url_is_refused_by_default(guarded_api, pictures):
    response = requests.post(guarded_api.url + "/infer", json={"image": {"url": pictures.url + "/a.jpg"}},
                             timeout=10, **AUTH)  # fmt: skip
    assert response.status_code == 400 and "non-public address (127.0.0.1)" in response.json()["error"]
    assert pictures.hits == []


def test_limits_are_answered_as_json(guarded_api, jpeg):
    bomb = base64.b64encode(png_header_only(40_000, 40_000)).decode()
    response = requests.post(guarded_api.url + "/models/opencv-face/infer", json={"image": {"base64": bomb}},
                             timeout=10, **AUTH)  # fmt: skip
    assert response.status_code == 413 and response.json()["status"] == "failed"
    assert "over the limit" in response.json()["error"]
    body = b'{"image": {"base64": "' + b"A" * 2_500_000 + b'"}}'
    headers = {**AUTH["headers"], "Content-Type": "application/json"}
    response = requests.post(guarded_api.url + "/infer", data=body, timeout=10, auth=AUTH["auth"], headers=headers)
    assert response.status_code == 413 and "2000000 byte limit" in response.json()["error"]
    ok = requests.post(guarded_api.url + "/models/opencv-face/infer",
                       json={"image": {"base64": base64.b64encode(jpeg).decode()}}, timeout=60, **AUTH)  # fmt: skip
    assert ok.status_code == 200 and len(ok.json()["results"]) == 1


def test_secrets_never_reach_the_logs(guarded_api, picture):
    signature = "SIG-7a1f-presigned-secret"
    image_b64 = base64.b64encode(encode_png(picture("coffee")[:64, :64])).decode()
    sends = [
        dict(json={"image": {"url": f"http://10.9.8.7/a.jpg?X-Amz-Signature={signature}"}}, **AUTH),
        dict(json={"image": {"base64": image_b64}}, **AUTH),
        dict(json={"image": {"base64": image_b64}}, auth=(USER, "pw-WRONG-guess-1"), headers={SECRET_HEADER: SECRET}),
        dict(json={"image": {"base64": image_b64}}, auth=(USER, PASSWORD), headers={SECRET_HEADER: "WRONG-secret-2"}),
    ]
    statuses = [
        requests.post(guarded_api.url + "/models/opencv-face/infer", timeout=30, **s).status_code for s in sends
    ]
    assert statuses == [400, 200, 401, 401]
    server_log = guarded_api.log()
    requests_log = requests.get(guarded_api.url + "/requests?limit=50", timeout=10, **AUTH).text
    assert '"reason": "private_url"' in server_log and '"reason": "unauthorized"' in server_log  # lines were written
    assert "X-Amz-Signature" not in requests_log and "10.9.8.7" in requests_log
    for secret in (PASSWORD, SECRET, "pw-WRONG-guess-1", "WRONG-secret-2", signature, image_b64[:40]):
        assert secret not in server_log
        assert secret not in requests_log


@pytest.mark.parametrize(
    ("host", "env", "warned"),
    [
        ("0.0.0.0", {}, True),
        ("::", {}, True),
        ("192.168.1.20", {}, True),
        ("0.0.0.0", {"BYOM_BASIC_AUTH": "u:p"}, False),
        ("0.0.0.0", {"BYOM_AUTH_SECRET": "s"}, False),
        ("127.0.0.1", {}, False),
        ("localhost", {}, False),
        ("::1", {}, False),
    ],
)
def test_serving_beyond_loopback_without_auth_warns_loudly(capsys, host, env, warned):
    env = dict(env)
    assert warn_if_open(host, env) is warned
    assert ("WARNING" in capsys.readouterr().err) is warned
    assert (env.get("BYOM_OPEN_WARNING_SHOWN") == "1") is warned  # so gunicorn does not repeat it


GUNICORN_WHEN_READY = """
import importlib.util, json, sys, types
spec = importlib.util.spec_from_file_location("conf", sys.argv[1])
conf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conf)


class Listener:
    def __init__(self, host):
        self.sock = types.SimpleNamespace(getsockname=lambda: (host, 8000))

    def __str__(self):
        return f"http://{self.sock.getsockname()[0]}:8000"


warnings = []
log = types.SimpleNamespace(warning=lambda message, *args: warnings.append(message % args))
server = types.SimpleNamespace(LISTENERS=[Listener(host) for host in sys.argv[2:]], log=log)
conf.when_ready(server)
conf.on_exit(server)
print(json.dumps(warnings))
"""


@pytest.mark.parametrize(
    ("hosts", "env", "warned_about"),
    [
        (["127.0.0.1", "0.0.0.0"], {}, ["http://0.0.0.0:8000"]),
        (["10.1.2.3"], {}, ["http://10.1.2.3:8000"]),
        (["::1", "127.0.0.1"], {}, []),
        (["0.0.0.0"], {"BYOM_BASIC_AUTH": "u:p"}, []),
        (["0.0.0.0"], {"BYOM_OPEN_WARNING_SHOWN": "1"}, []),  # `run.py serve` said it already
    ],
)
def test_gunicorn_started_directly_warns_too(tmp_path, hosts, env, warned_about):
    """Docker or a process manager may start gunicorn with server/gunicorn_conf.py without `run.py serve`."""
    import json
    import os
    import sys

    conf = Path(__file__).resolve().parent.parent / "server" / "gunicorn_conf.py"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BYOM_", "PROMETHEUS_"))}
    run = subprocess.run(
        [sys.executable, "-c", GUNICORN_WHEN_READY, str(conf), *hosts],
        env={**clean, "TMPDIR": str(tmp_path), **env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    warnings = json.loads(run.stdout)
    assert len(warnings) == len(warned_about)
    for warning, address in zip(warnings, warned_about, strict=True):
        assert "NO authentication" in warning and address in warning and "127.0.0.1" not in warning
    assert list(tmp_path.iterdir()) == []  # the private metrics folder was removed at exit
