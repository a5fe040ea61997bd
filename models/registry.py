"""Which models exist, whether their files are present, and one loaded copy of each per process.

`ModelRegistry.builtin()` holds the built-in adapters; `ModelRegistry.with_plugins(sources)` adds the
user's own models (files, modules, installed entry points: see models.plugins). Every tool that runs
models (the server, annotate, ...) should use `with_plugins`, so that a plug-in works everywhere.
"""

from __future__ import annotations

import importlib
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar

from models.base import Model, ModelSpec
from models.driver import ModelFailed, raised_where
from models.files import ModelFileLocator, ModelUnavailable
from models.plugins import PluginFailure, discover

log = logging.getLogger("byom.models")

#: Built-in adapters, one per file, imported only when first asked for.
BUILTIN_MODELS: dict[str, str] = {
    "opencv-face": "models.opencv_face:OpenCVFace",
    "mediapipe-face": "models.mediapipe_face:MediaPipeFace",
    "face-landmarks": "models.face_landmarks:FaceLandmarks",
    "pose": "models.pose:Pose",
    "hands": "models.hands:Hands",
}


class UnknownModel(KeyError):
    def __init__(self, name: str, known: list[str], failures: Iterable[PluginFailure] = ()) -> None:
        super().__init__(name)
        self.message = f"unknown model {name!r}; known models: {', '.join(known)}"
        failed = [f.label for f in failures]
        if failed:
            self.message += f"; plug-ins that failed to load (see GET /health): {', '.join(failed)}"

    def __str__(self) -> str:
        return self.message


class PluginUnavailable(UnknownModel):
    """The name of a plug-in that failed to load: the message is its error."""

    def __init__(self, failure: PluginFailure) -> None:
        KeyError.__init__(self, failure.label)
        self.failure = failure
        self.message = f"model {failure.label!r} is unavailable: {failure}"


class ModelLoadFailed(ModelFailed):
    """A model's constructor raised (weights missing or corrupt, a bug): named like a detect failure."""

    def __init__(self, model_name: str, exc: BaseException) -> None:
        message = f"model {model_name!r} could not be loaded: {type(exc).__name__}: {exc}{raised_where(exc)}"
        RuntimeError.__init__(self, message)
        self.model_name = model_name


def import_model_class(target: str) -> type[Model]:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class ModelRegistry:
    """Model classes by name, their files, and the loaded instances (an explicit cache)."""

    #: Registries holding loaded models, so that `close_all` can reach them (weak: no leak).
    _with_loaded_models: ClassVar[weakref.WeakSet[ModelRegistry]] = weakref.WeakSet()

    def __init__(self, model_classes: Mapping[str, type[Model] | str], locator: ModelFileLocator) -> None:
        self._targets = dict(model_classes)
        self.locator = locator
        self._classes: dict[str, type[Model]] = {}
        self._instances: dict[str, Model] = {}
        self._lock = threading.Lock()
        #: Plug-ins that gave no model (import error, name clash, ...), shown by GET /health and /models.
        self.plugin_failures: list[PluginFailure] = []

    @classmethod
    def builtin(cls, locator: ModelFileLocator | None = None) -> ModelRegistry:
        return cls(BUILTIN_MODELS, locator or ModelFileLocator.from_env())

    @classmethod
    def with_plugins(
        cls,
        extra_models: Iterable[str] = (),
        locator: ModelFileLocator | None = None,
        *,
        entry_points: bool = True,
    ) -> ModelRegistry:
        """The built-ins plus the plug-ins: `extra_models` (files or modules, as for --model-file and
        --model) and, unless `entry_points` is False, every installed `byom_playground.models` entry point.

        Never raises for a plug-in: one that fails is listed in `plugin_failures` and asking for it gives
        its error; the others work. (`serve` checks the same list before starting; see models.plugins.)
        """
        scan = discover(extra_models, entry_points=entry_points, reserved_names=BUILTIN_MODELS)
        registry = cls(BUILTIN_MODELS, locator or ModelFileLocator.from_env())
        for plugin in scan.models:
            registry.add(plugin.name, plugin.model_class)
        registry.plugin_failures = list(scan.failures)
        for failure in scan.failures:
            log.error("%s; serving the other models", failure)
        return registry

    def add(self, name: str, model_class: type[Model] | str) -> None:
        self._targets[name] = model_class

    def names(self) -> list[str]:
        return list(self._targets)

    def model_class(self, name: str) -> type[Model]:
        if name not in self._targets:
            failure = next((f for f in self.plugin_failures if f.label == name), None)
            if failure is not None:
                raise PluginUnavailable(failure)
            raise UnknownModel(name, self.names(), self.plugin_failures)
        if name not in self._classes:
            target = self._targets[name]
            self._classes[name] = import_model_class(target) if isinstance(target, str) else target
        return self._classes[name]

    def spec(self, name: str) -> ModelSpec:
        return self.model_class(name).spec

    def missing_files(self, name: str) -> list[str]:
        """Human-readable lines for each file of the model that is not on disk."""
        return [self.locator.describe_missing(f) for f in self.spec(name).files if self.locator.find(f) is None]

    def is_available(self, name: str) -> bool:
        return not self.missing_files(name)

    @classmethod
    def close_all(cls) -> None:
        """Close the models of every registry in this process (test session end, worker exit)."""
        for registry in list(cls._with_loaded_models):
            registry.close()

    def close(self) -> None:
        """Close every loaded model (they load again on next use).

        MediaPipe 1.2 tasks must be closed explicitly before the process ends: left to the garbage
        collector they print tracebacks at exit, or hang waiting on their dispatcher thread.
        (An `atexit` hook is too late: the dispatcher's executor is shut down before it runs.)
        """
        with self._lock:
            instances, self._instances = list(self._instances.values()), {}
        for model in instances:
            try:
                model.close()
            except Exception:  # closing is best effort; one model's failure must not keep others open
                pass

    def get(self, name: str) -> Model:
        """The loaded model; loads it (once per process) on first use."""
        model = self._instances.get(name)
        if model is not None:
            return model
        with self._lock:
            if name not in self._instances:
                spec = self.spec(name)
                paths: dict[str, Path] = {}
                for model_file in spec.files:
                    path = self.locator.find(model_file)
                    if path is None:
                        raise ModelUnavailable(name, [self.locator.describe_missing(model_file)])
                    paths[model_file.name] = path
                model_class = self.model_class(name)
                try:
                    self._instances[name] = model_class(paths)
                    ModelRegistry._with_loaded_models.add(self)
                except ModelUnavailable:
                    raise
                except Exception as exc:  # not cached: the next request tries again
                    raise ModelLoadFailed(name, exc) from exc
            return self._instances[name]
