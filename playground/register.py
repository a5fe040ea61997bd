"""What to enter in V7's "Register External Model" form, and a curl command that makes V7's call.

Pure text building: URLs, the auth method, the classes and skeletons, and the curl line. Secrets are
never written out: the commands read them from the same variables the server reads.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from playground.classes import EndpointClass
from playground.client import EndpointClient

TUNNEL_HELP = (
    "V7 calls your endpoint from its own servers on the internet, so it needs a public URL (HTTPS is best). "
    "On a laptop, a tunnel gives one: `cloudflared tunnel --url http://127.0.0.1:PORT` or `ngrok http PORT` "
    "prints a public https address that forwards to this API. On a server, put the API behind a reverse proxy "
    "(nginx, Caddy) that terminates TLS and forwards to it (then set --host to the address the proxy reaches)."
)


def infer_url(base_url: str, model: str | None = None) -> str:
    return base_url.rstrip("/") + EndpointClient.infer_path(model)


def classes_url(base_url: str, model: str | None = None) -> str:
    return base_url.rstrip("/") + EndpointClient.classes_path(model)


def reachability_problem(url: str) -> str | None:
    """Why V7 could not call this URL (None when it looks public)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return f"{url!r} is not an http(s) URL"
    if host == "localhost" or host.endswith(".local") or host.endswith(".localhost"):
        return f"{host} is a name only this machine (or network) knows: V7 cannot reach it"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None if "." in host else f"{host} is not a public host name: V7 cannot reach it"
    if not address.is_global:
        return f"{host} is a private or loopback address: V7 cannot reach it"
    return None


def auth_summary(health_auth: Mapping[str, Any] | None) -> tuple[str, list[str]]:
    """(method to pick in V7's form, what to enter), from GET /health's "auth"."""
    health_auth = health_auth or {}
    basic, header = bool(health_auth.get("basic")), health_auth.get("header")
    lines = []
    if basic:
        lines.append(
            "HTTP Basic auth: enter the user name and password the server was started with "
            "(--basic-auth USER:PASSWORD or BYOM_BASIC_AUTH)."
        )
    if header:
        lines.append(
            f"Header auth: header name `{header}`, value: the secret the server was started with "
            "(--auth-secret or BYOM_AUTH_SECRET)."
        )
    if not lines:
        return "none", [
            "The server requires no authentication: anyone who can reach its URL can use it. Before "
            "exposing it, restart it with --basic-auth USER:PASSWORD or --auth-header NAME --auth-secret "
            "SECRET, then choose the same method in V7."
        ]
    method = " + ".join(m for m, on in (("basic", basic), ("header", bool(header))) if on)
    return method, lines


def curl_command(
    url: str,
    *,
    basic_auth: bool = False,
    auth_header: str | None = None,
    box_xywh: Sequence[float] | None = None,
    threshold: float | None = 0.5,
    file_name: str = "picture.jpg",
) -> str:
    """A shell command that POSTs what V7 sends: the picture as base64, the box and the threshold.

    Credentials come from $BYOM_BASIC_AUTH (USER:PASSWORD) and $BYOM_AUTH_SECRET, never spelled out.
    """
    extra: dict[str, Any] = {}
    if box_xywh is not None:
        extra["bbox"] = {k: round(float(v), 1) for k, v in zip("xywh", box_xywh, strict=True)}
    if threshold is not None:
        extra["threshold"] = threshold
    tail = json.dumps(extra)[1:-1]
    template = '{"image": {"base64": "%s"}' + (", " + tail if tail else "") + "}"
    lines = [
        f'printf {shlex.quote(template)} "$(base64 -w0 {shlex.quote(file_name)})" |',
        f"  curl -sS -X POST {shlex.quote(url)}",
        "  -H 'Content-Type: application/json'",
    ]
    if basic_auth:
        lines.append('  -u "$BYOM_BASIC_AUTH"')
    if auth_header:
        lines.append(f'  -H "{auth_header}: $BYOM_AUTH_SECRET"')
    lines.append("  --data-binary @-")
    return " \\\n".join(lines)


def classes_for_form(classes: Sequence[EndpointClass]) -> list[dict[str, str]]:
    """The output classes to enter in V7 (name and annotation type), as GET /classes lists them."""
    return [{"name": c.name, "type": c.type} for c in classes]


def skeleton_specs(classes: Sequence[EndpointClass]) -> list[dict[str, Any]]:
    """Each skeleton class with the node names (and edges) its V7 skeleton class must have."""
    return [
        {"name": c.name, "nodes": list(c.nodes), "edges": [list(e) for e in c.edges]}
        for c in classes
        if c.type == "skeleton"
    ]
