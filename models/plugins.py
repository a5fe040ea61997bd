"""Plug-in models: the user's own `Model` classes, from a file, a module or an installed package.

Where plug-ins come from (each "source" is one string):

- a Python file: ``python run.py serve --model-file my_model.py`` (any string ending in ``.py`` or
  containing a path separator is a file);
- an importable module: ``--model my_pkg.my_model`` (every model class the module defines) or
  ``--model my_pkg.my_model:MyModel`` (that one class);
- ``BYOM_EXTRA_MODELS``: the same strings, separated by commas (``serve`` passes its options to the
  gunicorn workers this way, with file paths made absolute);
- an installed package declaring an entry point in the group ``byom_playground.models``, found on
  every start without any option (pyproject.toml:
  ``[project.entry-points."byom_playground.models"]`` ``my-model = "my_pkg.my_model:MyModel"``;
  the value may also name a module, for all its model classes).

A model class is a subclass of `models.base.Model` that sets its own ``spec`` (a `ModelSpec`) and
implements ``detect``; it is served under ``spec.name``. A module's model classes are the ones it
defines itself (imported classes and bases without their own ``spec`` are skipped).

Failures are reported, never raised, by `discover`: a source that cannot be loaded (missing file,
import error, no model class, bad spec) or a name already taken becomes a `PluginFailure` naming the
source and the problem. A running server shows it as unavailable (GET /health, GET /models) and keeps
serving every other model. ``serve`` loads its plug-ins once before starting gunicorn and refuses to
start on a *fatal* failure: a source named explicitly (option or ``BYOM_EXTRA_MODELS``) or a name clash,
so that a typo fails fast instead of hiding in a log. An installed package that fails to import is only
a warning there: it was not asked for by name, and must not stop the server.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import traceback
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from models.base import Model, ModelSpec

ENTRY_POINT_GROUP = "byom_playground.models"
#: Model names end up in URLs (/models/NAME/infer): keep them to one plain path segment.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class PluginError(Exception):
    """A plug-in source cannot be used; the message names the source and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        self.source, self.problem = source, problem
        super().__init__(f"plug-in {source}: {problem}")


@dataclass(frozen=True)
class PluginModel:
    """A model class loaded from a plug-in source, served under `name` (its spec.name)."""

    name: str
    model_class: type[Model]
    source: str


@dataclass(frozen=True)
class PluginFailure:
    """A plug-in source that gave no usable model.

    `label` is a short, unique name to list it under (the file's stem, the module, the entry point's
    name); `fatal` is True when ``serve`` refuses to start on it (an explicitly named source, or a
    name clash).
    """

    label: str
    source: str
    error: str
    fatal: bool

    def __str__(self) -> str:
        return f"plug-in {self.source}: {self.error}"


@dataclass(frozen=True)
class PluginScan:
    models: tuple[PluginModel, ...]
    failures: tuple[PluginFailure, ...]


# -- sources --------------------------------------------------------------------------------------


def is_file_source(source: str) -> bool:
    return source.endswith(".py") or "/" in source or os.sep in source


def absolute_source(source: str) -> str:
    """File sources made absolute (gunicorn workers run in another folder); module sources as they are."""
    return str(Path(source).expanduser().resolve()) if is_file_source(source) else source


def parse_sources(text: str) -> tuple[str, ...]:
    """The comma-separated list of BYOM_EXTRA_MODELS, blanks dropped."""
    return tuple(s.strip() for s in text.split(",") if s.strip())


# -- loading --------------------------------------------------------------------------------------


def _where(exc: BaseException) -> str:
    """' (at my_model.py:12)': the innermost line of the plug-in's own code, not importlib's."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename and f.filename != __file__
    ]
    if isinstance(exc, SyntaxError) or not frames:
        return ""  # a SyntaxError's message already says file and line
    frame = frames[-1]
    return f" (at {Path(frame.filename).name}:{frame.lineno})"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}{_where(exc)}"


def check_model_class(obj: object, source: str) -> type[Model]:
    """`obj` if it is a usable model class; PluginError saying what is wrong otherwise."""
    what = getattr(obj, "__qualname__", repr(obj))
    if not isinstance(obj, type) or not issubclass(obj, Model):
        raise PluginError(source, f"{what} is not a model class: subclass models.base.Model")
    spec = getattr(obj, "spec", None)
    if not isinstance(spec, ModelSpec):
        raise PluginError(source, f"{what}.spec must be a models.base.ModelSpec, got {type(spec).__name__}")
    if obj.detect is Model.detect:
        raise PluginError(source, f"{what} does not implement detect(self, image_rgb, options)")
    if not MODEL_NAME_PATTERN.match(spec.name):
        raise PluginError(
            source,
            f"{what}.spec.name {spec.name!r} cannot be used in a URL (/models/NAME/infer): "
            "use letters, digits, '-', '_' and '.', starting with a letter or digit",
        )
    return obj


def model_classes_in(module: ModuleType, source: str) -> list[type[Model]]:
    """The model classes a module defines itself, in the order it defines them."""
    own_classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Model) and obj.__module__ == module.__name__
    ]
    with_spec = [cls for cls in own_classes if "spec" in vars(cls)]
    if not with_spec:
        without = f" ({', '.join(c.__name__ for c in own_classes)} set no `spec`)" if own_classes else ""
        raise PluginError(
            source, f"defines no model class{without}: expected a subclass of models.base.Model with a `spec`"
        )
    return [check_model_class(cls, source) for cls in with_spec]


def _module_name_for_file(path: Path) -> str:
    """A unique module name per file path, so that two `model.py` files in different folders never mix."""
    stem = re.sub(r"\W", "_", path.stem)
    return f"byom_plugin_{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"


def load_file(path: str | Path) -> list[type[Model]]:
    """The model classes of a .py file, executed as a fresh module on every call.

    The file's folder is appended to sys.path (as when running a script), so that it can import
    helper modules next to it; appended, so it never shadows installed packages.
    """
    path = Path(path).expanduser().resolve()
    source = f"file {path}"
    if not path.is_file():
        raise PluginError(source, "no such file" if not path.exists() else "not a file")
    if path.suffix != ".py":
        raise PluginError(source, "a model file must be a Python file ending in .py")
    module_name = _module_name_for_file(path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(source, "Python cannot load this file")
    module = importlib.util.module_from_spec(spec)
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    sys.modules[module_name] = module  # dataclasses and pickle look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        if not isinstance(exc, Exception):
            raise
        raise PluginError(source, f"could not be loaded: {_describe(exc)}") from exc
    return model_classes_in(module, source)


def load_module(target: str) -> list[type[Model]]:
    """The model classes of "package.module", or the one class of "package.module:ClassName"."""
    module_name, _, attr = target.partition(":")
    source = f"module {target}"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise PluginError(source, "expected package.module or package.module:ClassName (or a path to a .py file)")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        hint = " (is it installed, or on PYTHONPATH?)" if isinstance(exc, ModuleNotFoundError) else ""
        raise PluginError(source, f"could not be imported: {_describe(exc)}{hint}") from exc
    if not attr:
        return model_classes_in(module, source)
    if not hasattr(module, attr):
        raise PluginError(source, f"module {module_name} has no attribute {attr!r}")
    return [check_model_class(getattr(module, attr), source)]


def load_entry_point(entry_point: importlib.metadata.EntryPoint) -> list[type[Model]]:
    source = describe_entry_point(entry_point)
    try:
        target = entry_point.load()
    except Exception as exc:
        raise PluginError(source, f"could not be loaded: {_describe(exc)}") from exc
    if isinstance(target, ModuleType):
        return model_classes_in(target, source)
    return [check_model_class(target, source)]


def describe_entry_point(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    package = f" of package {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point {entry_point.name!r} = {entry_point.value!r}{package}"


def find_entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def load_source(source: str) -> tuple[str, list[type[Model]]]:
    """(description of the source, its model classes); PluginError when it gives none."""
    if is_file_source(source):
        path = Path(source).expanduser().resolve()
        return f"file {path}", load_file(path)
    return f"module {source}", load_module(source)


def _source_label(source: str) -> str:
    return Path(source).stem if is_file_source(source) else source


# -- all together ---------------------------------------------------------------------------------


def discover(
    sources: Iterable[str] = (), *, entry_points: bool = True, reserved_names: Collection[str] = ()
) -> PluginScan:
    """Load the named sources, then the installed entry points; reports, never raises, for a plug-in.

    Explicit sources come first, so one of them may replace an installed package's model of the
    same name while you work on a new version (the installed one is then a non-fatal failure).
    Any other name clash (with a built-in in `reserved_names`, or between two explicit sources or two
    installed packages) is a fatal failure. The same class reached twice (say, by `--model` and by its
    entry point) is served once.
    """
    models: dict[str, PluginModel] = {}
    explicit_names: set[str] = set()
    classes_seen: set[type[Model]] = set()
    failures: list[PluginFailure] = []
    labels_used: set[str] = set(reserved_names)

    def fail(label: str, source: str, error: str, fatal: bool) -> None:
        if not label or label in labels_used:
            label = f"{label} ({source})"
        labels_used.add(label)
        failures.append(PluginFailure(label, source, error, fatal))

    def add(classes: list[type[Model]], source: str, explicit: bool) -> None:
        for model_class in classes:
            if model_class in classes_seen:  # one class reached twice (module and entry point): once is enough
                continue
            classes_seen.add(model_class)
            name = model_class.spec.name
            existing = models.get(name)
            if name in reserved_names:
                fail(name, source, f"model name {name!r} is taken by a built-in model: change spec.name", True)
            elif existing is not None:
                overridden = not explicit and name in explicit_names
                note = " (the one named on the command line is served)" if overridden else ": change one spec.name"
                fail(name, source, f"model name {name!r} is already used by {existing.source}{note}", not overridden)
            else:
                models[name] = PluginModel(name, model_class, source)
                labels_used.add(name)
                if explicit:
                    explicit_names.add(name)

    seen: set[str] = set()
    for raw in sources:
        source = absolute_source(raw)
        if source in seen:
            continue
        seen.add(source)
        try:
            description, classes = load_source(source)
        except PluginError as exc:
            fail(_source_label(source), exc.source, exc.problem, True)
            continue
        add(classes, description, explicit=True)
    if entry_points:
        for entry_point in find_entry_points():
            try:
                classes = load_entry_point(entry_point)
            except PluginError as exc:
                fail(entry_point.name, exc.source, exc.problem, False)
                continue
            add(classes, describe_entry_point(entry_point), explicit=False)
    # A failure listed before a model of the same name was added: keep labels unique.
    failures = [replace(f, label=f"{f.label} ({f.source})") if f.label in models else f for f in failures]
    return PluginScan(tuple(models.values()), tuple(failures))
