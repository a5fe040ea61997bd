"""Server settings, read from the environment so that every gunicorn worker sees the same ones.

`python run.py serve` turns its options into these variables before starting gunicorn.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
LOG_LEVELS = ("debug", "info", "warning", "error")


def byom_home(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the mapping file and the requests log live by default."""
    return Path(environ.get("BYOM_HOME") or Path.home() / ".byom-playground").expanduser()


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    config_path: Path
    #: SQLite file of the last requests; None turns the requests log off.
    request_log_path: Path | None
    basic_auth: tuple[str, str] | None = None
    auth_header: str | None = None
    auth_secret: str | None = None
    max_body_bytes: int = 40 * MIB
    max_download_bytes: int = 40 * MIB
    max_image_pixels: int = 50_000_000
    max_image_side_px: int = 20_000
    #: Whole-download deadline for image.url; V7 gives the whole request 30 s.
    url_timeout_s: float = 10.0
    url_max_redirects: int = 3
    allow_private_urls: bool = False
    #: Networks image.url may reach besides public addresses (CIDRs, e.g. an internal image store).
    url_allowed_networks: tuple[str, ...] = ()
    request_log_size: int = 200
    #: Load the default endpoint's models (and run each once) when a worker starts, not on the first request.
    preload_models: bool = False
    #: Plug-in models (models.plugins): paths to .py files, "module" or "module:Class", separated by commas.
    extra_models: tuple[str, ...] = ()
    log_level: str = "info"

    @property
    def auth_enabled(self) -> bool:
        return self.basic_auth is not None or self.auth_secret is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        home = byom_home(environ)
        basic = environ.get("BYOM_BASIC_AUTH") or None
        basic_auth = None
        if basic:
            user, sep, password = basic.partition(":")
            if not sep or not user:
                raise ValueError("BYOM_BASIC_AUTH must be USER:PASSWORD")
            basic_auth = (user, password)
        secret = environ.get("BYOM_AUTH_SECRET") or None
        header = environ.get("BYOM_AUTH_HEADER") or None
        if secret and not header:
            header = "X-BYOM-Secret"
        if header and not secret:
            raise ValueError(f"BYOM_AUTH_HEADER is {header!r} but BYOM_AUTH_SECRET is empty")
        log_path: Path | None = Path(environ.get("BYOM_REQUEST_LOG") or home / "requests.sqlite3").expanduser()
        if _flag(environ.get("BYOM_NO_REQUEST_LOG")):
            log_path = None
        defaults = cls(config_path=home, request_log_path=None)
        extra = tuple(m.strip() for m in (environ.get("BYOM_EXTRA_MODELS") or "").split(",") if m.strip())
        networks = tuple(n.strip() for n in (environ.get("BYOM_URL_ALLOW_NETWORKS") or "").split(",") if n.strip())
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"BYOM_URL_ALLOW_NETWORKS: {network!r} is not a network like 10.1.2.0/24") from None
        log_level = (environ.get("BYOM_LOG_LEVEL") or defaults.log_level).lower()
        if log_level not in LOG_LEVELS:
            raise ValueError(f"BYOM_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        return cls(
            config_path=Path(environ.get("BYOM_CONFIG") or home / "config.json").expanduser(),
            request_log_path=log_path,
            basic_auth=basic_auth,
            auth_header=header,
            auth_secret=secret,
            max_body_bytes=int(environ.get("BYOM_MAX_BODY_BYTES") or defaults.max_body_bytes),
            max_download_bytes=int(environ.get("BYOM_MAX_DOWNLOAD_BYTES") or defaults.max_download_bytes),
            max_image_pixels=int(environ.get("BYOM_MAX_IMAGE_PIXELS") or defaults.max_image_pixels),
            max_image_side_px=int(environ.get("BYOM_MAX_IMAGE_SIDE_PX") or defaults.max_image_side_px),
            url_timeout_s=float(environ.get("BYOM_URL_TIMEOUT") or defaults.url_timeout_s),
            url_max_redirects=int(environ.get("BYOM_URL_MAX_REDIRECTS") or defaults.url_max_redirects),
            allow_private_urls=_flag(environ.get("BYOM_ALLOW_PRIVATE_URLS")),
            url_allowed_networks=networks,
            request_log_size=int(environ.get("BYOM_REQUEST_LOG_SIZE") or defaults.request_log_size),
            extra_models=extra,
            preload_models=_flag(environ.get("BYOM_PRELOAD_MODELS", "1")),
            log_level=log_level,
        )
