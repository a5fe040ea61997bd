"""Run the inference API alone, under gunicorn.

V7 calls POST /infer (or /api/infer) and GET /classes on the default endpoint, and
POST /models/NAME/infer and GET /models/NAME/classes for one model. GET /models lists them.
Options can also come from the environment (BYOM_BASIC_AUTH, BYOM_AUTH_HEADER, BYOM_AUTH_SECRET,
BYOM_CONFIG, BYOM_MODEL_DIR, BYOM_ALLOW_PRIVATE_URLS, ...); options win over the environment.

Your own models are served beside the built-ins: --model-file my_model.py, --model my_pkg.my_model[:MyModel]
(both repeatable; or BYOM_EXTRA_MODELS="a.py,pkg.mod"), and every installed package with a
"byom_playground.models" entry point. A plug-in named here that cannot be loaded, or a model name used
twice, stops `serve` before it starts; see README "Bring your own model" and docs/MODEL_API.md.
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
        "--threads",
        type=int,
        default=int(os.environ.get("BYOM_THREADS", "1")),
        help="threads per worker (default: 1, one request at a time per worker, which spreads requests over the "
        "workers by load; more threads keep a worker serving while image URLs download slowly)",
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
        "--allow-url-network",
        action="append",
        default=[],
        metavar="CIDR",
        help="let image.url reach this network besides public addresses, e.g. an internal image store "
        "10.1.2.0/24 (repeatable; or BYOM_URL_ALLOW_NETWORKS=a,b)",
    )
    group.add_argument(
        "--url-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="whole-download deadline for image.url: DNS, connect, headers and body (default: 10; "
        "V7 gives the whole request 30)",
    )
    group.add_argument(
        "--model-file",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="also serve the model classes of this Python file, under /models/NAME/ (repeatable; "
        "README: 'Bring your own model')",
    )
    group.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="MODULE[:CLASS]",
        help="also serve the model classes of this importable module, or only CLASS (repeatable); "
        "installed packages with a 'byom_playground.models' entry point are served without any option",
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
    networks = [n for n in (env.get("BYOM_URL_ALLOW_NETWORKS") or "").split(",") if n.strip()]
    networks += getattr(args, "allow_url_network", None) or []
    if networks:
        env["BYOM_URL_ALLOW_NETWORKS"] = ",".join(dict.fromkeys(n.strip() for n in networks))
    if getattr(args, "url_timeout", None) is not None:
        env["BYOM_URL_TIMEOUT"] = str(args.url_timeout)
    extra_models = extra_model_sources(args, env)
    if extra_models:
        env["BYOM_EXTRA_MODELS"] = ",".join(extra_models)
    # --model names a module as `python -m` would find it: from the current folder too.
    module_dirs = [os.getcwd()] if getattr(args, "model", None) else []
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH"), *module_dirs) if p)
    return env


def extra_model_sources(args: argparse.Namespace, env: dict[str, str]) -> list[str]:
    """BYOM_EXTRA_MODELS, then --model-file and --model; file paths made absolute (workers run elsewhere)."""
    from models.plugins import absolute_source, parse_sources

    files = [str(path.expanduser().resolve()) for path in getattr(args, "model_file", None) or []]
    sources = [*parse_sources(env.get("BYOM_EXTRA_MODELS", "")), *files, *(getattr(args, "model", None) or [])]
    return list(dict.fromkeys(absolute_source(s) for s in sources))


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
    """Refuse bad auth settings (a worker would fail to boot) and broken plug-ins before gunicorn starts."""
    from server.settings import Settings

    try:
        Settings.from_env(env)
    except ValueError as exc:
        return str(exc)
    return check_plugins(env)


def check_plugins(env: dict[str, str]) -> str | None:
    """Load the plug-ins once, as the workers will; the problem when one named explicitly fails or a name clashes.

    In the workers a broken plug-in is only logged and shown in /health (the others keep serving);
    here, before anything started, failing fast with the reason is friendlier than a quiet log line.
    An installed package whose entry point fails is a warning only: nobody asked for it by name.
    """
    from models.plugins import discover, parse_sources
    from models.registry import BUILTIN_MODELS

    for entry in (env.get("PYTHONPATH") or "").split(os.pathsep):
        if entry and entry not in sys.path:
            sys.path.append(entry)  # import as the workers will (this process becomes gunicorn next)
    scan = discover(parse_sources(env.get("BYOM_EXTRA_MODELS") or ""), reserved_names=BUILTIN_MODELS)
    for plugin in scan.models:
        print(f"plug-in model {plugin.name!r} from {plugin.source}", file=sys.stderr)
    for failure in scan.failures:
        if not failure.fatal:
            print(f"WARNING: {failure} (serving the other models)", file=sys.stderr)
    fatal = [str(f) for f in scan.failures if f.fatal]
    return "\n".join(fatal) if fatal else None


def warn_if_open(host: str, env: dict[str, str]) -> bool:
    """Print a loud warning when a non-loopback address is served without auth; True if it did.

    It also marks `env` so that gunicorn (server/gunicorn_conf.py, which warns when started any
    other way) does not say it twice.
    """
    if is_loopback(host):
        return False
    if not (env.get("BYOM_BASIC_AUTH") or env.get("BYOM_AUTH_SECRET")):
        print(
            f"WARNING: listening on {host} with NO authentication: anyone who can reach this port can use the "
            "models. Set --basic-auth USER:PASSWORD or --auth-header NAME --auth-secret SECRET.",
            file=sys.stderr,
        )
        env["BYOM_OPEN_WARNING_SHOWN"] = "1"
        return True
    return False


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
