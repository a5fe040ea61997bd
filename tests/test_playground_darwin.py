"""Darwin JSON 2.0 export, checked with V7's own reader (darwin-py)."""

from __future__ import annotations

import json
import uuid

import pytest

from models.darwin_json import darwin_json_from_results

darwin_utils = pytest.importorskip("darwin.utils", reason="darwin-py (V7's importer) is not installed")

RESULTS = [
    {"name": "face", "label": "face", "confidence": 0.91, "bounding_box": {"x": 10, "y": 20, "w": 30, "h": 40}},
    {
        "name": "lips",
        "label": "lips",
        "confidence": 0.8,
        "polygon": {"path": [{"x": 1, "y": 1}, {"x": 9, "y": 1}, {"x": 5, "y": 9}]},
    },
    {
        "name": "person",
        "label": "person",
        "confidence": 0.99,
        "skeleton": {
            "nodes": [
                {"name": "nose", "x": 5, "y": 6, "occluded": False},
                {"name": "left_eye", "x": 7, "y": 5, "occluded": True},
            ]
        },
        "attributes": ["left"],
    },
    {"name": "tip", "label": "tip", "confidence": 0.5, "keypoint": {"x": 3, "y": 4}},
    {"name": "edge", "label": "edge", "confidence": 0.6, "line": {"path": [{"x": 0, "y": 0}, {"x": 5, "y": 5}]}},
    {"name": "indoor", "label": "indoor", "confidence": 0.7, "tag": {}, "text": {"text": "kitchen"}},
]


def parse(tmp_path, document):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(document))
    return darwin_utils.parse_darwin_json(path)


def test_every_geometry_is_read_back_by_darwin_py(tmp_path):
    document = darwin_json_from_results(RESULTS, file_name="a.jpg", width=64, height=48, model_name="m")
    parsed = parse(tmp_path, document)
    assert parsed.filename == "a.jpg"
    assert (parsed.image_width, parsed.image_height) == (64, 48)
    by_name = {a.annotation_class.name: a for a in parsed.annotations}
    assert {n: a.annotation_class.annotation_type for n, a in by_name.items()} == {
        "face": "bounding_box",
        "lips": "polygon",
        "person": "skeleton",
        "tip": "keypoint",
        "edge": "line",
        "indoor": "tag",
    }
    assert by_name["face"].data == {"x": 10.0, "y": 20.0, "w": 30.0, "h": 40.0}
    assert [n["name"] for n in by_name["person"].data["nodes"]] == ["nose", "left_eye"]
    assert by_name["person"].data["nodes"][1]["occluded"] is True
    assert by_name["tip"].data == {"x": 3.0, "y": 4.0}


def test_polygon_uses_paths_and_carries_its_bounding_box():
    document = darwin_json_from_results(RESULTS[1:2], file_name="a.jpg", width=10, height=10, model_name="m")
    annotation = document["annotations"][0]
    assert annotation["polygon"] == {"paths": [[{"x": 1.0, "y": 1.0}, {"x": 9.0, "y": 1.0}, {"x": 5.0, "y": 9.0}]]}
    assert annotation["bounding_box"] == {"x": 1.0, "y": 1.0, "w": 8.0, "h": 8.0}


def test_sub_annotations_confidence_model_attributes_text(tmp_path):
    document = darwin_json_from_results(RESULTS, file_name="a.jpg", width=64, height=48, model_name="pose")
    by_name = {a["name"]: a for a in document["annotations"]}
    assert by_name["face"]["inference"] == {"confidence": 0.91, "model": {"name": "pose", "type": "external"}}
    assert by_name["person"]["attributes"] == ["left"]
    assert by_name["indoor"]["text"] == {"text": "kitchen"}
    assert all(a["slot_names"] == ["0"] and uuid.UUID(a["id"]).version == 4 for a in document["annotations"])
    parsed = {a.annotation_class.name: a for a in parse(tmp_path, document).annotations}
    assert parsed["face"].get_sub("inference").data["confidence"] == 0.91


def test_header_matches_the_contract():
    document = darwin_json_from_results([], file_name="b.png", width=3, height=2, model_name="m")
    assert document["version"] == "2.0"
    assert document["schema_ref"].endswith("/darwin_json/2.0/schema.json")
    assert document["item"] == {
        "name": "b.png",
        "path": "/",
        "slots": [
            {"type": "image", "slot_name": "0", "width": 3, "height": 2, "source_files": [{"file_name": "b.png"}]}
        ],
    }
    assert document["annotations"] == []


def test_class_types_drop_unknown_classes_as_v7_does():
    document = darwin_json_from_results(
        RESULTS, file_name="a.jpg", width=64, height=48, model_name="m", class_types={"face": "bounding_box"}
    )
    assert [a["name"] for a in document["annotations"]] == ["face"]


def test_class_types_convert_polygon_and_box_which_v7_treats_as_interchangeable():
    document = darwin_json_from_results(
        RESULTS[:2],
        file_name="a.jpg",
        width=64,
        height=48,
        model_name="m",
        class_types={"face": "polygon", "lips": "bounding_box"},
    )
    face, lips = document["annotations"]
    assert face["polygon"]["paths"][0] == [
        {"x": 10.0, "y": 20.0},
        {"x": 40.0, "y": 20.0},
        {"x": 40.0, "y": 60.0},
        {"x": 10.0, "y": 60.0},
    ]
    assert "polygon" not in lips and lips["bounding_box"] == {"x": 1.0, "y": 1.0, "w": 8.0, "h": 8.0}


def test_other_type_mismatch_and_malformed_results_are_left_out():
    results = [RESULTS[2], {"label": "x", "confidence": 1, "bounding_box": {}, "polygon": {}}, {"confidence": 1}]
    document = darwin_json_from_results(
        results, file_name="a.jpg", width=64, height=48, model_name="m", class_types={"person": "polygon", "x": "tag"}
    )
    assert document["annotations"] == []
