"""How model classes map to V7 classes: a JSON file every worker process reads.

The file holds, per model and class, the V7 class name, whether the class is enabled and an
optional confidence threshold; and which models make up the default endpoint. It is re-read
when it changes on disk (checked by a cheap `stat` per request), so a change made by the UI or
by hand reaches every gunicorn worker without a restart.

    {"version": 1,
     "default_models": ["opencv-face", "face-landmarks", "pose"],
     "classes": {"pose": {"person": {"v7_name": "person", "enabled": true, "threshold": 0.6}}}}
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from models.base import ClassSpec, ModelSpec

DEFAULT_ENDPOINT_MODELS = ("opencv-face", "face-landmarks", "pose")


class ConfigError(ValueError):
    """The mapping file (or a mapping sent to be saved) is not valid; the message says why."""


@dataclass(frozen=True)
class ClassRule:
    v7_name: str
    enabled: bool = True
    threshold: float | None = None


@dataclass(frozen=True)
class EndpointClass:
    """A class as V7 sees it on one endpoint, with the model classes that produce it."""

    name: str
    type: str
    sources: tuple[tuple[str, ClassSpec], ...]

    @property
    def class_spec(self) -> ClassSpec:
        return self.sources[0][1]


@dataclass(frozen=True)
class ClassMapping:
    default_models: tuple[str, ...] = DEFAULT_ENDPOINT_MODELS
    rules: Mapping[str, Mapping[str, ClassRule]] = field(default_factory=dict)

    def rule(self, model_name: str, class_name: str) -> ClassRule:
        return self.rules.get(model_name, {}).get(class_name) or ClassRule(v7_name=class_name)

    def with_rule(self, model_name: str, class_name: str, rule: ClassRule) -> ClassMapping:
        rules = {m: dict(r) for m, r in self.rules.items()}
        rules.setdefault(model_name, {})[class_name] = rule
        return replace(self, rules=rules)

    # -- reading and writing -------------------------------------------------------------

    @classmethod
    def from_json(cls, data: Any) -> ClassMapping:
        if not isinstance(data, dict):
            raise ConfigError("the mapping must be a JSON object")
        default_models = data.get("default_models", list(DEFAULT_ENDPOINT_MODELS))
        if not isinstance(default_models, list) or not all(isinstance(m, str) and m for m in default_models):
            raise ConfigError("'default_models' must be a list of model names")
        if not default_models:
            raise ConfigError("'default_models' must name at least one model")
        classes = data.get("classes", {})
        if not isinstance(classes, dict):
            raise ConfigError("'classes' must be an object: {model: {class: {v7_name, enabled, threshold}}}")
        rules: dict[str, dict[str, ClassRule]] = {}
        for model_name, model_rules in classes.items():
            if not isinstance(model_rules, dict):
                raise ConfigError(f"'classes.{model_name}' must be an object of classes")
            for class_name, raw in model_rules.items():
                rules.setdefault(model_name, {})[class_name] = _rule_from_json(f"{model_name}/{class_name}", raw)
        return cls(tuple(default_models), rules)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "default_models": list(self.default_models),
            "classes": {
                model_name: {
                    class_name: {"v7_name": r.v7_name, "enabled": r.enabled, "threshold": r.threshold}
                    for class_name, r in model_rules.items()
                }
                for model_name, model_rules in self.rules.items()
            },
        }

    # -- what an endpoint serves ---------------------------------------------------------

    def endpoint_classes(self, specs: Iterable[ModelSpec]) -> list[EndpointClass]:
        """The enabled classes of an endpoint made of these models, by V7 name, in order.

        Several model classes may share a V7 name only when they have the same type (and for
        skeletons the same nodes): V7 matches results to classes by name alone.
        """
        by_name: dict[str, EndpointClass] = {}
        for spec in specs:
            for class_spec in spec.classes:
                rule = self.rule(spec.name, class_spec.name)
                if not rule.enabled:
                    continue
                existing = by_name.get(rule.v7_name)
                if existing is None:
                    by_name[rule.v7_name] = EndpointClass(rule.v7_name, class_spec.type, ((spec.name, class_spec),))
                    continue
                other = existing.class_spec
                if other.type != class_spec.type or other.skeleton != class_spec.skeleton:
                    first = existing.sources[0]
                    raise ConfigError(
                        f"V7 class name {rule.v7_name!r} is used for {first[0]}/{first[1].name} ({other.type}) "
                        f"and {spec.name}/{class_spec.name} ({class_spec.type}): one name, one type"
                    )
                by_name[rule.v7_name] = replace(existing, sources=existing.sources + ((spec.name, class_spec),))
        return list(by_name.values())

    def validate(self, specs_by_model: Mapping[str, ModelSpec]) -> None:
        """Raise ConfigError unless every endpoint (each model, and the default) is consistent."""
        unknown = [m for m in self.default_models if m not in specs_by_model]
        if unknown:
            raise ConfigError(f"'default_models' names unknown models: {', '.join(unknown)}")
        for spec in specs_by_model.values():
            self.endpoint_classes([spec])
        self.endpoint_classes([specs_by_model[m] for m in self.default_models])


def _rule_from_json(where: str, raw: Any) -> ClassRule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object with v7_name, enabled, threshold")
    v7_name = raw.get("v7_name")
    if not isinstance(v7_name, str) or not v7_name.strip():
        raise ConfigError(f"{where}: 'v7_name' must be a non-empty string")
    if v7_name != v7_name.strip():
        raise ConfigError(f"{where}: 'v7_name' {v7_name!r} has leading or trailing spaces")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}: 'enabled' must be true or false")
    threshold = raw.get("threshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not math.isfinite(threshold):
            raise ConfigError(f"{where}: 'threshold' must be a number from 0 to 1, or null")
        if not 0 <= threshold <= 1:
            raise ConfigError(f"{where}: 'threshold' {threshold} is outside 0..1")
        threshold = float(threshold)
    return ClassRule(v7_name, enabled, threshold)


class MappingFile:
    """The mapping file on disk, re-read when it changes; a missing file means the defaults.

    An invalid file on disk (unreadable, or failing `validate`) keeps the last good mapping in
    force and reports the error (`last_error`) instead of breaking every request.
    """

    def __init__(self, path: Path, validate: Callable[[ClassMapping], None] | None = None) -> None:
        self.path = Path(path)
        self._validate = validate
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._mapping = ClassMapping()
        self.last_error: str | None = None

    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def load(self) -> ClassMapping:
        stamp = self._current_stamp()
        with self._lock:
            if stamp == self._stamp:
                return self._mapping
            if stamp is None:
                self._mapping, self.last_error = ClassMapping(), None
            else:
                try:
                    mapping = ClassMapping.from_json(json.loads(self.path.read_text(encoding="utf-8")))
                    if self._validate is not None:
                        self._validate(mapping)
                    self._mapping, self.last_error = mapping, None
                except (OSError, ValueError) as exc:  # json.JSONDecodeError and ConfigError are ValueErrors
                    self.last_error = f"{self.path}: {exc}"
            self._stamp = stamp
            return self._mapping

    def save(self, mapping: ClassMapping) -> None:
        """Write atomically (temp file + rename) so no reader ever sees half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".mapping-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(mapping.to_json(), f, indent=2)
                f.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
