"""The model interface: a spec (its classes) and one `detect` method.

A model sees an RGB uint8 image (H x W x 3) and returns plain dicts in V7's result shape,
in pixels of the image it was given. Everything else (cropping to the Auto-Annotate box,
shifting back, clipping, thresholds, class mapping, checking the output) is done once for
every model by `models.driver`.

This is the public interface for your own models too (docs/MODEL_API.md; `python run.py new-model`
writes a working one): subclass `Model`, set `spec`, implement `detect`, build results with
`bounding_box`, `polygon`, `line`, `keypoint`, `skeleton` or `tag`, and serve the file with
`python run.py serve --model-file my_model.py`.

    class Corners(Model):
        spec = ModelSpec("corners", "the picture's top-left corner", (ClassSpec("corner", "keypoint"),))

        def detect(self, image_rgb, options):
            return [keypoint("corner", 0.9, (0, 0))]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

#: Geometry keys a model may return (V7 also knows ellipse, cuboid, directional_vector).
GEOMETRY_TYPES = ("bounding_box", "polygon", "keypoint", "line", "skeleton", "tag")


@dataclass(frozen=True)
class SkeletonSpec:
    """Node names (as the V7 skeleton class must name them) and edges between them.

    Every skeleton result must list exactly these nodes, in this order (the driver checks it);
    a node the model could not place is given anyway, with `occluded` True.
    """

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ValueError("a skeleton needs at least one node")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError("skeleton node names must be unique")
        unknown = {n for edge in self.edges for n in edge} - set(self.nodes)
        if unknown:
            raise ValueError(f"skeleton edges name unknown nodes: {sorted(unknown)}")


@dataclass(frozen=True)
class ClassSpec:
    """One output class: its name, its V7 annotation type and, for skeletons, the nodes.

    `name` is what results carry as their label and what GET /classes lists (name it like the V7
    class, or map it in the class-mapping file); `type` is one of GEOMETRY_TYPES and is the only
    geometry results of this class may have; `description` is shown in the playground.
    """

    name: str
    type: str
    skeleton: SkeletonSpec | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("a class needs a non-empty name")
        if self.type not in GEOMETRY_TYPES:
            raise ValueError(f"class {self.name!r}: type {self.type!r} is not one of {GEOMETRY_TYPES}")
        if (self.type == "skeleton") != (self.skeleton is not None):
            raise ValueError(f"class {self.name!r}: a skeleton class needs a SkeletonSpec, and only it")


@dataclass(frozen=True)
class ModelFile:
    """A file a model needs, by its official name and download URL.

    `sha256` is the official file's checksum where it is known; None means "not pinned"
    (a downloaded file is then used as it comes; a file the user placed is always used as is).
    """

    name: str
    url: str
    sha256: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and returns: the part of a model the server needs without loading it.

    `name` is the model's URL segment (/models/NAME/infer) and must be unique among all models;
    `classes` are its output classes; `files` are weights it needs, looked up in BYOM_MODEL_DIR and
    the download cache and handed to the constructor by path (a model may equally load its weights
    from a path of its own).
    """

    name: str
    description: str
    classes: tuple[ClassSpec, ...]
    files: tuple[ModelFile, ...] = ()
    #: Confidence below which results are dropped when neither request nor config says otherwise.
    default_threshold: float = 0.5

    def __post_init__(self) -> None:
        names = [c.name for c in self.classes]
        if not names:
            raise ValueError(f"model {self.name!r} declares no classes")
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name!r} declares a class name twice")

    def class_named(self, name: str) -> ClassSpec | None:
        """The declared class of this name, or None."""
        return next((c for c in self.classes if c.name == name), None)


@dataclass(frozen=True)
class DetectOptions:
    """What the caller asked for, in pixels of the image `detect` receives.

    `box_xywh` is the Auto-Annotate box the user drew (None when the whole image was sent);
    models that segment "what is in the box" use it, others can ignore it (the driver already
    gives them only the box plus a margin, and drops results outside it).

    `threshold` is the request's threshold, else the spec's default: the driver drops results
    below it anyway (and below a class's threshold from the mapping file), so a model only needs
    it to skip work, or to pass it to a detector that filters by score itself.
    """

    threshold: float = 0.5
    box_xywh: tuple[float, float, float, float] | None = None


class Model:
    """Base class for every model, built in or the user's own.

    Subclasses set `spec` and implement `detect`. The constructor receives the resolved
    paths of `spec.files` by file name, and should load the weights once there.

    Each server process makes one instance, on first use, and may call `detect` from several
    threads at once: guard anything that is not thread-safe (most native detectors) with a lock.
    An exception in the constructor or in `detect` becomes a failed answer naming the model
    (ModelFailed); the server keeps serving.
    """

    spec: ClassVar[ModelSpec]

    def __init__(self, files: Mapping[str, Path] | None = None) -> None:
        self.files = dict(files or {})

    def detect(self, image_rgb: np.ndarray, options: DetectOptions) -> list[dict[str, Any]]:
        """The results found in `image_rgb` (H x W x 3, uint8, RGB, C-contiguous), in its pixels.

        Return a list of dicts built with the helpers below, one per found object. Each needs a
        declared class as label, a confidence from 0 to 1 and exactly the geometry its class
        declares; coordinates are pixels of `image_rgb` with the origin at its top-left corner
        (slightly outside is clipped; far outside is refused as a bug). The driver checks every
        result and refuses the whole answer with ModelContractError naming the broken rule.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement detect(image_rgb, options)")

    def close(self) -> None:
        """Free native resources (MediaPipe tasks); called once when the process is done with the model."""


# Result builders: small helpers so that adapters never spell V7's keys by hand.


def _result(
    label: str, confidence: float, geometry: str, value: Any, attributes: Iterable[str] = (), text: str | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {"label": label, "confidence": float(confidence), geometry: value}
    attributes = list(attributes)
    if attributes:
        result["attributes"] = attributes
    if text is not None:
        result["text"] = {"text": text}
    return result


def bounding_box(label: str, confidence: float, xywh: Sequence[float], **extra: Any) -> dict[str, Any]:
    """A box from its top-left corner, width and height: (x, y, w, h). `extra`: attributes=[...], text="..."."""
    x, y, w, h = (float(v) for v in xywh)
    return _result(label, confidence, "bounding_box", {"x": x, "y": y, "w": w, "h": h}, **extra)


def polygon(label: str, confidence: float, points_xy: Iterable[Sequence[float]], **extra: Any) -> dict[str, Any]:
    """One closed ring of at least 3 (x, y) points (an OpenCV contour's `.reshape(-1, 2)` will do)."""
    path = [{"x": float(x), "y": float(y)} for x, y in points_xy]
    return _result(label, confidence, "polygon", {"path": path}, **extra)


def line(label: str, confidence: float, points_xy: Iterable[Sequence[float]], **extra: Any) -> dict[str, Any]:
    """An open path of at least 2 (x, y) points."""
    path = [{"x": float(x), "y": float(y)} for x, y in points_xy]
    return _result(label, confidence, "line", {"path": path}, **extra)


def keypoint(label: str, confidence: float, xy: Sequence[float], **extra: Any) -> dict[str, Any]:
    """One point (x, y)."""
    return _result(label, confidence, "keypoint", {"x": float(xy[0]), "y": float(xy[1])}, **extra)


def skeleton(
    label: str, confidence: float, nodes: Iterable[tuple[str, float, float, bool]], **extra: Any
) -> dict[str, Any]:
    """`nodes` are (name, x, y, occluded) for every node, in the order the class declares them."""
    value = {"nodes": [{"name": n, "x": float(x), "y": float(y), "occluded": bool(o)} for n, x, y, o in nodes]}
    return _result(label, confidence, "skeleton", value, **extra)


def tag(label: str, confidence: float, **extra: Any) -> dict[str, Any]:
    """A tag: a class for the whole image (or the whole Auto-Annotate box), with no geometry."""
    return _result(label, confidence, "tag", {}, **extra)
