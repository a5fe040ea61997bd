"""Model file lookup and downloads, against a real HTTP server on 127.0.0.1 (no other network)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from models.base import ModelFile
from models.files import ModelDownloadError, ModelFileLocator, TerminalProgress


class FileServer:
    """Serves `files` (URL path without the leading slash -> bytes) and records every request path.

    Paths listed in `short` send half of the body under the full Content-Length and close; paths
    in `hang` send nothing until the test ends.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.short: set[str] = set()
        self.hang: set[str] = set()
        self.requests: list[str] = []
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                key = self.path.lstrip("/")
                if key in owner.hang:
                    owner.release.wait(10)
                    return
                body = owner.files.get(key)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if key in owner.short:
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("BYOM_MODEL_BASE_URL", raising=False)


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


@pytest.fixture
def dead_port():
    """A port on 127.0.0.1 that is bound (so nobody else takes it) but not listening: connections are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serve(server: FileServer, name: str, data: bytes, *, pin: bool = True, size: bool = True) -> ModelFile:
    server.files[name] = data
    return ModelFile(name, server.url(name), sha256(data) if pin else None, len(data) if size else None)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_download_lands_in_cache_with_right_bytes_and_progress(server, tmp_path):
    data = payload(700_000)
    model_file = serve(server, "model.tflite", data)
    cache = tmp_path / "cache"  # created by the download
    seen: list[tuple[int, int | None]] = []

    path = ModelFileLocator(None, cache).download(model_file, progress=lambda d, t: seen.append((d, t)))

    assert path == cache / "model.tflite"
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(cache)) == ["model.tflite"]  # no temporary file left
    assert len(seen) >= 3  # 0, then more than one chunk of 256 KiB
    counts = [d for d, _ in seen]
    assert counts == sorted(counts) and counts[0] == 0
    assert seen[-1] == (len(data), len(data))
    assert {t for _, t in seen} == {len(data)}
    assert server.requests == ["/model.tflite"]


def test_unpinned_file_is_used_as_it_comes(server, tmp_path):
    model_file = serve(server, "free.task", b"anything", pin=False, size=False)
    path = ModelFileLocator(None, tmp_path).download(model_file)
    assert path.read_bytes() == b"anything"


def test_checksum_mismatch_raises_and_leaves_nothing(server, tmp_path):
    data = payload(50_000)
    server.files["model.task"] = data
    wrong = "ab" * 32
    model_file = ModelFile("model.task", server.url("model.task"), wrong)

    with pytest.raises(ModelDownloadError) as info:
        ModelFileLocator(None, tmp_path).download(model_file)

    message = str(info.value)
    assert "checksum mismatch" in message
    assert wrong in message and sha256(data) in message
    assert "model.task" in message and server.url("model.task") in message
    assert info.value.file_name == "model.task" and info.value.url == server.url("model.task")
    assert isinstance(info.value, RuntimeError)
    assert os.listdir(tmp_path) == []  # neither the final name nor a temporary file


def test_failed_download_keeps_an_existing_file_untouched(server, tmp_path):
    (tmp_path / "model.task").write_bytes(b"old good copy")
    server.files["model.task"] = b"new bytes"
    model_file = ModelFile("model.task", server.url("model.task"), "0" * 64)
    with pytest.raises(ModelDownloadError):
        ModelFileLocator(None, tmp_path).download(model_file)
    assert (tmp_path / "model.task").read_bytes() == b"old good copy"
    assert os.listdir(tmp_path) == ["model.task"]


def test_size_mismatch_raises(server, tmp_path):
    server.files["model.task"] = b"12345"
    model_file = ModelFile("model.task", server.url("model.task"), None, size_bytes=6)
    with pytest.raises(ModelDownloadError, match="size mismatch: 6 bytes expected, 5 received"):
        ModelFileLocator(None, tmp_path).download(model_file)
    assert os.listdir(tmp_path) == []


def test_checksum_and_size_both_wrong_reports_the_checksum_with_sizes(server, tmp_path):
    server.files["model.task"] = b"12345"
    model_file = ModelFile("model.task", server.url("model.task"), "0" * 64, size_bytes=229_746)
    with pytest.raises(ModelDownloadError) as info:
        ModelFileLocator(None, tmp_path).download(model_file)
    assert str(info.value).endswith(
        f"checksum mismatch: expected SHA-256 {'0' * 64}, got {sha256(b'12345')} (229746 bytes expected, 5 received)"
    )
    assert os.listdir(tmp_path) == []


def test_http_404_raises_with_the_status(server, tmp_path):
    model_file = ModelFile("gone.task", server.url("gone.task"))
    with pytest.raises(ModelDownloadError, match=r"HTTP 404") as info:
        ModelFileLocator(None, tmp_path).download(model_file)
    assert "gone.task" in str(info.value) and server.url("gone.task") in str(info.value)
    assert os.listdir(tmp_path) == []


def test_server_down_raises_quickly_with_a_clear_message(dead_port, tmp_path):
    url = f"http://127.0.0.1:{dead_port}/model.task"
    started = time.monotonic()
    with pytest.raises(ModelDownloadError) as info:
        ModelFileLocator(None, tmp_path).download(ModelFile("model.task", url))
    assert time.monotonic() - started < 5
    assert str(info.value) == (
        f"could not download model.task from {url}: connection refused (is the server running and the URL right?)"
    )
    assert os.listdir(tmp_path) == []


def test_body_shorter_than_content_length_raises(server, tmp_path):
    model_file = serve(server, "cut.task", payload(400_000), pin=False, size=False)
    server.short.add("cut.task")
    with pytest.raises(ModelDownloadError, match="connection closed before the end of the file"):
        ModelFileLocator(None, tmp_path).download(model_file)
    assert os.listdir(tmp_path) == []


def test_silent_server_times_out(server, tmp_path):
    model_file = serve(server, "slow.task", b"never sent", pin=False)
    server.hang.add("slow.task")
    started = time.monotonic()
    with pytest.raises(ModelDownloadError, match=r"timed out after 0.5 s"):
        ModelFileLocator(None, tmp_path).download(model_file, timeout_s=0.5)
    assert time.monotonic() - started < 3
    assert os.listdir(tmp_path) == []


def test_unwritable_cache_raises_download_error(server, tmp_path):
    model_file = serve(server, "model.task", b"data")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(ModelDownloadError, match="cannot create the cache folder"):
        ModelFileLocator(None, blocker / "cache").download(model_file)
    assert server.requests == []


def test_file_in_model_dir_is_used_as_is_without_any_request(server, tmp_path):
    model_dir, cache = tmp_path / "models", tmp_path / "cache"
    model_dir.mkdir()
    (model_dir / "model.task").write_bytes(b"the user's own bundle")  # does not match the pin: still used
    model_file = serve(server, "model.task", payload(1000))
    (cache).mkdir()
    (cache / "model.task").write_bytes(b"cached copy")

    locator = ModelFileLocator(model_dir, cache)
    assert locator.find(model_file) == model_dir / "model.task"
    assert locator.ensure(model_file) == model_dir / "model.task"
    assert server.requests == []


def test_file_in_cache_is_used_as_is_without_any_request(server, tmp_path):
    model_file = serve(server, "model.task", payload(1000))
    (tmp_path / "model.task").write_bytes(b"something else")
    assert ModelFileLocator(None, tmp_path).ensure(model_file) == tmp_path / "model.task"
    assert server.requests == []


def test_ensure_downloads_into_cache_and_never_writes_model_dir(server, tmp_path):
    model_dir, cache = tmp_path / "models", tmp_path / "cache"
    model_dir.mkdir()
    (model_dir / "other.tflite").write_bytes(b"unrelated")
    data = payload(300_000)
    model_file = serve(server, "model.task", data)
    model_dir.chmod(0o555)  # read-only (root ignores this: the snapshot below is the real check)
    before = snapshot(model_dir)
    try:
        path = ModelFileLocator(model_dir, cache).ensure(model_file)
        path_again = ModelFileLocator(model_dir, cache).ensure(model_file)
    finally:
        model_dir.chmod(0o755)
    assert path == path_again == cache / "model.task"
    assert path.read_bytes() == data
    assert snapshot(model_dir) == before
    assert server.requests == ["/model.task"]  # the second ensure found the cached file


def test_ensure_without_download_says_what_to_fetch(server, tmp_path):
    model_file = serve(server, "model.task", b"x")
    with pytest.raises(FileNotFoundError) as info:
        ModelFileLocator(tmp_path / "models", tmp_path / "cache").ensure(model_file, download=False)
    assert model_file.url in str(info.value) and "python run.py models pull" in str(info.value)
    assert server.requests == []


def test_base_url_override_from_env(server, dead_port, tmp_path, monkeypatch):
    data = payload(20_000)
    server.files["mirror/model.task"] = data
    official = f"http://127.0.0.1:{dead_port}/official/float16/1/model.task"  # unreachable on purpose
    model_file = ModelFile("model.task", official, sha256(data), len(data))
    monkeypatch.setenv("BYOM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BYOM_MODEL_DIR", str(tmp_path / "models"))

    assert ModelFileLocator.from_env().download_url(model_file) == official
    monkeypatch.setenv("BYOM_MODEL_BASE_URL", server.url("mirror") + "/")  # trailing slash is fine
    locator = ModelFileLocator.from_env()
    assert locator.download_url(model_file) == server.url("mirror/model.task")
    assert server.url("mirror/model.task") in locator.describe_missing(model_file)

    path = locator.ensure(model_file)
    assert path == tmp_path / "cache" / "model.task" and path.read_bytes() == data
    assert server.requests == ["/mirror/model.task"]


def test_concurrent_downloads_of_the_same_file_do_not_corrupt_it(server, tmp_path):
    data = payload(2_000_000)
    model_file = serve(server, "model.task", data)
    locator = ModelFileLocator(None, tmp_path)
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            locator.download(model_file)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (tmp_path / "model.task").read_bytes() == data
    assert os.listdir(tmp_path) == ["model.task"]
    assert len(server.requests) == 4


def test_stale_temporary_files_are_cleaned_but_fresh_ones_kept(server, tmp_path):
    model_file = serve(server, "model.task", b"data")
    stale, fresh = tmp_path / ".model.task.old1.part", tmp_path / ".model.task.new1.part"
    stale.write_bytes(b"left by a killed download")
    fresh.write_bytes(b"maybe another process right now")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (two_days_ago, two_days_ago))
    ModelFileLocator(None, tmp_path).download(model_file)
    assert sorted(os.listdir(tmp_path)) == sorted([fresh.name, "model.task"])


def test_five_megabyte_download(server, tmp_path):
    data = payload(5_000_000, seed=5)
    model_file = serve(server, "big.task", data)
    started = time.monotonic()
    path = ModelFileLocator(None, tmp_path).download(model_file)
    seconds = time.monotonic() - started
    assert path.read_bytes() == data
    assert seconds < 20  # loopback: well under a second is normal


def test_terminal_progress_plain_lines_every_ten_percent():
    out = io.StringIO()
    progress = TerminalProgress("model.task", out, tty=False)
    total = 1_000_000
    for done in range(0, total + 1, 25_000):
        progress(done, total)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 0 %, 10 %, ... 100 %
    assert lines[0].startswith("model.task:   0% 0.0/1.0 MB")
    assert lines[-1].startswith("model.task: 100% 1.0/1.0 MB") and lines[-1].endswith("MB/s")


def test_terminal_progress_tty_redraws_one_line():
    out = io.StringIO()
    progress = TerminalProgress("model.task", out, tty=True)
    progress(0, 2_000_000)
    progress(2_000_000, 2_000_000)
    progress(2_000_000, 2_000_000)  # after the end: ignored
    progress.finish()
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    assert "100% 2.0/2.0 MB" in text


def test_terminal_progress_unknown_size():
    out = io.StringIO()
    progress = TerminalProgress("model.task", out, tty=False)
    for done in range(0, 25_000_001, 1_000_000):
        progress(done, None)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # 0, 10 and 20 MB
    assert lines[-1].startswith("model.task: 20.0 MB")
