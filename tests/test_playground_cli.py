"""`python run.py`: the API and the UI start together, answer, and stop together (Ctrl-C, or one dies)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.servers import PictureServer, free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass
class Playground:
    """`python run.py` running in its own session; its output is collected line by line."""

    process: subprocess.Popen
    api_url: str
    ui_url: str
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)

    def interrupt(self, timeout_s: float = 40) -> int:
        """Ctrl-C, as a terminal sends it to the launcher."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)  # the launcher's session, children included
            raise


def start_playground(home: Path, *args: str, env: dict[str, str] | None = None, timeout_s: float = 90) -> Playground:
    api_port, ui_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-u", str(PROJECT_DIR / "run.py"), "--api-port", str(api_port), "--ui-port", str(ui_port),
         "--workers", "1", *args],
        cwd=PROJECT_DIR, env={**os.environ, "BYOM_HOME": str(home), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    playground = Playground(process, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}")
    ready = threading.Event()

    def read() -> None:
        for line in process.stdout:
            playground.lines.append(line)
            if "Press Ctrl-C" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout_s) or process.poll() is not None:
        playground.interrupt()
        raise RuntimeError(f"python run.py did not start:\n{playground.output()}")
    return playground


def refused(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return True
    return False


FAST = {"BYOM_PRELOAD_MODELS": "0"}  # these tests run no model


def test_starts_both_prints_both_urls_and_stops_both_on_ctrl_c(tmp_path):
    playground = start_playground(tmp_path, "--no-download", env=FAST)
    try:
        assert f"UI   {playground.ui_url}" in playground.output()
        assert f"API  {playground.api_url}" in playground.output()
        health = requests.get(f"{playground.api_url}/health", timeout=5).json()
        assert health["healthy"] is True and health["request_log"] is True
        assert requests.get(f"{playground.ui_url}/_stcore/health", timeout=5).text == "ok"
        # the self-check serves pictures from this machine: the launcher allows local image URLs
        answer = requests.post(f"{playground.api_url}/infer", json={"image": {"url": "http://127.0.0.1:1/x.png"}},
                               timeout=10).json()  # fmt: skip
        assert "non-public" not in answer["error"]
    finally:
        code = playground.interrupt()
    assert code == 0, playground.output()
    assert refused(f"{playground.api_url}/health") and refused(f"{playground.ui_url}/_stcore/health")


def test_stops_the_ui_when_the_api_dies(tmp_path):
    playground = start_playground(tmp_path, "--no-download", env=FAST)
    try:
        children = subprocess.run(["pgrep", "-P", str(playground.process.pid)], capture_output=True, text=True)
        api_pid = int(children.stdout.split()[0])  # started first
        os.kill(api_pid, signal.SIGTERM)
        code = playground.process.wait(timeout=40)
    finally:
        playground.interrupt()
    assert code == 1
    assert "the API stopped" in playground.output()
    assert refused(f"{playground.ui_url}/_stcore/health")


def test_a_busy_port_is_reported_before_anything_starts(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, str(PROJECT_DIR / "run.py"), "--api-port", str(port)], cwd=PROJECT_DIR,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ui", "--api-url", "localhost:8000"], "must start with http:// or https://"),
        (["--basic-auth", "nocolon"], "USER:PASSWORD"),
        (["--api-port", "8123", "--ui-port", "8123"], "different ports"),
    ],
)
def test_bad_options_are_refused_with_a_reason(args, message):
    done = subprocess.run([sys.executable, str(PROJECT_DIR / "run.py"), *args], cwd=PROJECT_DIR, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and message in done.stderr


def test_help_describes_both_commands():
    for args, text in ((["--help"], "starts the API (gunicorn) and the playground UI"),
                       (["playground", "--help"], "--ui-port"), (["ui", "--help"], "--api-url")):  # fmt: skip
        done = subprocess.run([sys.executable, str(PROJECT_DIR / "run.py"), *args], capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0 and text in done.stdout


def test_missing_model_files_are_pulled_first_and_failures_do_not_stop_it(tmp_path):
    model_file = Path(os.environ["BYOM_MODEL_DIR"]) / "blaze_face_short_range.tflite"
    if not model_file.is_file():
        pytest.skip(f"{model_file} is absent")
    empty = tmp_path / "no-models"
    empty.mkdir()
    mirror = PictureServer()  # serves one file: every other download fails, as offline
    mirror.add_bytes(f"/{model_file.name}", model_file.read_bytes(), "application/octet-stream")
    env = {**FAST, "BYOM_MODEL_DIR": str(empty), "BYOM_MODEL_BASE_URL": mirror.url}
    try:
        playground = start_playground(tmp_path, env=env)
        try:
            models = requests.get(f"{playground.api_url}/health", timeout=5).json()["models"]
        finally:
            code = playground.interrupt()
    finally:
        mirror.close()
    output = playground.output()
    assert code == 0, output
    assert f"downloading {model_file.name}" in output
    assert "continuing: models that need face_landmarker.task show as unavailable" in output
    assert (Path(os.environ["BYOM_CACHE_DIR"]) / model_file.name).read_bytes() == model_file.read_bytes()
    assert models["mediapipe-face"]["available"] is True
    assert models["pose"]["available"] is False and models["opencv-face"]["available"] is True
