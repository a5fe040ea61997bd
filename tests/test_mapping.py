"""The class-mapping file: validation, endpoint classes, atomic save and pick-up of changes."""

from __future__ import annotations

import json
import os

import pytest

from models.base import ClassSpec, ModelSpec, SkeletonSpec
from models.mapping import ClassMapping, ClassRule, ConfigError, MappingFile

FACES = ModelSpec("faces", "", (ClassSpec("face", "bounding_box"), ClassSpec("eye", "polygon")))
OTHER_FACES = ModelSpec("other-faces", "", (ClassSpec("face", "bounding_box"),))
PEOPLE = ModelSpec("people", "", (ClassSpec("person", "skeleton", SkeletonSpec(("a", "b"), (("a", "b"),))),))
SPECS = {s.name: s for s in (FACES, OTHER_FACES, PEOPLE)}


def names_and_types(mapping: ClassMapping, *specs: ModelSpec) -> list[tuple[str, str]]:
    return [(c.name, c.type) for c in mapping.endpoint_classes(specs)]


def test_defaults_keep_model_class_names():
    assert names_and_types(ClassMapping(), FACES, PEOPLE) == [
        ("face", "bounding_box"),
        ("eye", "polygon"),
        ("person", "skeleton"),
    ]


def test_renamed_and_disabled_classes():
    mapping = (
        ClassMapping().with_rule("faces", "face", ClassRule("Face")).with_rule("faces", "eye", ClassRule("eye", False))
    )
    assert names_and_types(mapping, FACES) == [("Face", "bounding_box")]


def test_two_models_may_share_a_name_of_the_same_type():
    classes = ClassMapping().endpoint_classes([FACES, OTHER_FACES])
    assert [(c.name, len(c.sources)) for c in classes] == [("face", 2), ("eye", 1)]


def test_one_name_for_two_types_is_an_error():
    mapping = ClassMapping().with_rule("faces", "eye", ClassRule("face"))
    with pytest.raises(ConfigError, match="V7 class name 'face' is used for faces/face .bounding_box. and faces/eye"):
        mapping.endpoint_classes([FACES])


def test_validate_checks_the_default_endpoint_too():
    mapping = ClassMapping(default_models=("faces", "people")).with_rule("people", "person", ClassRule("face"))
    with pytest.raises(ConfigError, match="one name, one type"):
        mapping.validate(SPECS)
    with pytest.raises(ConfigError, match="unknown models: nope"):
        ClassMapping(default_models=("nope",)).validate(SPECS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a JSON object"),
        ({"default_models": "pose"}, "'default_models' must be a list"),
        ({"default_models": []}, "at least one model"),
        ({"classes": {"m": {"c": {"v7_name": ""}}}}, "m/c: 'v7_name' must be a non-empty string"),
        ({"classes": {"m": {"c": {"v7_name": " face"}}}}, "leading or trailing spaces"),
        ({"classes": {"m": {"c": {"v7_name": "f", "enabled": "yes"}}}}, "'enabled' must be true or false"),
        ({"classes": {"m": {"c": {"v7_name": "f", "threshold": 2}}}}, "outside 0..1"),
        ({"classes": {"m": {"c": {"v7_name": "f", "threshold": "high"}}}}, "must be a number from 0 to 1"),
        ({"classes": {"m": []}}, "'classes.m' must be an object"),
    ],
)
def test_invalid_mappings_say_why(data, message):
    with pytest.raises(ConfigError, match=message):
        ClassMapping.from_json(data)


def test_json_round_trip():
    mapping = ClassMapping(("faces",)).with_rule("faces", "face", ClassRule("Face", True, 0.7))
    assert ClassMapping.from_json(json.loads(json.dumps(mapping.to_json()))) == mapping


def test_file_changes_are_picked_up_without_restart(tmp_path):
    path = tmp_path / "config.json"
    reader = MappingFile(path)
    assert reader.load() == ClassMapping()  # missing file: defaults
    MappingFile(path).save(ClassMapping().with_rule("faces", "face", ClassRule("Face")))  # another process
    assert reader.load().rule("faces", "face").v7_name == "Face"
    path.write_text(json.dumps({"classes": {"faces": {"face": {"v7_name": "Visage"}}}}))
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    assert reader.load().rule("faces", "face").v7_name == "Visage"


def test_a_broken_file_keeps_the_last_good_mapping_and_reports(tmp_path):
    path = tmp_path / "config.json"
    reader = MappingFile(path, validate=lambda m: m.validate(SPECS))
    MappingFile(path).save(ClassMapping(("faces",)).with_rule("faces", "face", ClassRule("Face")))
    assert reader.load().rule("faces", "face").v7_name == "Face"
    path.write_text("{not json")
    assert reader.load().rule("faces", "face").v7_name == "Face"
    assert "config.json" in reader.last_error
    path.write_text(json.dumps({"default_models": ["ghost"]}))
    assert reader.load().default_models == ("faces",)
    assert "unknown models: ghost" in reader.last_error


def test_save_leaves_no_temporary_files(tmp_path):
    MappingFile(tmp_path / "config.json").save(ClassMapping())
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
