"""The one driver every model goes through: crop, detect, check, shift, clip, filter, map.

Models stay small because all checking of their output lives here: a model that breaks a
rule gets a `ModelContractError` naming the model and the rule, never a malformed answer.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.base import DetectOptions, Model, ModelSpec
from models.geometry import (
    clip_result,
    crop_region_xyxy,
    point_in_xywh,
    result_center_xy,
    round_result,
    shift_result,
)
from models.mapping import ClassMapping

#: Geometry keys V7's schema knows; a result carries exactly one of them.
V7_GEOMETRY_KEYS = (
    "bounding_box",
    "polygon",
    "keypoint",
    "line",
    "skeleton",
    "tag",
    "ellipse",
    "cuboid",
    "directional_vector",
)
ALLOWED_RESULT_KEYS = {"label", "name", "confidence", "attributes", "text", *V7_GEOMETRY_KEYS}
#: Coordinates further than this many image sizes outside the image are a bug (wrong scale), not a
#: face at the border: those are rejected; nearer ones are clipped.
MAX_OUTSIDE_FRACTION = 1.0


class ModelContractError(RuntimeError):
    """A model returned something V7 cannot take; the message names the model and the rule."""

    def __init__(self, model_name: str, rule: str, detail: str) -> None:
        self.model_name, self.rule, self.detail = model_name, rule, detail
        super().__init__(f"model {model_name!r} broke the rule '{rule}': {detail}")


def raised_where(exc: BaseException) -> str:
    """' (at my_model.py:12)': the line that raised, by file name only (no server paths in answers)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


class ModelFailed(RuntimeError):
    """A model raised while detecting; the message names the model, the exception and its line."""

    def __init__(self, model_name: str, exc: BaseException) -> None:
        self.model_name = model_name
        super().__init__(f"model {model_name!r} failed: {type(exc).__name__}: {exc}{raised_where(exc)}")


@dataclass(frozen=True)
class Request:
    """What one inference asks for, in pixels of the full image."""

    box_xywh: tuple[float, float, float, float] | None = None
    threshold: float | None = None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _type_hint(value: Any, keys: str = "") -> str:
    """Why a value that looks like a number is not one here (numpy scalars are the usual culprit).

    With `keys`, `value` is a dict and the hint is about its first non-numeric key.
    """
    if keys:
        value = (
            next((value.get(k) for k in keys if not _is_number(value.get(k))), None)
            if isinstance(value, dict)
            else None
        )
    if isinstance(value, np.generic):
        return f" (a numpy {type(value).__name__}: convert it with float())"
    if isinstance(value, str):
        return " (a string, not a number)"
    return ""


def _check_point(fail, where: str, point: Any, resolution_wh: tuple[int, int]) -> None:
    if not isinstance(point, dict) or not _is_number(point.get("x")) or not _is_number(point.get("y")):
        fail(
            "coordinates are finite numbers",
            f"{where} must be an object with numeric x and y, got {point!r}{_type_hint(point, 'xy')}",
        )
    width, height = resolution_wh
    if not (-MAX_OUTSIDE_FRACTION * width <= point["x"] <= (1 + MAX_OUTSIDE_FRACTION) * width) or not (
        -MAX_OUTSIDE_FRACTION * height <= point["y"] <= (1 + MAX_OUTSIDE_FRACTION) * height
    ):
        fail(
            "coordinates inside the image",
            f"{where} ({point['x']}, {point['y']}) is far outside the {width}x{height} image given to the model "
            "(pixels of that image are expected, origin top-left)",
        )


def _check_path(fail, where: str, value: Any, min_points: int, resolution_wh: tuple[int, int]) -> None:
    path = value.get("path") if isinstance(value, dict) else None
    if not isinstance(path, list) or len(path) < min_points:
        fail("geometry well formed", f"{where} needs 'path': a list of at least {min_points} points")
    for i, point in enumerate(path):
        _check_point(fail, f"{where}.path[{i}]", point, resolution_wh)


def check_result(spec: ModelSpec, result: Any, resolution_wh: tuple[int, int]) -> None:
    """Raise ModelContractError unless `result` is one valid result of this model."""

    def fail(rule: str, detail: str) -> None:
        raise ModelContractError(spec.name, rule, detail)

    if not isinstance(result, dict):
        fail("a result is a dict", f"got {type(result).__name__}")
    unknown = set(result) - ALLOWED_RESULT_KEYS
    if unknown:
        fail("only known keys", f"unknown key(s) {sorted(unknown)}; allowed: {sorted(ALLOWED_RESULT_KEYS)}")
    label = result.get("label", result.get("name"))
    class_spec = spec.class_named(label) if isinstance(label, str) else None
    if class_spec is None:
        fail("label is a declared class", f"label {label!r} is not one of {[c.name for c in spec.classes]}")
    confidence = result.get("confidence")
    if not _is_number(confidence) or not 0 <= confidence <= 1:
        fail("confidence is a number from 0 to 1", f"{label}: confidence {confidence!r}{_type_hint(confidence)}")
    geometries = [k for k in V7_GEOMETRY_KEYS if k in result]
    if len(geometries) != 1:
        fail("exactly one geometry", f"{label}: has {geometries or 'no geometry'}")
    geometry = geometries[0]
    if geometry != class_spec.type:
        fail("geometry matches the class type", f"{label} is declared {class_spec.type} but returned {geometry}")
    value = result[geometry]
    if geometry == "bounding_box":
        if not isinstance(value, dict) or not all(_is_number(value.get(k)) for k in "xywh"):
            fail(
                "geometry well formed",
                f"{label}: bounding_box needs numeric x, y, w, h, got {value!r}{_type_hint(value, 'xywh')}",
            )
        if value["w"] < 0 or value["h"] < 0:
            fail("box sizes are not negative", f"{label}: w={value['w']}, h={value['h']}")
        _check_point(fail, f"{label}.bounding_box", value, resolution_wh)
        far_corner = {"x": value["x"] + value["w"], "y": value["y"] + value["h"]}
        _check_point(fail, f"{label}.bounding_box far corner (x+w, y+h)", far_corner, resolution_wh)
    elif geometry == "polygon":
        _check_path(fail, f"{label}.polygon", value, 3, resolution_wh)
    elif geometry == "line":
        _check_path(fail, f"{label}.line", value, 2, resolution_wh)
    elif geometry == "keypoint":
        _check_point(fail, f"{label}.keypoint", value, resolution_wh)
    elif geometry == "skeleton":
        nodes = value.get("nodes") if isinstance(value, dict) else None
        if not isinstance(nodes, list):
            fail("geometry well formed", f"{label}: skeleton needs 'nodes': a list")
        names = [n.get("name") if isinstance(n, dict) else None for n in nodes]
        declared = list(class_spec.skeleton.nodes)
        if names != declared:
            extra = [n for n in names if n not in declared]
            fail(
                "skeleton nodes as declared",
                f"{label}: nodes {names} differ from the declared {declared}"
                + (f" (undeclared: {extra})" if extra else ""),
            )
        for node in nodes:
            _check_point(fail, f"{label}.skeleton node {node['name']!r}", node, resolution_wh)
            if not isinstance(node.get("occluded"), bool):
                fail("geometry well formed", f"{label}: node {node['name']!r} needs 'occluded' true or false")
    elif geometry == "tag":
        if value != {}:
            fail("geometry well formed", f"{label}: tag must be an empty object, got {value!r}")
    else:
        fail("geometry supported", f"{label}: {geometry} results are not supported by this server")
    attributes = result.get("attributes")
    if attributes is not None and (not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes)):
        fail("attributes are strings", f"{label}: attributes must be a list of strings, got {attributes!r}")
    text = result.get("text")
    if text is not None and (not isinstance(text, dict) or not isinstance(text.get("text"), str)):
        fail("text is {text: str}", f"{label}: got {text!r}")


def effective_threshold(spec: ModelSpec, class_threshold: float | None, request_threshold: float | None) -> float:
    """The request's threshold (Auto-Annotate sends one) replaces the model default; a class
    threshold set in the mapping is a floor neither can go below."""
    base = spec.default_threshold if request_threshold is None else request_threshold
    return base if class_threshold is None else max(base, class_threshold)


def run_model(
    model: Model,
    image_rgb: np.ndarray,
    request: Request = Request(),
    mapping: ClassMapping | None = None,
) -> list[dict[str, Any]]:
    """Run one model on a full image and return V7 results in full-image pixels."""
    spec = model.spec
    mapping = mapping or ClassMapping()
    height, width = image_rgb.shape[:2]
    x0, y0 = 0, 0
    region = image_rgb
    box_in_region = None
    if request.box_xywh is not None:
        x0, y0, x1, y1 = crop_region_xyxy(request.box_xywh, (width, height))
        region = np.ascontiguousarray(image_rgb[y0:y1, x0:x1])
        bx, by, bw, bh = request.box_xywh
        box_in_region = (bx - x0, by - y0, bw, bh)
    region_wh = (region.shape[1], region.shape[0])
    base_threshold = spec.default_threshold if request.threshold is None else request.threshold
    try:
        raw_results = model.detect(region, DetectOptions(threshold=base_threshold, box_xywh=box_in_region))
    except Exception as exc:  # a model's own bug must not take the server down
        raise ModelFailed(spec.name, exc) from exc
    if not isinstance(raw_results, Sequence) or isinstance(raw_results, str | bytes | dict):
        raise ModelContractError(spec.name, "detect returns a list", f"got {type(raw_results).__name__}")

    results = []
    for raw in raw_results:
        check_result(spec, raw, region_wh)
        label = raw.get("label", raw.get("name"))
        rule = mapping.rule(spec.name, label)
        if not rule.enabled or raw["confidence"] < effective_threshold(spec, rule.threshold, request.threshold):
            continue
        result = shift_result(raw, x0, y0) if (x0, y0) != (0, 0) else raw
        result = clip_result(result, (width, height))
        if result is None:
            continue
        center = result_center_xy(result)
        if request.box_xywh is not None and center is not None and not point_in_xywh(center, request.box_xywh):
            continue
        result = round_result(result)
        if clip_result(result, (width, height)) is None:  # rounding to 0.01 px can leave a zero-size box
            continue
        result.pop("label", None)
        result.pop("name", None)
        result["confidence"] = round(result["confidence"], 4)
        results.append({"name": rule.v7_name, "label": rule.v7_name, **result})
    return results


def run_models(
    models: Sequence[Model], image_rgb: np.ndarray, request: Request = Request(), mapping: ClassMapping | None = None
) -> list[dict[str, Any]]:
    """Run several models on one image (the default endpoint) and join their results."""
    return [r for model in models for r in run_model(model, image_rgb, request, mapping)]
