"""`python run.py models` and `models pull`, as subprocesses and in-process with a fake registry.

Downloads go to a local HTTP server on 127.0.0.1 (BYOM_MODEL_BASE_URL) that serves fake bytes for
any file name: pinned files must then fail their checksum, unpinned ones must land in the cache.
The expectations about the built-in models are read from `models --json`, so these tests follow
whatever adapters the tree holds (a model whose module does not import is an error line).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import models.cli as models_cli
from models.base import ClassSpec, Model, ModelFile, ModelSpec
from models.files import ModelFileLocator
from models.registry import BUILTIN_MODELS, ModelRegistry

PROJECT_DIR = Path(__file__).resolve().parent.parent


def fake_bytes(name: str) -> bytes:
    return f"fake content of {name}\n".encode() * 500


class FakeFileServer:
    """Serves fake_bytes(NAME) for any GET /NAME (404 for /missing/...) and records the paths asked for."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                if self.path.startswith("/missing/"):
                    self.send_error(404)
                    return
                body = fake_bytes(self.path.rsplit("/", 1)[-1])
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def shared_models(model_dir) -> Path:
    """The read-only folder of model files for tests (conftest's model_dir), as an absolute path."""
    return model_dir.resolve()


@pytest.fixture
def fake_server():
    server = FakeFileServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv("BYOM_MODEL_BASE_URL", raising=False)


def run_models(*args: str, model_dir: Path, cache_dir: Path, base_url: str | None = None):
    env = dict(os.environ)
    env.update(BYOM_MODEL_DIR=str(model_dir), BYOM_CACHE_DIR=str(cache_dir), NO_PROXY="127.0.0.1,localhost")
    env.pop("BYOM_MODEL_BASE_URL", None)
    if base_url is not None:
        env["BYOM_MODEL_BASE_URL"] = base_url
    return subprocess.run(
        [sys.executable, "run.py", "models", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def listing(model_dir: Path, cache_dir: Path, base_url: str | None = None) -> tuple[list[dict], int]:
    proc = run_models("--json", model_dir=model_dir, cache_dir=cache_dir, base_url=base_url)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout), proc.returncode


def is_pinned(file_entry: dict) -> bool:
    return file_entry["sha256"] is not None or file_entry["size_bytes"] is not None


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()} if folder.exists() else {}


def test_help_texts(tmp_path):
    proc = run_models("--help", model_dir=tmp_path, cache_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for words in ("pull", "--json", "BYOM_MODEL_DIR", "BYOM_MODEL_BASE_URL", "Exit status"):
        assert words in proc.stdout
    proc = run_models("pull", "--help", model_dir=tmp_path, cache_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "NAME" in proc.stdout and "--timeout" in proc.stdout and "SHA-256" in proc.stdout


def test_json_listing_with_the_shared_model_folder(shared_models, tmp_path):
    models, returncode = listing(shared_models, tmp_path / "cache")

    assert [m["name"] for m in models] == list(BUILTIN_MODELS)
    assert returncode == (1 if any(m["error"] for m in models) else 0)
    for model in models:
        if model["error"]:
            assert model["available"] is None and model["files"] == [] and model["description"] is None
            continue
        assert isinstance(model["description"], str) and model["description"]
        for entry in model["files"]:
            expected = shared_models / entry["name"]
            assert entry["status"] == ("found" if expected.is_file() else "missing")
            assert entry["path"] == (str(expected) if expected.is_file() else None)
            assert entry["url"].startswith("https://") and entry["download_url"] == entry["url"]
        assert model["available"] == all(e["status"] == "found" for e in model["files"])
    assert not (tmp_path / "cache").exists()  # listing writes nothing


def test_human_listing_shows_files_and_errors(shared_models, tmp_path):
    models, _ = listing(shared_models, tmp_path / "cache")
    proc = run_models(model_dir=shared_models, cache_dir=tmp_path / "cache")
    assert proc.returncode in (0, 1), proc.stderr
    out = proc.stdout
    assert f"BYOM_MODEL_DIR {shared_models}" in out
    for model in models:
        if model["error"]:
            assert f"{model['name']}: ERROR " in out
            continue
        assert f"{model['name']}: {'available' if model['available'] else 'NOT available'}" in out
        for entry in model["files"]:
            if entry["path"]:
                assert f"{entry['name']}: found at {entry['path']}" in out
            else:
                assert f"{entry['name']}: missing; fetch it from {entry['url']}" in out


def _manifest_stand_ins(model_dir: Path) -> set[str] | None:
    """File names the MANIFEST marks as not the official file ("same as official?" column starts with NO)."""
    manifest = model_dir / "MANIFEST.md"
    if not manifest.is_file():
        return None
    stand_ins = set()
    for line in manifest.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 5 and cells[-1].upper().startswith("NO"):
            stand_ins.add(cells[0])
    return stand_ins


def test_pins_are_official_never_the_stand_ins(shared_models, tmp_path):
    stand_ins = _manifest_stand_ins(shared_models)
    if stand_ins is None:
        pytest.skip("no MANIFEST.md in the model folder")
    models, _ = listing(shared_models, tmp_path / "cache")
    checked = 0
    for entry in (e for m in models for e in m["files"] if e["sha256"] and (shared_models / e["name"]).is_file()):
        actual = hashlib.sha256((shared_models / entry["name"]).read_bytes()).hexdigest()
        if entry["name"] in stand_ins:
            assert entry["sha256"].lower() != actual, f"{entry['name']}: pinned to the test stand-in's hash"
        else:
            assert entry["sha256"].lower() == actual, f"{entry['name']}: pin differs from the official file"
        checked += 1
    if not checked:
        pytest.skip("no built-in model pins a file present in the model folder yet")


def test_pull_with_the_shared_model_folder_downloads_nothing(shared_models, tmp_path, fake_server):
    models, _ = listing(shared_models, tmp_path / "cache")
    before = snapshot(shared_models)

    proc = run_models("pull", model_dir=shared_models, cache_dir=tmp_path / "cache", base_url=fake_server.base_url)

    errors = [m for m in models if m["error"]]
    missing = [e for m in models for e in m["files"] if e["status"] == "missing"]
    assert proc.returncode == (1 if errors or missing else 0), proc.stdout + proc.stderr
    for entry in (e for m in models for e in m["files"] if e["status"] == "found"):
        assert f"{entry['name']}: already present at {entry['path']}" in proc.stdout
    for model in errors:
        assert f"{model['name']}: ERROR" in proc.stdout
    if not missing:
        assert fake_server.requests == []
        assert snapshot(tmp_path / "cache") == {}
    assert snapshot(shared_models) == before


def test_pull_from_a_mirror_into_an_empty_model_folder(tmp_path, fake_server):
    model_dir, cache = tmp_path / "models", tmp_path / "cache"
    model_dir.mkdir()
    models, _ = listing(model_dir, cache, fake_server.base_url)

    proc = run_models("pull", model_dir=model_dir, cache_dir=cache, base_url=fake_server.base_url)
    output = proc.stdout + proc.stderr

    files = {e["name"]: e for m in models for e in m["files"]}  # a file shared by models is fetched once
    pinned = [e for e in files.values() if is_pinned(e)]
    assert proc.returncode == (1 if pinned or any(m["error"] for m in models) else 0), output
    assert sorted(fake_server.requests) == sorted(f"/{name}" for name in files)
    for name, entry in files.items():
        url = f"{fake_server.base_url}/{name}"
        assert entry["download_url"] == url
        if entry["sha256"] is not None:
            assert f"could not download {name} from {url}: checksum mismatch" in output
            assert entry["sha256"].lower() in output
            assert hashlib.sha256(fake_bytes(name)).hexdigest() in output
            assert not (cache / name).exists()
        elif entry["size_bytes"] is not None:
            assert f"could not download {name} from {url}: size mismatch" in output
            assert not (cache / name).exists()
        else:
            assert (cache / name).read_bytes() == fake_bytes(name)
            assert f"{name}: downloaded to {cache / name}" in output
    assert os.listdir(model_dir) == []  # never written
    if cache.exists():
        assert all(not n.startswith(".") for n in os.listdir(cache))  # no temporary files left

    after, _ = listing(model_dir, cache, fake_server.base_url)  # unpinned files are now found in the cache
    for entry in (e for m in after for e in m["files"]):
        assert entry["status"] == ("missing" if is_pinned(files[entry["name"]]) else "found")


def test_pull_named_models(tmp_path, fake_server):
    model_dir, cache = tmp_path / "models", tmp_path / "cache"
    model_dir.mkdir()
    models, _ = listing(model_dir, cache, fake_server.base_url)
    loadable = [m for m in models if not m["error"]]
    if not loadable:
        pytest.skip("no built-in model imports in this tree yet")
    unpinned = next((m for m in loadable if not any(is_pinned(e) for e in m["files"])), None)
    pinned = next((m for m in loadable if any(is_pinned(e) for e in m["files"])), None)
    if unpinned is not None:
        proc = run_models("pull", unpinned["name"], model_dir=model_dir, cache_dir=cache, base_url=fake_server.base_url)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert sorted(os.listdir(cache) if cache.exists() else []) == sorted(e["name"] for e in unpinned["files"])
    if pinned is not None:
        proc = run_models("pull", pinned["name"], model_dir=model_dir, cache_dir=cache, base_url=fake_server.base_url)
        assert proc.returncode == 1
        assert "mismatch" in proc.stdout and "errors:" in proc.stderr


def test_pull_unknown_model_is_a_usage_error(tmp_path):
    proc = run_models("pull", "no-such-model", model_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert proc.returncode == 2
    assert "unknown model(s): no-such-model" in proc.stderr and "known models:" in proc.stderr
    assert not (tmp_path / "cache").exists()


# In-process, with a registry of fake models: the same code paths whatever adapters exist.


def _fake_model(name: str, *files: ModelFile) -> type[Model]:
    spec = ModelSpec(name, f"fake model {name}", (ClassSpec("thing", "bounding_box"),), files)
    return type(name.title().replace("-", ""), (Model,), {"spec": spec})


@pytest.fixture
def fake_registry(tmp_path, fake_server):
    free = ModelFile("free.task", "https://example.invalid/free.task")
    pinned = ModelFile("pinned.task", "https://example.invalid/pinned.task", "0" * 64)
    shared = ModelFile("shared.tflite", "https://example.invalid/shared.tflite")
    locator = ModelFileLocator(tmp_path / "models", tmp_path / "cache", fake_server.base_url)
    (tmp_path / "models").mkdir()
    return ModelRegistry(
        {
            "no-files": _fake_model("no-files"),
            "free": _fake_model("free", free, shared),
            "also-shared": _fake_model("also-shared", shared),
            "pinned": _fake_model("pinned", pinned),
            "broken": "models.no_such_adapter:Nothing",
        },
        locator,
    )


def test_pull_in_process_reports_each_failure_and_goes_on(fake_registry, fake_server, tmp_path, capsys):
    assert models_cli.pull(fake_registry, [], timeout_s=5) == 1
    captured = capsys.readouterr()
    cache = tmp_path / "cache"
    assert sorted(os.listdir(cache)) == ["free.task", "shared.tflite"]
    assert sorted(fake_server.requests) == ["/free.task", "/pinned.task", "/shared.tflite"]  # shared: once
    assert "no-files: no model files needed" in captured.out
    assert "also-shared: 1 file(s)\n  shared.tflite: present" in captured.out
    assert "checksum mismatch: expected SHA-256 " + "0" * 64 in captured.out
    assert "broken: ERROR cannot load the model's code: ModuleNotFoundError" in captured.out
    assert "2 downloaded, 0 already present, 1 failed." in captured.out
    assert "errors:" in captured.err and "pinned:" in captured.err and "broken:" in captured.err

    assert models_cli.pull(fake_registry, ["free", "also-shared", "no-files"]) == 0
    out = capsys.readouterr().out
    assert f"free.task: already present at {cache / 'free.task'}" in out
    assert "0 downloaded, 2 already present, 0 failed." in out


def test_listing_in_process(fake_registry, tmp_path, capsys):
    (tmp_path / "models" / "pinned.task").write_bytes(b"the user's own file, used as it is")
    statuses = [models_cli.inspect_model(fake_registry, n) for n in fake_registry.names()]
    by_name = {s.name: s.to_json() for s in statuses}
    assert by_name["no-files"]["available"] is True and by_name["no-files"]["files"] == []
    assert by_name["pinned"]["available"] is True
    assert by_name["pinned"]["files"][0]["path"] == str(tmp_path / "models" / "pinned.task")
    assert by_name["free"]["available"] is False
    assert by_name["free"]["files"][0]["download_url"].endswith("/free.task")
    assert by_name["broken"]["available"] is None and "no_such_adapter" in by_name["broken"]["error"]
    json.dumps(list(by_name.values()))  # serialisable

    models_cli.print_listing(fake_registry.locator, statuses)
    out = capsys.readouterr().out
    assert "free: NOT available (run: python run.py models pull free)" in out
    assert "free.task: missing; fetch it from http://127.0.0.1:" in out
    assert "broken: ERROR cannot load the model's code" in out
    assert "Downloads come from BYOM_MODEL_BASE_URL http://127.0.0.1:" in out
