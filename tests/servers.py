"""Real servers for tests: the API under gunicorn on a free loopback port, and a picture server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

PROJECT_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen | None = None, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before it was healthy")
        try:
            response = requests.get(f"{url}/health", timeout=2)
            if response.status_code == 200:
                return response.json()
        except requests.RequestException as exc:
            last_error = exc
        time.sleep(0.2)
    raise RuntimeError(f"{url} not healthy within {timeout_s} s: {last_error}")


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_api(tmp_dir: Path, *args: str, env: dict[str, str] | None = None, workers: int = 2) -> RunningServer:
    """`python run.py serve` on a free port, with its home (config, requests log) in tmp_dir."""
    port = free_port()
    full_env = {**os.environ, "BYOM_HOME": str(tmp_dir), **(env or {})}
    log_path = tmp_dir / f"gunicorn-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "run.py"), "serve", "--port", str(port), "--workers", str(workers), *args],
        cwd=PROJECT_DIR,
        env=full_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_for_health(server.url, process)
    except Exception:
        server.stop()
        raise RuntimeError(f"the API did not start:\n{server.log()}") from None
    return server


@dataclass
class PictureServer:
    """A local HTTP server for image.url tests: routes map a path to (status, headers, body)."""

    routes: dict[str, Callable[[BaseHTTPRequestHandler], None]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                outer.hits.append(self.path)
                route = outer.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                route(self)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add_bytes(self, path: str, body: bytes, content_type: str = "image/png", status: int = 200) -> str:
        def route(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        self.routes[path] = route
        return self.url + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
