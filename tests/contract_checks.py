"""Assertions every /infer answer must pass: V7's schema, ours, and names as /classes lists them."""

from __future__ import annotations

import jsonschema

from server.response_schema import CLASSES_SCHEMA, RESPONSE_SCHEMA


def assert_v7_answer(
    body: dict, v7_schema: dict, classes: list[dict] | None = None, resolution_wh: tuple[int, int] | None = None
) -> None:
    jsonschema.validate(body, v7_schema)
    jsonschema.validate(body, RESPONSE_SCHEMA)
    for result in body["results"]:
        assert result["name"] == result["label"]
    if classes is not None:
        jsonschema.validate(classes, CLASSES_SCHEMA)
        types = {c["name"]: c["type"] for c in classes}
        for result in body["results"]:
            assert result["name"] in types, f"{result['name']} is not in /classes {sorted(types)}"
            assert types[result["name"]] in result, f"{result['name']} lacks its {types[result['name']]} geometry"
    if resolution_wh is not None:
        width, height = resolution_wh
        for result in body["results"]:
            for point in points_of(result):
                assert 0 <= point["x"] <= width and 0 <= point["y"] <= height, (result["name"], point)


def points_of(result: dict) -> list[dict]:
    if "bounding_box" in result:
        b = result["bounding_box"]
        return [{"x": b["x"], "y": b["y"]}, {"x": b["x"] + b["w"], "y": b["y"] + b["h"]}]
    if "polygon" in result:
        return result["polygon"]["path"]
    if "skeleton" in result:
        return result["skeleton"]["nodes"]
    if "keypoint" in result:
        return [result["keypoint"]]
    if "line" in result:
        return result["line"]["path"]
    return []
