"""deploy/nginx/byom.conf for real: Debian's nginx on loopback ports in front of a real gunicorn.

The shipped site file is used as it is, with only its ports, certificate paths and web root swapped
for test ones (each swap must match exactly once, so the test notices when the file changes shape).
nginx runs without root privileges' paths: `-p DIR -c CONF -e LOG -g 'daemon off; pid ...;'`.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from models.samples import encode_jpeg
from tests.contract_checks import assert_v7_answer
from tests.servers import free_port, start_api

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "byom.conf"
USER, PASSWORD = "v7", "nginx-test-pw"
AUTH = (USER, PASSWORD)

pytestmark = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK), reason=f"nginx is not installed ({NGINX}; .ci/run installs Debian's nginx)"
)


def swap(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} should appear exactly once in {SITE.name}"
    return text.replace(old, new)


def site_for_test(upstream_port: int, http_port: int, https_port: int, cert: Path, key: Path, web_root: Path) -> str:
    site = SITE.read_text()
    site = swap(site, "server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};")
    site = swap(site, "listen 80;", f"listen 127.0.0.1:{http_port};")
    site = swap(site, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    site = swap(site, "listen [::]:80;\n", "")  # loopback only in tests
    site = swap(site, "listen [::]:443 ssl;\n", "")
    site = swap(site, "/etc/letsencrypt/live/byom.example.com/fullchain.pem", str(cert))
    site = swap(site, "/etc/letsencrypt/live/byom.example.com/privkey.pem", str(key))
    return swap(site, "root /var/www/html;", f"root {web_root};")


@contextmanager
def running_nginx(folder: Path, upstream_port: int, cert: Path, key: Path) -> Iterator[dict[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    http_port, https_port = free_port(), free_port()
    (folder / "byom.conf").write_text(site_for_test(upstream_port, http_port, https_port, cert, key, folder))
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""  # workers keep our uid
    temp = "".join(f"    {kind}_temp_path {folder / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                          "scgi"))  # fmt: skip
    (folder / "nginx.conf").write_text(
        f"{user}worker_processes 1;\nevents {{ worker_connections 64; }}\nhttp {{\n"
        f"    access_log {folder / 'access.log'};\n{temp}    include {folder / 'byom.conf'};\n}}\n"
    )
    command = [NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([*command, "-g", f"daemon off; pid {folder / 'nginx.pid'};"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    urls = {"http": f"http://127.0.0.1:{http_port}", "https": f"https://127.0.0.1:{https_port}"}
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.stderr.read().decode()
            try:
                requests.get(urls["http"], timeout=2, allow_redirects=False)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.1)
        yield urls
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("nginx-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (needed to make a test certificate)")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=byom.example.com",
         "-addext", "subjectAltName=DNS:byom.example.com,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = start_api(tmp_path_factory.mktemp("behind-nginx"), "--basic-auth", f"{USER}:{PASSWORD}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(api, tls, tmp_path_factory):
    upstream_port = int(api.url.rsplit(":", 1)[1])
    with running_nginx(tmp_path_factory.mktemp("nginx"), upstream_port, *tls) as urls:
        yield urls


@pytest.fixture(scope="module")
def body(picture) -> dict:
    return {"image": {"base64": base64.b64encode(encode_jpeg(picture("astronaut"))).decode()}}


def test_v7_requests_through_nginx_get_the_same_answers(proxy, api, tls, body, v7_schema):
    cert = str(tls[0])
    classes = requests.get(proxy["https"] + "/classes", auth=AUTH, verify=cert, timeout=30).json()
    for route in ("/infer", "/api/infer", "/models/pose/infer"):
        through = requests.post(proxy["https"] + route, json=body, auth=AUTH, verify=cert, timeout=60)
        direct = requests.post(api.url + route, json=body, auth=AUTH, timeout=60)
        assert through.status_code == 200 and through.headers["Content-Type"] == "application/json"
        assert_v7_answer(through.json(), v7_schema, classes if route != "/models/pose/infer" else None, (512, 512))
        assert through.json() == direct.json() and through.json()["results"]


def test_answers_are_compressed_for_clients_that_accept_it(proxy, tls, body):
    response = requests.post(proxy["https"] + "/infer", json=body, auth=AUTH, verify=str(tls[0]), timeout=60,
                             headers={"Accept-Encoding": "gzip"}, stream=True)  # fmt: skip
    raw = response.raw.read()
    assert response.headers.get("Content-Encoding") == "gzip"
    assert json.loads(gzip.decompress(raw))["status"] == "succeeded"


def test_plain_http_redirects_to_https(proxy):
    response = requests.post(proxy["http"] + "/infer", json={}, allow_redirects=False, timeout=10)
    assert response.status_code == 301 and response.headers["Location"].startswith("https://")


def test_app_errors_and_auth_pass_through_unchanged(proxy, tls):
    cert = str(tls[0])
    refused = requests.post(proxy["https"] + "/infer", json={"image": {"base64": "aGk="}}, verify=cert, timeout=10)
    assert refused.status_code == 401 and refused.json()["status"] == "failed"
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    bad = requests.post(proxy["https"] + "/infer", data="{oops", auth=AUTH, verify=cert, timeout=10,
                        headers={"Content-Type": "application/json"})  # fmt: skip
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
    assert requests.get(proxy["https"] + "/health", verify=cert, timeout=10).json()["healthy"] is True


def test_forwarded_for_reaches_the_requests_log(proxy, tls):
    cert = str(tls[0])
    requests.post(proxy["https"] + "/infer", json={"image": {}}, auth=AUTH, verify=cert, timeout=10,
                  headers={"X-Forwarded-For": "203.0.113.9"})  # fmt: skip
    latest = requests.get(proxy["https"] + "/requests?limit=1", auth=AUTH, verify=cert, timeout=10).json()
    assert latest["requests"][0]["client"] == "203.0.113.9, 127.0.0.1"


def test_body_over_the_proxy_limit_is_a_json_413(proxy, tls):
    limit_mib = int(re.search(r"client_max_body_size (\d+)m;", SITE.read_text()).group(1))
    oversized = b'{"image": {"base64": "' + b"A" * (limit_mib * 1024 * 1024 + 1) + b'"}}'
    response = requests.post(proxy["https"] + "/infer", data=oversized, auth=AUTH, verify=str(tls[0]), timeout=60,
                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 413 and response.headers["Content-Type"] == "application/json"
    error = f"the request body is larger than the {limit_mib} MiB the proxy accepts"
    assert response.json() == {"status": "failed", "results": [], "error": error}


def test_api_down_is_a_json_502(tls, tmp_path):
    nobody_listens = free_port()
    with running_nginx(tmp_path / "nginx-down", nobody_listens, *tls) as urls:
        response = requests.post(urls["https"] + "/infer", json={}, verify=str(tls[0]), timeout=30)
    assert response.status_code == 502 and response.headers["Content-Type"] == "application/json"
    assert response.json()["status"] == "failed" and "not running or not reachable" in response.json()["error"]
