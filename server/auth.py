"""Who may call: HTTP Basic and/or a secret in a named header, as V7's registration offers."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from server.settings import Settings


def _equal(given: str, expected: str) -> bool:
    """Constant-time comparison, so response timing tells nothing about the secret."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def auth_failure(settings: Settings, headers: Mapping[str, str]) -> str | None:
    """None when the request may pass, else why not (never echoing what was sent)."""
    if settings.basic_auth is not None:
        credentials = basic_credentials(headers.get("Authorization"))
        if credentials is None:
            return "authentication required: HTTP Basic credentials are missing"
        user_ok = _equal(credentials[0], settings.basic_auth[0])
        password_ok = _equal(credentials[1], settings.basic_auth[1])
        if not (user_ok and password_ok):
            return "authentication failed: wrong user name or password"
    if settings.auth_secret is not None:
        given = headers.get(settings.auth_header or "")
        if given is None:
            return f"authentication required: header {settings.auth_header} is missing"
        if not _equal(given, settings.auth_secret):
            return f"authentication failed: wrong secret in header {settings.auth_header}"
    return None
