"""Run the playground UI alone, against any BYOM endpoint: this project's API or anyone's.

  python run.py ui                                     against http://127.0.0.1:8000
  python run.py ui --api-url https://my-model.example.com --auth-header X-MY-AUTH --auth-secret S

The UI calls the endpoint as V7 does (POST /infer, GET /classes). With another project's endpoint
the Try and Register tabs work; class mapping and the requests log need this project's server.
Credentials can also come from BYOM_BASIC_AUTH, BYOM_AUTH_HEADER and BYOM_AUTH_SECRET.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-url",
        default=os.environ.get("BYOM_PLAYGROUND_API_URL", "http://127.0.0.1:8000"),
        help="base URL of the endpoint (default: $BYOM_PLAYGROUND_API_URL or http://127.0.0.1:8000)",
    )
    parser.add_argument("--ui-host", default="127.0.0.1", help="address the UI listens on (default: 127.0.0.1)")
    parser.add_argument("--ui-port", type=int, default=8501, help="UI port (default: 8501)")
    parser.add_argument(
        "--basic-auth", metavar="USER:PASSWORD", default=None, help="HTTP Basic credentials to call the endpoint with"
    )
    parser.add_argument("--auth-header", metavar="NAME", default=None, help="header carrying the secret")
    parser.add_argument("--auth-secret", metavar="SECRET", default=None, help="secret to send in --auth-header")


def main(args: argparse.Namespace) -> int:
    from playground import processes

    if not args.api_url.startswith(("http://", "https://")):
        print(f"error: --api-url must start with http:// or https://, got {args.api_url!r}", file=sys.stderr)
        return 2
    problem = processes.port_problem(args.ui_host, args.ui_port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    env = processes.ui_environment(os.environ, args.api_url.rstrip("/"), local_api=False)
    for key, value in (
        ("BYOM_BASIC_AUTH", args.basic_auth),
        ("BYOM_AUTH_HEADER", args.auth_header),
        ("BYOM_AUTH_SECRET", args.auth_secret),
    ):
        if value is not None:
            env[key] = value
    print(
        f"byom-playground UI on {processes.http_url(args.ui_host, args.ui_port)}, calling {args.api_url}",
        file=sys.stderr,
        flush=True,
    )
    os.execvpe(sys.executable, processes.streamlit_command(args.ui_host, args.ui_port), env)
    return 0  # not reached
