"""The playground's only way to the models: HTTP calls to the endpoint, made the way V7 makes them.

Nothing here imports Streamlit, so request building and error wording are unit-tested on their own.
A call never raises for HTTP or network trouble: it returns a `Call` whose `error` is a sentence a
person can act on ("cannot reach ...: connection refused; is the API running?"), never a traceback.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

#: V7 gives an inference 30 s; the client waits a little longer so that a slow answer is shown, not lost.
V7_DEADLINE_S = 30.0
DEFAULT_TIMEOUT_S = 40.0
#: How much of a base64 string the request shown on screen keeps.
DISPLAY_BASE64_CHARS = 40


@dataclass(frozen=True)
class Credentials:
    """What the client sends to pass the endpoint's auth: HTTP Basic and/or a secret header (as V7 can)."""

    basic: tuple[str, str] | None = None
    header_name: str | None = None
    header_secret: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Credentials:
        """The server's own variables (BYOM_BASIC_AUTH, BYOM_AUTH_HEADER, BYOM_AUTH_SECRET), read as a client."""
        basic = None
        user, sep, password = (environ.get("BYOM_BASIC_AUTH") or "").partition(":")
        if sep and user:
            basic = (user, password)
        secret = environ.get("BYOM_AUTH_SECRET") or None
        header = environ.get("BYOM_AUTH_HEADER") or ("X-BYOM-Secret" if secret else None)
        return cls(basic, header if secret else None, secret)

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.basic is not None:
            token = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        if self.header_name and self.header_secret is not None:
            headers[self.header_name] = self.header_secret
        return headers

    def describe(self) -> str:
        parts = []
        if self.basic is not None:
            parts.append(f"HTTP Basic as {self.basic[0]!r}")
        if self.header_name:
            parts.append(f"secret in header {self.header_name}")
        return " and ".join(parts) or "no credentials"


@dataclass
class Call:
    """One HTTP exchange as the user should see it."""

    method: str
    url: str
    status_code: int | None = None
    elapsed_ms: float = 0.0
    body: Any = None
    text: str = ""
    content_type: str = ""
    #: A readable sentence when the call did not give a usable JSON answer (network, non-JSON, failed status).
    error: str | None = None
    request_json: Any = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None


class EndpointError(RuntimeError):
    """A call the UI cannot go on without failed; str() is the readable reason."""


def build_infer_request(
    *,
    image_bytes: bytes | None = None,
    image_url: str | None = None,
    box_xywh: tuple[float, float, float, float] | None = None,
    threshold: float | None = None,
    placement: str = "top",
) -> dict[str, Any]:
    """The JSON body V7 POSTs: the image (base64 or URL), and for Auto-Annotate the box and threshold.

    `placement` "top" puts bbox/threshold at the top level; "data" nests them under "data" as V7 does
    for clicker-style models (whether V7 forwards either to an external model is open; servers should
    accept both).
    """
    if (image_bytes is None) == (image_url is None):
        raise ValueError("give exactly one of image_bytes and image_url")
    if placement not in ("top", "data"):
        raise ValueError(f"placement must be 'top' or 'data', got {placement!r}")
    image = {"base64": base64.b64encode(image_bytes).decode("ascii")} if image_bytes is not None else {"url": image_url}
    extra: dict[str, Any] = {}
    if box_xywh is not None:
        extra["bbox"] = {k: round(float(v), 2) for k, v in zip("xywh", box_xywh, strict=True)}
    if threshold is not None:
        extra["threshold"] = round(float(threshold), 4)
    if placement == "data" and extra:
        return {"image": image, "data": extra}
    return {"image": image, **extra}


def shorten_base64(text: str, keep_chars: int = DISPLAY_BASE64_CHARS) -> str:
    if len(text) <= keep_chars:
        return text
    return f"{text[:keep_chars]}…({len(text)} characters)"


def request_for_display(body: Any, keep_chars: int = DISPLAY_BASE64_CHARS) -> Any:
    """A copy of a request body that fits on a screen: image.base64 cut to its start and its length."""
    if not isinstance(body, dict) or not isinstance(body.get("image"), dict):
        return body
    image = dict(body["image"])
    if isinstance(image.get("base64"), str):
        image["base64"] = shorten_base64(image["base64"], keep_chars)
    return {**body, "image": image}


def _strip_html(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def describe_network_error(url: str, exc: requests.RequestException, timeout_s: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer from {url} within {timeout_s:g} s (V7 gives up after {V7_DEADLINE_S:g} s)"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failed talking to {url}: check the certificate of the endpoint"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "refused" in text.lower():
            return f"cannot reach {url}: connection refused. Is the API running? (python run.py serve)"
        if "resolve" in text.lower() or "name or service" in text.lower():
            return f"cannot reach {url}: the host name does not resolve"
        return f"cannot reach {url}: the connection failed ({type(exc).__name__})"
    return f"the call to {url} failed: {type(exc).__name__}"


def describe_answer_problem(call: Call) -> str | None:
    """Why an answer is not usable, in words; None when it is JSON with no failed status."""
    if call.status_code is None:
        return call.error
    if not isinstance(call.body, dict | list):
        kind = call.content_type or "no content type"
        snippet = _strip_html(call.text)[:200]
        return f"HTTP {call.status_code}: the answer is not JSON ({kind}){': ' + snippet if snippet else ''}"
    if isinstance(call.body, dict) and (call.body.get("status") == "failed" or call.status_code >= 400):
        message = call.body.get("error") or call.body.get("message") or "no error message given"
        hint = ""
        if call.status_code == 401:
            hint = " (set the credentials the endpoint expects: --basic-auth or --auth-header/--auth-secret)"
        return f"HTTP {call.status_code}: {message}{hint}"
    if call.status_code >= 400:
        return f"HTTP {call.status_code}"
    return None


class EndpointClient:
    """Calls one endpoint (our server or any other BYOM endpoint) with the given credentials."""

    def __init__(
        self, base_url: str, credentials: Credentials | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials or Credentials()
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    # -- routes --------------------------------------------------------------------------

    @staticmethod
    def infer_path(model: str | None = None) -> str:
        return "/infer" if model is None else f"/models/{quote(model, safe='')}/infer"

    @staticmethod
    def classes_path(model: str | None = None) -> str:
        return "/classes" if model is None else f"/models/{quote(model, safe='')}/classes"

    def url(self, path: str) -> str:
        return self.base_url + path

    # -- calls ---------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        raw_body: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, Any] | None = None,
        with_auth: bool = True,
        timeout_s: float | None = None,
    ) -> Call:
        """One request; `raw_body` sends bytes as they are (to test how an endpoint treats bad JSON)."""
        url = self.url(path)
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        headers = self.credentials.headers() if with_auth else {}
        if content_type:
            headers["Content-Type"] = content_type
        result = Call(method, url, request_json=json_body)
        started = time.perf_counter()
        try:
            response = self._session.request(
                method, url, json=json_body, data=raw_body, params=params, headers=headers, timeout=timeout_s
            )
        except requests.RequestException as exc:
            result.elapsed_ms = (time.perf_counter() - started) * 1000
            result.error = describe_network_error(self.base_url, exc, timeout_s)
            return result
        result.elapsed_ms = (time.perf_counter() - started) * 1000
        result.status_code = response.status_code
        result.text = response.text
        result.content_type = response.headers.get("Content-Type", "")
        try:
            result.body = response.json()
        except ValueError:
            result.body = None
        result.error = describe_answer_problem(result)
        return result

    def get_json(self, path: str, **params: Any) -> Any:
        """The JSON of a GET that must work; raises EndpointError with the readable reason."""
        call = self.call("GET", path, params=params or None)
        if not call.ok:
            raise EndpointError(f"GET {path}: {call.error}")
        return call.body

    def health(self) -> dict[str, Any]:
        return self.get_json("/health")

    def models(self) -> dict[str, Any]:
        return self.get_json("/models")

    def classes(self, model: str | None = None) -> list[dict[str, Any]]:
        return self.get_json(self.classes_path(model))

    def config(self) -> dict[str, Any]:
        return self.get_json("/config")

    def save_config(self, mapping: dict[str, Any]) -> Call:
        return self.call("PUT", "/config", json_body=mapping)

    def recent_requests(self, limit: int = 50) -> Call:
        return self.call("GET", "/requests", params={"limit": int(limit)})

    def clear_requests(self) -> Call:
        return self.call("DELETE", "/requests")

    def infer(self, body: dict[str, Any], model: str | None = None, *, with_auth: bool = True) -> Call:
        return self.call("POST", self.infer_path(model), json_body=body, with_auth=with_auth)
