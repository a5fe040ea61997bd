"""This project's own JSON Schema of an /infer answer: V7's contract, stated more strictly.

V7's published schema is the outside oracle; this one adds what the contract says in words:
`results` always present, `name` equal to `label`, `error` on failures, boxes of positive
size, coordinates not negative, skeleton nodes named. Tests validate every answer against both.
"""

from __future__ import annotations

from typing import Any

_NUMBER_NOT_NEGATIVE = {"type": "number", "minimum": 0}
_POINT = {
    "type": "object",
    "required": ["x", "y"],
    "properties": {"x": _NUMBER_NOT_NEGATIVE, "y": _NUMBER_NOT_NEGATIVE},
}
_PATH = {"type": "array", "items": _POINT}

_GEOMETRIES: dict[str, Any] = {
    "bounding_box": {
        "type": "object",
        "required": ["x", "y", "w", "h"],
        "additionalProperties": False,
        "properties": {
            "x": _NUMBER_NOT_NEGATIVE,
            "y": _NUMBER_NOT_NEGATIVE,
            "w": {"type": "number", "exclusiveMinimum": 0},
            "h": {"type": "number", "exclusiveMinimum": 0},
        },
    },
    "polygon": {
        "type": "object",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {"path": {**_PATH, "minItems": 3}},
    },
    "line": {
        "type": "object",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {"path": {**_PATH, "minItems": 2}},
    },
    "keypoint": {**_POINT, "additionalProperties": False},
    "skeleton": {
        "type": "object",
        "required": ["nodes"],
        "additionalProperties": False,
        "properties": {
            "nodes": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "x", "y", "occluded"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "x": _NUMBER_NOT_NEGATIVE,
                        "y": _NUMBER_NOT_NEGATIVE,
                        "occluded": {"type": "boolean"},
                    },
                },
            }
        },
    },
    "tag": {"type": "object", "maxProperties": 0},
}

RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "label", "confidence"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "label": {"type": "string", "minLength": 1},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "attributes": {"type": "array", "items": {"type": "string"}},
        "text": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
        **_GEOMETRIES,
    },
    "oneOf": [{"required": [key]} for key in _GEOMETRIES],
}

RESPONSE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "byom-playground /infer answer",
    "type": "object",
    "required": ["status", "results"],
    "properties": {
        "status": {"enum": ["succeeded", "failed"]},
        "results": {"type": "array", "items": RESULT_SCHEMA},
        "error": {"type": "string", "minLength": 1},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
    "if": {"properties": {"status": {"const": "failed"}}},
    "then": {"required": ["error"], "properties": {"results": {"maxItems": 0}}},
}

CLASSES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "type"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "type": {"enum": ["bounding_box", "polygon", "keypoint", "line", "skeleton", "tag", "ellipse", "cuboid"]},
        },
    },
}
