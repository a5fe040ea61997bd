"""Shared fixtures: the pictures, the model folder and V7's schema from ../shared."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from models.samples import sample_rgb

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("BYOM_SHARED_DIR", PROJECT_DIR.parent / "shared"))
MODEL_DIR = Path(os.environ.get("BYOM_MODEL_DIR", SHARED_DIR / "models"))
V7_SCHEMA_PATH = SHARED_DIR / "v7" / "byom_response.schema.json"
# Absolute, for servers started from module-scoped fixtures (before per-test fixtures run).
os.environ["BYOM_MODEL_DIR"] = str(MODEL_DIR.resolve())


@pytest.fixture(scope="session")
def model_dir() -> Path:
    if not MODEL_DIR.is_dir():
        pytest.skip(f"model files folder {MODEL_DIR} is absent (set BYOM_MODEL_DIR)")
    return MODEL_DIR


@pytest.fixture(scope="session")
def v7_schema() -> dict:
    if not V7_SCHEMA_PATH.is_file():
        pytest.skip(f"V7's response schema {V7_SCHEMA_PATH} is absent (../shared not laid out here)")
    return json.loads(V7_SCHEMA_PATH.read_text())


@pytest.fixture(scope="session")
def picture():
    """picture(name) -> RGB uint8 array of a built-in sample, cached for the session."""
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = sample_rgb(name)
        return cache[name]

    return get


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep config, request log and downloads of every test out of the user's home."""
    home = tmp_path_factory.mktemp("byom-home")
    monkeypatch.setenv("BYOM_HOME", str(home))
    monkeypatch.setenv("BYOM_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("BYOM_MODEL_DIR", str(MODEL_DIR.resolve()))


def pytest_sessionfinish(session, exitstatus):
    """Close every model still loaded: MediaPipe tasks left to the garbage collector hang the exit."""
    from models.registry import ModelRegistry

    ModelRegistry.close_all()
