"""Which models exist, whether their files are present, and one loaded copy of each per process."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from pathlib import Path

from models.base import Model, ModelSpec
from models.files import ModelFileLocator, ModelUnavailable

#: Built-in adapters, one per file, imported only when first asked for.
BUILTIN_MODELS: dict[str, str] = {
    "opencv-face": "models.opencv_face:OpenCVFace",
    "mediapipe-face": "models.mediapipe_face:MediaPipeFace",
    "face-landmarks": "models.face_landmarks:FaceLandmarks",
    "pose": "models.pose:Pose",
    "hands": "models.hands:Hands",
}


class UnknownModel(KeyError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.message = f"unknown model {name!r}; known models: {', '.join(known)}"

    def __str__(self) -> str:
        return self.message


def import_model_class(target: str) -> type[Model]:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


class ModelRegistry:
    """Model classes by name, their files, and the loaded instances (an explicit cache)."""

    def __init__(self, model_classes: Mapping[str, type[Model] | str], locator: ModelFileLocator) -> None:
        self._targets = dict(model_classes)
        self.locator = locator
        self._classes: dict[str, type[Model]] = {}
        self._instances: dict[str, Model] = {}
        self._lock = threading.Lock()

    @classmethod
    def builtin(cls, locator: ModelFileLocator | None = None) -> ModelRegistry:
        return cls(BUILTIN_MODELS, locator or ModelFileLocator.from_env())

    def add(self, name: str, model_class: type[Model] | str) -> None:
        self._targets[name] = model_class

    def names(self) -> list[str]:
        return list(self._targets)

    def model_class(self, name: str) -> type[Model]:
        if name not in self._targets:
            raise UnknownModel(name, self.names())
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
                self._instances[name] = self.model_class(name)(paths)
            return self._instances[name]
