"""The Flask app V7 calls: an app factory around the model registry.

Auth, JSON errors, the requests log and timing are handled once here, around every model.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from models.driver import ModelContractError, ModelFailed, Request, run_models
from models.files import ModelUnavailable
from models.mapping import ClassMapping, ConfigError, MappingFile
from models.registry import ModelRegistry, UnknownModel
from server.auth import auth_failure
from server.contract import ApiError, InferRequest, box_within_image, failed, parse_infer_request, succeeded
from server.images import decode_base64, decode_image, fetch_url
from server.observability import install_observability
from server.request_log import RequestLog
from server.settings import Settings

log = logging.getLogger("byom.server")

#: Routes anyone may call (load balancers and `run.py` poll it); everything else needs auth.
OPEN_ROUTES = {"/health"}


@dataclass
class ServerState:
    settings: Settings
    registry: ModelRegistry
    mapping_file: MappingFile
    request_log: RequestLog | None

    def mapping(self) -> ClassMapping:
        return self.mapping_file.load()

    def specs(self) -> dict[str, Any]:
        return {name: self.registry.spec(name) for name in self.registry.names()}

    def validate_mapping(self, mapping: ClassMapping) -> None:
        mapping.validate(self.specs())

    def endpoint_models(self, model_name: str | None) -> list[str]:
        """The models behind an endpoint: one by name, or the default endpoint's list."""
        if model_name is None:
            return list(self.mapping().default_models)
        self.registry.spec(model_name)  # raises UnknownModel
        return [model_name]


def _state() -> ServerState:
    from flask import current_app

    return current_app.extensions["byom"]


def json_body() -> Any:
    if not request.mimetype or not (request.mimetype == "application/json" or request.mimetype.endswith("+json")):
        raise ApiError(
            415, f"Content-Type must be application/json, got {request.mimetype or 'none'}", "wrong_content_type"
        )
    raw = request.get_data(cache=True)
    if not raw:
        raise ApiError(400, "the request body is empty: send a JSON object", "bad_json")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}", "bad_json") from None


def load_image(state: ServerState, infer_request: InferRequest) -> np.ndarray:
    settings = state.settings
    if infer_request.image_base64 is not None:
        data = decode_base64(infer_request.image_base64, settings.max_download_bytes)
    else:
        data = fetch_url(
            infer_request.image_url,
            max_bytes=settings.max_download_bytes,
            timeout_s=settings.url_timeout_s,
            max_redirects=settings.url_max_redirects,
            allow_private=settings.allow_private_urls,
            allowed_networks=settings.url_allowed_networks,
        )
    return decode_image(data, max_pixels=settings.max_image_pixels, max_side_px=settings.max_image_side_px)


def infer(state: ServerState, model_name: str | None, body: Any) -> dict[str, Any]:
    """One inference on an endpoint (a single model, or the default endpoint's models)."""
    infer_request = parse_infer_request(body)
    names = state.endpoint_models(model_name)
    models, warnings = [], []
    for name in names:
        try:
            models.append(state.registry.get(name))
        except ModelUnavailable as exc:
            if model_name is not None:
                raise ApiError(503, str(exc), "model_unavailable") from None
            warnings.append(str(exc))
    if not models:
        raise ApiError(503, "no model of this endpoint is available: " + " | ".join(warnings), "model_unavailable")
    image = load_image(state, infer_request)
    if infer_request.box_xywh is not None:
        box_within_image(infer_request.box_xywh, (image.shape[1], image.shape[0]))
    g.byom_image_wh = (image.shape[1], image.shape[0])
    results = run_models(models, image, Request(infer_request.box_xywh, infer_request.threshold), state.mapping())
    g.byom_result_count = len(results)
    return succeeded(results, **({"warnings": warnings} if warnings else {}))


def warm_up(state: ServerState) -> None:
    """Load the default endpoint's models and run each once on a blank picture.

    MediaPipe's first calls are several times slower than later ones; paying that while the
    worker boots keeps it off V7's first request (and off its 30 s budget).
    """
    blank = np.zeros((64, 64, 3), dtype=np.uint8)
    for name in state.endpoint_models(None):
        try:
            run_models([state.registry.get(name)], blank, Request(), state.mapping())
        except Exception as exc:  # unavailable or broken: reported per request, never fatal at boot
            log.warning("not preloaded: %s: %s", name, exc)


def error_response(status_code: int, message: str) -> Response:
    response = jsonify(failed(message))
    response.status_code = status_code
    return response


def create_app(settings: Settings | None = None, registry: ModelRegistry | None = None) -> Flask:
    settings = settings or Settings.from_env()
    registry = registry or ModelRegistry.with_plugins(settings.extra_models)
    app = Flask("byom_playground")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    request_log = (
        RequestLog(settings.request_log_path, settings.request_log_size) if settings.request_log_path else None
    )
    mapping_file = MappingFile(
        settings.config_path, validate=lambda mapping: mapping.validate({n: registry.spec(n) for n in registry.names()})
    )
    state = ServerState(settings, registry, mapping_file, request_log)
    app.extensions["byom"] = state
    if settings.preload_models:
        warm_up(state)

    @app.before_request
    def _check_auth() -> Response | None:
        g.byom_started = time.perf_counter()
        if request.path in OPEN_ROUTES or not settings.auth_enabled:
            return None
        reason = auth_failure(settings, request.headers)
        if reason is None:
            return None
        response = error_response(401, reason)
        if settings.basic_auth is not None:
            response.headers["WWW-Authenticate"] = 'Basic realm="byom-playground"'
        g.byom_failure_reason = "unauthorized"
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        g.byom_failure_reason = exc.reason
        return error_response(exc.status_code, exc.message)

    @app.errorhandler(UnknownModel)
    def _unknown_model(exc: UnknownModel) -> Response:
        g.byom_failure_reason = "unknown_model"
        return error_response(404, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        messages = {
            404: f"no route {request.path}; see GET /models for the routes this server has",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the request body is larger than the {settings.max_body_bytes} byte limit",
        }
        g.byom_failure_reason = f"http_{exc.code}"
        return error_response(exc.code or 500, messages.get(exc.code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, ModelContractError | ModelFailed):
            log.error("%s", exc)
            g.byom_failure_reason = "model_error"
            return error_response(500, str(exc))
        log.exception("unexpected error on %s", request.path)
        g.byom_failure_reason = "internal_error"
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")

    def serve_inference(model_name: str | None) -> Response:
        body: Any = None
        try:
            body = json_body()
            response = jsonify(infer(state, model_name, body))
        except Exception as exc:  # every outcome is answered as JSON and logged below
            response = (
                app.handle_user_exception(exc)
                if isinstance(exc, ApiError | UnknownModel | HTTPException)
                else _unexpected(exc)
            )
        if request_log is not None:
            try:
                request_log.record(
                    route=request.path,
                    client=request.headers.get("X-Forwarded-For", request.remote_addr),
                    body=body,
                    status_code=response.status_code,
                    latency_ms=(time.perf_counter() - g.byom_started) * 1000,
                    response=response.get_json(silent=True),
                )
            except Exception:  # the log must never cost an answer
                log.exception("could not write the requests log")
        return response

    def classes_json(model_name: str | None) -> list[dict[str, str]]:
        specs = [registry.spec(name) for name in state.endpoint_models(model_name)]
        return [{"name": c.name, "type": c.type} for c in state.mapping().endpoint_classes(specs)]

    # -- V7's routes ------------------------------------------------------------------------
    @app.post("/infer")
    @app.post("/api/infer")
    def infer_default() -> Response:
        return serve_inference(None)

    @app.get("/classes")
    @app.get("/api/classes")
    def classes_default() -> Response:
        return jsonify(classes_json(None))

    @app.post("/models/<name>/infer")
    @app.post("/models/<name>/api/infer")
    def infer_model(name: str) -> Response:
        return serve_inference(name)

    @app.get("/models/<name>/classes")
    @app.get("/models/<name>/api/classes")
    def classes_model(name: str) -> Response:
        return jsonify(classes_json(name))

    # -- for people and the playground -----------------------------------------------------
    @app.get("/health")
    def health() -> Response:
        mapping = state.mapping()
        models = {}
        for name in registry.names():
            try:
                missing = registry.missing_files(name)
                models[name] = {"available": not missing, "missing": missing}
            except Exception as exc:  # a broken plug-in must not hide the others
                models[name] = {"available": False, "missing": [], "error": f"{type(exc).__name__}: {exc}"}
        for failure in registry.plugin_failures:  # plug-ins that gave no model: shown, never fatal here
            models[failure.label] = {"available": False, "missing": [], "error": str(failure)}
        return jsonify(
            {
                "status": "succeeded",
                "results": [],
                "healthy": True,
                "default_models": list(mapping.default_models),
                "models": models,
                "config_path": str(settings.config_path),
                "config_error": state.mapping_file.last_error,
                "auth": {"basic": settings.basic_auth is not None, "header": settings.auth_header},
                "request_log": request_log is not None,
            }
        )

    @app.get("/models")
    def list_models() -> Response:
        mapping = state.mapping()
        entries = []
        for name in registry.names():
            spec = registry.spec(name)
            missing = registry.missing_files(name)
            classes = []
            for c in spec.classes:
                rule = mapping.rule(name, c.name)
                entry = {
                    "model_class": c.name,
                    "name": rule.v7_name,
                    "type": c.type,
                    "enabled": rule.enabled,
                    "threshold": rule.threshold,
                    "description": c.description,
                }
                if c.skeleton is not None:
                    entry["skeleton"] = {"nodes": list(c.skeleton.nodes), "edges": [list(e) for e in c.skeleton.edges]}
                classes.append(entry)
            entries.append(
                {
                    "name": name,
                    "description": spec.description,
                    "available": not missing,
                    "missing": missing,
                    "default_threshold": spec.default_threshold,
                    "files": [{"name": f.name, "url": f.url, "sha256": f.sha256} for f in spec.files],
                    "routes": {"infer": f"/models/{name}/infer", "classes": f"/models/{name}/classes"},
                    "classes": classes,
                }
            )
        for failure in registry.plugin_failures:
            entries.append(
                {
                    "name": failure.label,
                    "description": "",
                    "available": False,
                    "missing": [],
                    "error": str(failure),
                    "default_threshold": None,
                    "files": [],
                    "routes": {},
                    "classes": [],
                }
            )
        return jsonify(
            {"status": "succeeded", "results": [], "default_models": list(mapping.default_models), "models": entries}
        )

    @app.get("/config")
    def get_config() -> Response:
        return jsonify(
            {**state.mapping().to_json(), "path": str(settings.config_path), "error": state.mapping_file.last_error}
        )

    @app.put("/config")
    def put_config() -> Response:
        try:
            mapping = ClassMapping.from_json(json_body())
            state.validate_mapping(mapping)
        except ConfigError as exc:
            raise ApiError(400, f"the class mapping is not valid: {exc}", "bad_config") from None
        state.mapping_file.save(mapping)
        return jsonify({"status": "succeeded", "results": [], **mapping.to_json()})

    @app.get("/requests")
    def recent_requests() -> Response:
        if request_log is None:
            raise ApiError(
                404, "the requests log is off (the server was started with --no-request-log)", "request_log_off"
            )
        limit = request.args.get("limit", "50")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            raise ApiError(400, "limit must be a whole number from 1 to 1000", "bad_limit")
        return jsonify({"status": "succeeded", "results": [], "requests": request_log.recent(int(limit))})

    @app.delete("/requests")
    def clear_requests() -> Response:
        if request_log is None:
            raise ApiError(404, "the requests log is off", "request_log_off")
        request_log.clear()
        return jsonify({"status": "succeeded", "results": []})

    install_observability(app, state)
    return app
