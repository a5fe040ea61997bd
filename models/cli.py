"""List the built-in models, their files and whether they are present; `models pull` downloads missing files.

  python run.py models              each model: description, each file (found at PATH, or missing
                                    with the URL to fetch it from) and whether the model can run
  python run.py models --json       the same as a JSON list, for scripts
  python run.py models pull         download every missing file of every model
  python run.py models pull pose    only the files of the named models

Files are looked up in BYOM_MODEL_DIR (read only, never written), then in the cache (BYOM_CACHE_DIR,
default ~/.cache/byom-playground/models), where downloads land. A file found in either place is used
as it is; a downloaded file is checked against the official SHA-256 where one is pinned.
BYOM_MODEL_BASE_URL=URL downloads BASE_URL/FILE_NAME instead of the official URL (mirrors, tests).

Exit status: listing gives 1 when a model's code cannot be loaded, 0 otherwise (missing files are
reported, not an error); pull gives 0 when every file of the named models is now present, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from models.base import ModelFile, ModelSpec
from models.files import ModelDownloadError, ModelFileLocator, TerminalProgress
from models.registry import ModelRegistry

PULL_DESCRIPTION = """Download the missing files of the named models (of all built-in models when none is named)
into the cache, showing progress on stderr. Files already in BYOM_MODEL_DIR or the cache are kept as
they are. Downloads are checked against the official SHA-256 where one is pinned and moved into place
atomically, so an interrupted or failed download never leaves a partial file behind.
Exit status 0 when every file of the named models is present afterwards, 1 otherwise."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the listing as JSON (a list of models)")
    actions = parser.add_subparsers(dest="models_action", metavar="ACTION")
    pull = actions.add_parser(
        "pull",
        help="download missing model files into the cache",
        description=PULL_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pull.add_argument("names", nargs="*", metavar="NAME", help="models to fetch files for (default: all)")
    pull.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="give up when connecting or waiting for data takes longer than this (default: 30)",
    )


def main(args: argparse.Namespace) -> int:
    locator = ModelFileLocator.from_env()
    registry = ModelRegistry.builtin(locator)
    if getattr(args, "models_action", None) == "pull":
        return pull(registry, args.names, timeout_s=args.timeout)
    statuses = [inspect_model(registry, name) for name in registry.names()]
    if args.json:
        print(json.dumps([s.to_json() for s in statuses], indent=2))
    else:
        print_listing(locator, statuses)
    return 1 if any(s.error for s in statuses) else 0


@dataclass
class ModelStatus:
    name: str
    spec: ModelSpec | None = None
    error: str | None = None
    #: (file, url to fetch it from, path where it was found or None)
    files: list[tuple[ModelFile, str, str | None]] = field(default_factory=list)

    @property
    def available(self) -> bool | None:
        if self.error is not None:
            return None
        return all(path is not None for _, _, path in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.spec.description if self.spec else None,
            "available": self.available,
            "error": self.error,
            "files": [
                {
                    "name": f.name,
                    "status": "found" if path else "missing",
                    "path": path,
                    "url": f.url,
                    "download_url": url,
                    "sha256": f.sha256,
                    "size_bytes": f.size_bytes,
                }
                for f, url, path in self.files
            ],
        }


def load_spec(registry: ModelRegistry, name: str) -> tuple[ModelSpec | None, str | None]:
    """The model's spec, or (None, error) when its module cannot be imported or has no usable spec."""
    try:
        # Keep stdout clean for --json even if an adapter prints while importing.
        with contextlib.redirect_stdout(sys.stderr):
            spec = registry.spec(name)
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"spec is a {type(spec).__name__}, not a ModelSpec")
        return spec, None
    except Exception as exc:  # any broken adapter: report it and go on with the others
        return None, f"cannot load the model's code: {type(exc).__name__}: {exc}"


def inspect_model(registry: ModelRegistry, name: str) -> ModelStatus:
    spec, error = load_spec(registry, name)
    status = ModelStatus(name, spec, error)
    if spec is not None:
        for model_file in spec.files:
            path = registry.locator.find(model_file)
            status.files.append((model_file, registry.locator.download_url(model_file), str(path) if path else None))
    return status


def print_listing(locator: ModelFileLocator, statuses: list[ModelStatus]) -> None:
    where = [f"BYOM_MODEL_DIR {locator.model_dir}" if locator.model_dir else "BYOM_MODEL_DIR (not set)"]
    where.append(f"cache {locator.cache_dir}")
    print("Model files are looked up in " + ", then ".join(where) + ".")
    if locator.model_dir is not None and not locator.model_dir.is_dir():
        print(f"warning: BYOM_MODEL_DIR {locator.model_dir} is not a folder")
    if locator.base_url:
        print(f"Downloads come from BYOM_MODEL_BASE_URL {locator.base_url}.")
    for status in statuses:
        print()
        if status.error is not None:
            print(f"{status.name}: ERROR {status.error}")
            continue
        assert status.spec is not None
        state = "available" if status.available else f"NOT available (run: python run.py models pull {status.name})"
        print(f"{status.name}: {state}")
        print(f"  {status.spec.description}")
        if not status.files:
            print("  no model files needed")
        for model_file, url, path in status.files:
            if path:
                print(f"  {model_file.name}: found at {path}")
            else:
                print(f"  {model_file.name}: missing; fetch it from {url}")


def pull(registry: ModelRegistry, names: list[str], *, timeout_s: float = 30.0) -> int:
    known = registry.names()
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown model(s): {', '.join(unknown)}; known models: {', '.join(known)}", file=sys.stderr)
        return 2
    locator = registry.locator
    results: dict[str, bool] = {}  # file name -> present now (a file shared by models is fetched once)
    errors: list[str] = []
    downloaded = present = 0
    for name in dict.fromkeys(names or known):
        spec, error = load_spec(registry, name)
        if spec is None:
            print(f"{name}: ERROR {error}", flush=True)
            errors.append(f"{name}: {error}")
            continue
        print(f"{name}: {len(spec.files)} file(s)" if spec.files else f"{name}: no model files needed", flush=True)
        for model_file in spec.files:
            if model_file.name in results:
                state = "present" if results[model_file.name] else "failed (see above)"
                print(f"  {model_file.name}: {state}", flush=True)
                if not results[model_file.name]:
                    errors.append(f"{name}: needs {model_file.name}, which failed")
                continue
            found = locator.find(model_file)
            if found is not None:
                print(f"  {model_file.name}: already present at {found}", flush=True)
                results[model_file.name] = True
                present += 1
                continue
            print(f"  {model_file.name}: downloading from {locator.download_url(model_file)}", flush=True)
            progress = TerminalProgress(f"  {model_file.name}")
            started = time.monotonic()
            try:
                path = locator.download(model_file, progress=progress, timeout_s=timeout_s)
            except ModelDownloadError as exc:
                progress.finish()
                print(f"  {model_file.name}: FAILED: {exc}", flush=True)
                errors.append(f"{name}: {exc}")
                results[model_file.name] = False
                continue
            progress.finish()
            seconds = time.monotonic() - started
            size_mb = os.path.getsize(path) / 1e6
            print(f"  {model_file.name}: downloaded to {path} ({size_mb:.1f} MB in {seconds:.1f} s)", flush=True)
            results[model_file.name] = True
            downloaded += 1
    failed = sum(1 for ok in results.values() if not ok)
    print(f"\n{downloaded} downloaded, {present} already present, {failed} failed.")
    if errors:
        print("errors:", file=sys.stderr)
        for line in errors:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0
