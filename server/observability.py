"""What the server tells its operators: one structured access-log line per request and
Prometheus metrics at GET /metrics (behind the same auth as every route but /health).

Under gunicorn every worker is its own process, so the metrics use prometheus_client's
multiprocess mode: each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR (a private
temporary folder server/gunicorn_conf.py creates, wipes and removes) and /metrics sums them up,
whichever worker answers. Without that variable (tests, the Flask dev server) each app keeps its
own registry.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import choose_encoder

if TYPE_CHECKING:
    from server.app import ServerState

ACCESS_LOGGER = "byom.access"
#: Seconds; V7 gives a request 30 s, so the buckets stop there.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
#: Model label of the default endpoint (POST /infer, /api/infer).
DEFAULT_ENDPOINT = "default"
#: Route label of requests that matched no route (the path itself would be unbounded).
UNMATCHED_ROUTE = "<unmatched>"
MAX_LOGGED_HEADER_CHARS = 200


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """The server's metrics, registered in `registry` (None: multiprocess files only)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.requests = Counter(
            "byom_requests",
            "HTTP requests answered, by route template, method and status code",
            ["route", "method", "status"],
            registry=registry,
        )
        self.failures = Counter(
            "byom_request_failures",
            "Requests answered with an error, by route template and reason",
            ["route", "reason"],
            registry=registry,
        )
        self.inference_seconds = Histogram(
            "byom_inference_seconds",
            "Time to answer an inference request (download, decode, models, JSON), "
            "by model; 'default' is the default endpoint",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.results = Counter(
            "byom_inference_results",
            "Results returned by successful inference requests, by model",
            ["model"],
            registry=registry,
        )
        self.in_progress = Gauge(
            "byom_requests_in_progress",
            "Requests being answered right now (all workers)",
            registry=registry,
            multiprocess_mode="livesum",
        )

    @staticmethod
    def exposition(registry: CollectorRegistry | None, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the format the scraper asks for (Prometheus text, or OpenMetrics)."""
        if registry is None:
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)
        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type


def configure_logging(level: str) -> None:
    """Send the server's log lines (access lines as bare JSON) to stderr at `level`.

    When the host already configured logging (pytest, an embedding app: the root logger has
    handlers), only the level is set and records go up to its handlers.
    """
    server_logger = logging.getLogger("byom")
    server_logger.setLevel(level.upper())
    if logging.getLogger().handlers or getattr(server_logger, "_byom_configured", False):
        return
    text = logging.StreamHandler(sys.stderr)
    text.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"))
    server_logger.addHandler(text)
    server_logger.propagate = False
    access_logger = logging.getLogger(ACCESS_LOGGER)
    bare = logging.StreamHandler(sys.stderr)
    bare.setFormatter(logging.Formatter("%(message)s"))
    access_logger.addHandler(bare)
    access_logger.propagate = False
    server_logger._byom_configured = True  # type: ignore[attr-defined]


def _route_and_model(model_names: set[str]) -> tuple[str, str | None]:
    rule = request.url_rule
    if rule is None:
        return UNMATCHED_ROUTE, None
    if rule.endpoint == "infer_default":
        return rule.rule, DEFAULT_ENDPOINT
    if rule.endpoint == "infer_model":
        name = (request.view_args or {}).get("name", "")
        return rule.rule, name if name in model_names else "unknown"
    return rule.rule, None


def install_observability(app: Flask, state: ServerState) -> None:
    """Access log, metrics and GET /metrics for this app (call once, at the end of create_app)."""
    configure_logging(state.settings.log_level)
    access_log = logging.getLogger(ACCESS_LOGGER)
    registry = None if multiprocess_dir() else CollectorRegistry()
    metrics = Metrics(registry)
    model_names = set(state.registry.names())

    @app.before_request
    def _count_in_progress() -> None:
        metrics.in_progress.inc()
        g.byom_in_progress = True

    @app.teardown_request
    def _done(_exc: BaseException | None) -> None:
        if g.pop("byom_in_progress", False):
            metrics.in_progress.dec()

    @app.after_request
    def _record(response: Response) -> Response:
        started = getattr(g, "byom_started", None)  # set first thing by create_app's auth check
        latency_s = time.perf_counter() - started if started is not None else 0.0
        route, model = _route_and_model(model_names)
        reason = None
        if response.status_code >= 400:  # create_app's error handlers name the reason; else the status
            reason = getattr(g, "byom_failure_reason", None) or f"http_{response.status_code}"
        results = getattr(g, "byom_result_count", None)
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        if reason is not None:
            metrics.failures.labels(route, reason).inc()
        if model is not None:
            metrics.inference_seconds.labels(model).observe(latency_s)
            if results is not None:
                metrics.results.labels(model).inc(results)
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "method": request.method,
            "route": route,
            "path": request.path,
            "status": response.status_code,
            "latency_ms": round(latency_s * 1000, 1),
            "model": model,
            "results": results,
            "reason": reason,
            "client": request.remote_addr,
            "worker_pid": os.getpid(),
        }
        forwarded_for = request.headers.get("X-Forwarded-For")
        if forwarded_for:
            line["forwarded_for"] = forwarded_for[:MAX_LOGGED_HEADER_CHARS]
        access_log.log(
            logging.WARNING if response.status_code >= 500 else logging.INFO, "%s", json.dumps(line, default=str)
        )
        return response

    @app.get("/metrics")
    def metrics_text() -> Response:
        body, content_type = metrics.exposition(registry, request.headers.get("Accept"))
        return Response(body, headers={"Content-Type": content_type})
