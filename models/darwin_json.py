"""V7 results -> a Darwin JSON 2.0 file (V7's annotation format, which `darwin-py` imports).

One pure conversion shared by the playground's download button and `python run.py annotate`.
Differences from the BYOM answer it starts from (see the contract, section 7):
- a polygon is `{"paths": [ring]}` (not `{"path": ring}`) and carries its `bounding_box` too;
- confidence and model go into the `inference` sub-annotation;
- every annotation gets an `id` (uuid4) and `slot_names: ["0"]`.

V7 decides an annotation's type from the registered class, not from the result, and drops results
of unknown classes; `class_types` (V7 class name -> type, as `GET /classes` lists) does the same
here: results of classes it does not name are left out, and a polygon/bounding_box mismatch (which
V7 treats as interchangeable) is converted to the class's type.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

DARWIN_SCHEMA_REF = "https://darwin-public.s3.eu-west-1.amazonaws.com/darwin_json/2.0/schema.json"
#: Geometry keys this conversion writes (V7's BYOM answer may carry exactly one of them).
CONVERTIBLE_GEOMETRIES = ("bounding_box", "polygon", "keypoint", "line", "skeleton", "tag")


def _point(p: Mapping[str, Any]) -> dict[str, float]:
    return {"x": float(p["x"]), "y": float(p["y"])}


def bounding_box_of_path(path: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    xs, ys = zip(*((float(p["x"]), float(p["y"])) for p in path), strict=True)
    # rounded like the driver's coordinates, so that differences carry no float noise (108.67000000000002)
    return {"x": min(xs), "y": min(ys), "w": round(max(xs) - min(xs), 2), "h": round(max(ys) - min(ys), 2)}


def _geometry_of(result: Mapping[str, Any]) -> str | None:
    found = [key for key in CONVERTIBLE_GEOMETRIES if key in result]
    return found[0] if len(found) == 1 else None


def _darwin_geometry(geometry: str, value: Mapping[str, Any], wanted: str) -> dict[str, Any] | None:
    """The Darwin keys for one result's geometry, converted to `wanted` where V7 would; None to drop it."""
    if geometry == "polygon" and wanted == "bounding_box":
        return {"bounding_box": bounding_box_of_path(value["path"])}
    if geometry == "bounding_box" and wanted == "polygon":
        x, y, w, h = (float(value[k]) for k in ("x", "y", "w", "h"))
        value = {"path": [{"x": x, "y": y}, {"x": x + w, "y": y}, {"x": x + w, "y": y + h}, {"x": x, "y": y + h}]}
        geometry = "polygon"
    if geometry != wanted:
        return None
    if geometry == "bounding_box":
        return {"bounding_box": {k: float(value[k]) for k in ("x", "y", "w", "h")}}
    if geometry == "polygon":
        ring = [_point(p) for p in value["path"]]
        return {"polygon": {"paths": [ring]}, "bounding_box": bounding_box_of_path(ring)}
    if geometry == "line":
        return {"line": {"path": [_point(p) for p in value["path"]]}}
    if geometry == "keypoint":
        return {"keypoint": _point(value)}
    if geometry == "skeleton":
        nodes = [
            {"name": str(n["name"]), "occluded": bool(n["occluded"]), "x": float(n["x"]), "y": float(n["y"])}
            for n in value["nodes"]
        ]
        return {"skeleton": {"nodes": nodes}}
    return {"tag": {}}


def darwin_json_from_results(
    results: Iterable[Mapping[str, Any]],
    *,
    file_name: str,
    width: int,
    height: int,
    model_name: str,
    class_types: Mapping[str, str] | None = None,
    path: str = "/",
) -> dict[str, Any]:
    """A Darwin JSON 2.0 document for one image from BYOM results (absolute pixels of that image).

    `class_types` maps V7 class names to annotation types; None keeps every result with its own type.
    Results without a class name or with no single known geometry are left out (V7 drops them too).
    """
    annotations = []
    for result in results:
        name = result.get("label") or result.get("name")
        geometry = _geometry_of(result)
        if not isinstance(name, str) or geometry is None:
            continue
        wanted = geometry if class_types is None else class_types.get(name)
        if wanted is None:
            continue
        keys = _darwin_geometry(geometry, result[geometry], wanted)
        if keys is None:
            continue
        annotation: dict[str, Any] = {"id": str(uuid.uuid4()), "name": name, "slot_names": ["0"], **keys}
        confidence = result.get("confidence")
        if isinstance(confidence, int | float) and not isinstance(confidence, bool):
            annotation["inference"] = {
                "confidence": float(confidence),
                "model": {"name": model_name, "type": "external"},
            }
        if result.get("attributes"):
            annotation["attributes"] = [str(a) for a in result["attributes"]]
        text = result.get("text")
        if isinstance(text, Mapping) and isinstance(text.get("text"), str):
            annotation["text"] = {"text": text["text"]}
        annotations.append(annotation)
    return {
        "version": "2.0",
        "schema_ref": DARWIN_SCHEMA_REF,
        "item": {
            "name": file_name,
            "path": path,
            "slots": [
                {
                    "type": "image",
                    "slot_name": "0",
                    "width": int(width),
                    "height": int(height),
                    "source_files": [{"file_name": file_name}],
                }
            ],
        },
        "annotations": annotations,
    }
