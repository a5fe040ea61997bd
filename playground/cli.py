"""Start the API (gunicorn) and the playground UI (Streamlit) together; Ctrl-C stops both.

  python run.py                                   API on 127.0.0.1:8000, UI on 127.0.0.1:8501
  python run.py --api-port 9000 --ui-port 9501    other ports
  python run.py --host 0.0.0.0 --basic-auth me:secret     API reachable from other machines (use auth)

Missing model files are downloaded first (progress on the terminal); offline, the models that lack
files show as unavailable and the others work. The UI listens on 127.0.0.1 unless --ui-host says
otherwise: it can change the server's class mapping, so keep it private. With the API on loopback,
image.url may point at local addresses (--allow-private-urls), so that the UI and its self-check can
send V7-style presigned URLs served from this machine.
"""

from __future__ import annotations

import argparse
import signal
import sys

from server.cli import (
    add_server_arguments,
    check_settings,
    gunicorn_command,
    is_loopback,
    server_environment,
    warn_if_open,
)

API_START_TIMEOUT_S = 90.0
UI_START_TIMEOUT_S = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the API listens on (default: 127.0.0.1; 0.0.0.0 for all interfaces)",
    )
    parser.add_argument("--api-port", type=int, default=8000, help="API port (default: 8000)")
    parser.add_argument("--ui-host", default="127.0.0.1", help="address the UI listens on (default: 127.0.0.1)")
    parser.add_argument("--ui-port", type=int, default=8501, help="UI port (default: 8501)")
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="do not download missing model files at start (those models show as unavailable)",
    )
    add_server_arguments(parser)


def pull_missing_model_files(api_url: str, headers: dict[str, str]) -> None:
    """Download every file the API's models lack into the cache it reads; failures are reported, not fatal."""
    import requests

    from models.base import ModelFile
    from models.files import ModelDownloadError, ModelFileLocator, TerminalProgress

    try:
        listing = requests.get(f"{api_url}/models", headers=headers, timeout=30).json()
    except (requests.RequestException, ValueError) as exc:
        print(f"could not list the models to fetch their files: {exc}", file=sys.stderr)
        return
    locator = ModelFileLocator.from_env()
    seen = set()
    for model in listing.get("models", []):
        for entry in model.get("files", []):
            model_file = ModelFile(entry["name"], entry["url"], entry.get("sha256"))
            if model_file.name in seen or locator.find(model_file) is not None:
                continue
            seen.add(model_file.name)
            print(
                f"downloading {model_file.name} for {model['name']} from {locator.download_url(model_file)}",
                file=sys.stderr,
            )
            progress = TerminalProgress(f"  {model_file.name}")
            try:
                locator.ensure(model_file, download=True, progress=progress)
            except ModelDownloadError as exc:
                print(
                    f"  {exc}\n  continuing: models that need {model_file.name} show as unavailable "
                    "(python run.py models pull retries)",
                    file=sys.stderr,
                )
            finally:
                progress.finish()


def main(args: argparse.Namespace) -> int:
    from playground import processes
    from playground.client import Credentials

    env = server_environment(args, args.host, args.api_port)
    if is_loopback(args.host):
        env["BYOM_ALLOW_PRIVATE_URLS"] = "1"  # the UI serves presigned-style URLs from this machine
    problem = check_settings(env)
    if args.api_port == args.ui_port:
        problem = problem or "the API and the UI need different ports"
    for host, port in ((args.host, args.api_port), (args.ui_host, args.ui_port)):
        problem = problem or processes.port_problem(host, port)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    warn_if_open(args.host, env)

    api_url = processes.http_url(args.host, args.api_port)
    ui_url = processes.http_url(args.ui_host, args.ui_port)
    children: list[processes.Child] = []
    previous_handler = signal.signal(signal.SIGTERM, processes.raise_stop)
    try:
        api = processes.start_child("API", gunicorn_command(), env)
        children.append(api)
        processes.wait_until_answering(f"{api_url}/health", api, API_START_TIMEOUT_S)
        if not args.no_download:
            pull_missing_model_files(api_url, Credentials.from_env(env).headers())
        ui_env = processes.ui_environment(env, api_url, local_api=True)
        ui = processes.start_child("UI", processes.streamlit_command(args.ui_host, args.ui_port), ui_env)
        children.append(ui)
        processes.wait_until_answering(f"{ui_url}/_stcore/health", ui, UI_START_TIMEOUT_S)
        print(
            f"\nbyom-playground is running:\n  UI   {ui_url}\n  API  {api_url}  (POST /infer, GET /classes)\n"
            "Press Ctrl-C to stop both.",
            flush=True,
        )
        stopped = processes.wait_for_first_exit(children)
        print(
            f"\nthe {stopped.name} stopped (exit code {stopped.process.returncode}); stopping the rest", file=sys.stderr
        )
        return stopped.process.returncode or 1
    except (KeyboardInterrupt, processes.Stop):
        print("\nstopping…", file=sys.stderr)
        return 0
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        processes.stop_all(children)
        signal.signal(signal.SIGTERM, previous_handler)
