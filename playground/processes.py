"""Starting and stopping the API and the UI as child processes, for `python run.py` and `run.py ui`.

Each child runs in its own session (process group), so that stopping one also stops what it forked
(gunicorn's workers) and a terminal's Ctrl-C reaches only this supervisor, which then stops both in
order. Nothing here imports Streamlit or the models.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

PROJECT_DIR = Path(__file__).resolve().parent.parent
APP_PATH = PROJECT_DIR / "playground" / "app.py"
STOP_TIMEOUT_S = 25.0


def streamlit_command(host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        f"--server.address={host}",
        f"--server.port={port}",
        "--server.headless=true",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        "--client.toolbarMode=minimal",
    ]  # fmt: skip


def ui_environment(base: Mapping[str, str], api_url: str, *, local_api: bool) -> dict[str, str]:
    env = dict(base)
    env["BYOM_PLAYGROUND_API_URL"] = api_url
    env["BYOM_PLAYGROUND_LOCAL_API"] = "1" if local_api else "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_DIR), env.get("PYTHONPATH")) if p)
    return env


def connect_host(host: str) -> str:
    """Where to reach a server bound to `host` from this machine (0.0.0.0 means any: use loopback)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def http_url(host: str, port: int) -> str:
    host = connect_host(host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def port_problem(host: str, port: int) -> str | None:
    """Why `port` cannot be listened on at `host` (None when it is free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


@dataclass
class Child:
    name: str
    process: subprocess.Popen

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to the child's process group (gunicorn lets requests finish), SIGKILL after `timeout_s`."""
        if not self.alive():
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


def start_child(name: str, command: Sequence[str], env: Mapping[str, str]) -> Child:
    process = subprocess.Popen(list(command), env=dict(env), cwd=PROJECT_DIR, start_new_session=True)
    return Child(name, process)


def wait_until_answering(url: str, child: Child, timeout_s: float, headers: Mapping[str, str] | None = None) -> None:
    """Poll `url` until it answers 200; raises RuntimeError if the child dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"the {child.name} exited with code {child.process.returncode} while starting")
        try:
            if requests.get(url, timeout=2, headers=dict(headers or {})).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.15)
    raise RuntimeError(f"the {child.name} did not answer {url} within {timeout_s:g} s")


class Stop(Exception):
    """Raised from the SIGTERM handler so that the supervisor's cleanup runs."""


def raise_stop(_signum, _frame) -> None:
    raise Stop


def wait_for_first_exit(children: Sequence[Child], poll_s: float = 0.3) -> Child:
    """Block until one of the children exits, and return it."""
    while True:
        for child in children:
            if not child.alive():
                return child
        time.sleep(poll_s)


def stop_all(children: Sequence[Child]) -> None:
    for child in reversed(children):  # the UI first, then the API it talks to
        child.stop()
