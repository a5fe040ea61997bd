"""Run the inference API alone, under gunicorn.

V7 calls POST /infer (or /api/infer) and GET /classes on the default endpoint, and
POST /models/NAME/infer and GET /models/NAME/classes for one model. GET /models lists them.
Options can also come from the environment (BYOM_BASIC_AUTH, BYOM_AUTH_HEADER, BYOM_AUTH_SECRET,
BYOM_CONFIG, BYOM_MODEL_DIR, BYOM_ALLOW_PRIVATE_URLS, ...); options win over the environment.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `serve` and the playground's own API process."""
    group = parser.add_argument_group("API server")
    group.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("BYOM_WORKERS", "2")),
        help="gunicorn worker processes (default: 2, one per core here)",
    )
    group.add_argument(
        "--threads", type=int, default=int(os.environ.get("BYOM_THREADS", "4")), help="threads per worker (default: 4)"
    )
    group.add_argument(
        "--config",
        type=Path,
        default=None,
        help="class-mapping file (default: $BYOM_CONFIG or ~/.byom-playground/config.json)",
    )
    group.add_argument(
        "--basic-auth", metavar="USER:PASSWORD", default=None, help="require HTTP Basic auth (or BYOM_BASIC_AUTH)"
    )
    group.add_argument(
        "--auth-header",
        metavar="NAME",
        default=None,
        help="header carrying the secret, e.g. X-MY-AUTH (or BYOM_AUTH_HEADER)",
    )
    group.add_argument(
        "--auth-secret",
        metavar="SECRET",
        default=None,
        help="require this secret in --auth-header (or BYOM_AUTH_SECRET)",
    )
    group.add_argument(
        "--no-request-log", action="store_true", help="do not keep the log of recent requests (GET /requests)"
    )
    group.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="let image.url point at loopback/private addresses (for local use only)",
    )
    group.add_argument(
        "--log-level",
        default=os.environ.get("BYOM_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log level (default: info)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all interfaces)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    add_server_arguments(parser)


def server_environment(args: argparse.Namespace, host: str, port: int) -> dict[str, str]:
    """The environment gunicorn and its workers run with: options become BYOM_* variables."""
    env = dict(os.environ)
    env["BYOM_BIND"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    env["BYOM_WORKERS"] = str(args.workers)
    env["BYOM_THREADS"] = str(args.threads)
    env["BYOM_LOG_LEVEL"] = args.log_level
    if args.config is not None:
        env["BYOM_CONFIG"] = str(args.config.expanduser().resolve())
    if args.basic_auth is not None:
        env["BYOM_BASIC_AUTH"] = args.basic_auth
    if args.auth_header is not None:
        env["BYOM_AUTH_HEADER"] = args.auth_header
    if args.auth_secret is not None:
        env["BYOM_AUTH_SECRET"] = args.auth_secret
    if args.no_request_log:
        env["BYOM_NO_REQUEST_LOG"] = "1"
    if args.allow_private_urls:
        env["BYOM_ALLOW_PRIVATE_URLS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH")) if p)
    return env


def gunicorn_command() -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        str(PROJECT_DIR / "server" / "gunicorn_conf.py"),
        "--chdir",
        str(PROJECT_DIR),
        "server.wsgi:app",
    ]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_settings(env: dict[str, str]) -> str | None:
    """Refuse bad auth settings before gunicorn starts (a worker would fail to boot)."""
    from server.settings import Settings

    try:
        Settings.from_env(env)
    except ValueError as exc:
        return str(exc)
    return None


def warn_if_open(host: str, env: dict[str, str]) -> None:
    if is_loopback(host):
        return
    if not (env.get("BYOM_BASIC_AUTH") or env.get("BYOM_AUTH_SECRET")):
        print(
            f"WARNING: listening on {host} with NO authentication: anyone who can reach this port can use the "
            "models. Set --basic-auth USER:PASSWORD or --auth-header NAME --auth-secret SECRET.",
            file=sys.stderr,
        )


def main(args: argparse.Namespace) -> int:
    env = server_environment(args, args.host, args.port)
    problem = check_settings(env)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    warn_if_open(args.host, env)
    print(
        f"byom-playground API on http://{args.host}:{args.port} (POST /infer, GET /classes, GET /models)",
        file=sys.stderr,
    )
    os.execvpe(sys.executable, gunicorn_command(), env)
    return 0  # not reached
