"""The access log line and the Prometheus metrics: in-process exactly, then summed over gunicorn workers."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from models.files import ModelFileLocator
from models.registry import BUILTIN_MODELS, ModelRegistry
from models.samples import encode_jpeg
from server.app import create_app
from server.settings import Settings
from tests.servers import start_api, wait_for_health


def samples(metrics_text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, from Prometheus text."""
    found = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(metrics_text: str, name: str, **labels) -> float:
    return samples(metrics_text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def jpeg_body(picture) -> dict:
    return {"image": {"base64": base64.b64encode(encode_jpeg(picture("astronaut"))).decode()}}


@pytest.fixture(scope="module")
def registry(model_dir, tmp_path_factory) -> ModelRegistry:
    return ModelRegistry(BUILTIN_MODELS, ModelFileLocator(model_dir, tmp_path_factory.mktemp("cache")))


def make_app(tmp_path: Path, registry: ModelRegistry, **overrides):
    settings = Settings(config_path=tmp_path / "config.json", request_log_path=None, preload_models=False)
    return create_app(replace(settings, **overrides), registry)


def access_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "byom.access"]


def test_one_structured_access_line_per_request(tmp_path, registry, jpeg_body, caplog):
    client = make_app(tmp_path, registry).test_client()
    with caplog.at_level(logging.INFO, logger="byom"):
        client.post("/models/opencv-face/infer", json=jpeg_body)
        client.post("/models/opencv-face/infer", data="{oops", content_type="application/json")
        client.post("/models/no-such-model/infer", json=jpeg_body)
        client.get("/nowhere?token=abc")
    lines = access_lines(caplog)
    assert [(x["route"], x["status"], x["model"], x["results"], x["reason"]) for x in lines] == [
        ("/models/<name>/infer", 200, "opencv-face", 1, None),
        ("/models/<name>/infer", 400, "opencv-face", None, "bad_json"),
        ("/models/<name>/infer", 404, "unknown", None, "unknown_model"),  # no label per made-up name
        ("<unmatched>", 404, None, None, "http_404"),
    ]
    assert lines[3]["path"] == "/nowhere"  # never the query string
    assert all(
        x["latency_ms"] >= 0 and x["method"] in ("GET", "POST") and x["worker_pid"] == os.getpid() for x in lines
    )
    assert lines[0]["latency_ms"] > 1  # a real inference


def test_log_level_option_silences_access_lines(tmp_path, registry, caplog):
    try:
        client = make_app(tmp_path, registry, log_level="warning").test_client()
        with caplog.at_level(logging.DEBUG):
            client.get("/health")
            client.post("/models/opencv-face/infer", data="{oops", content_type="application/json")
        assert access_lines(caplog) == []
        assert logging.getLogger("byom").getEffectiveLevel() == logging.WARNING
    finally:
        logging.getLogger("byom").setLevel(logging.INFO)


def test_metrics_count_requests_failures_and_latency_per_model(tmp_path, registry, jpeg_body):
    client = make_app(tmp_path, registry).test_client()
    for _ in range(3):
        client.post("/models/opencv-face/infer", json=jpeg_body)
    client.post("/models/opencv-face/infer", json={"image": {"url": "file:///etc/passwd"}})
    client.post("/infer", json={"nothing": 1})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    route = "/models/<name>/infer"
    assert value(text, "byom_requests_total", route=route, method="POST", status="200") == 3
    assert value(text, "byom_requests_total", route=route, method="POST", status="400") == 1
    assert value(text, "byom_request_failures_total", route=route, reason="bad_url") == 1
    assert value(text, "byom_request_failures_total", route="/infer", reason="missing_image") == 1
    assert value(text, "byom_inference_seconds_count", model="opencv-face") == 4
    assert value(text, "byom_inference_seconds_count", model="default") == 1
    assert value(text, "byom_inference_seconds_bucket", model="opencv-face", le="+Inf") == 4
    assert value(text, "byom_inference_results_total", model="opencv-face") == 3
    assert value(text, "byom_requests_in_progress") == 1  # the /metrics request itself
    openmetrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.mimetype == "application/openmetrics-text" and openmetrics.get_data().endswith(b"# EOF\n")


def test_metrics_need_the_same_auth_as_other_routes(tmp_path, registry):
    client = make_app(tmp_path, registry, basic_auth=("v7", "pw")).test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.get_json()["status"] == "failed"
    auth = {"Authorization": "Basic " + base64.b64encode(b"v7:pw").decode()}
    assert client.get("/metrics", headers=auth).status_code == 200
    assert client.get("/health").status_code == 200


# -- under gunicorn: several worker processes, one set of numbers ----------------------------------


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("metrics")
    (folder / "counter_12345.db").write_bytes(b"stale values of an earlier run")
    return folder


@pytest.fixture(scope="module")
def api(tmp_path_factory, metrics_dir):
    server = start_api(
        tmp_path_factory.mktemp("observed"),
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "BYOM_PRELOAD_MODELS": "0"},
    )
    yield server
    server.stop()


def test_metrics_are_summed_over_workers(api, jpeg_body):
    total = 24
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(
            lambda _: requests.post(api.url + "/models/opencv-face/infer", json=jpeg_body, timeout=60).status_code,
            range(total),
        ))  # fmt: skip
    assert statuses == [200] * total
    served_by = {x["worker_pid"] for x in _log_lines(api) if x["route"] == "/models/<name>/infer"}
    assert len(served_by) == 2  # both workers answered some
    for _ in range(4):  # whichever worker answers /metrics, it reports every worker's requests
        text = requests.get(api.url + "/metrics", timeout=10).text
        assert value(text, "byom_requests_total", route="/models/<name>/infer", method="POST", status="200") == total
        assert value(text, "byom_inference_seconds_count", model="opencv-face") == total


def test_counts_survive_a_worker_restart_and_its_live_gauge_goes(api, metrics_dir, jpeg_body):
    before = requests.get(api.url + "/metrics", timeout=10).text
    served = value(before, "byom_requests_total", route="/models/<name>/infer", method="POST", status="200")
    assert not (metrics_dir / "counter_12345.db").exists()  # wiped at start
    victim = next(x["worker_pid"] for x in _log_lines(api) if x["route"] == "/models/<name>/infer")
    assert (metrics_dir / f"gauge_livesum_{victim}.db").exists()
    os.kill(victim, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while (metrics_dir / f"gauge_livesum_{victim}.db").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (metrics_dir / f"gauge_livesum_{victim}.db").exists()  # child_exit -> mark_process_dead
    wait_for_health(api.url, api.process)
    after = requests.get(api.url + "/metrics", timeout=10).text
    assert value(after, "byom_requests_total", route="/models/<name>/infer", method="POST", status="200") == served
    assert value(after, "byom_requests_in_progress") == 1


def _log_lines(api) -> list[dict]:
    return [json.loads(line) for line in api.log().splitlines() if line.startswith('{"time"')]
