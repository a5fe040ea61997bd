"""Every rule the driver holds a model to, one breach per test, asserted on the error's text.

Each fake model is built in one line by `returning(...)`: a valid result of each type with one thing
changed, so that only the rule under test can fail. The last tests serve models that break rules
through a real gunicorn, beside a working model that must keep answering.
"""

from __future__ import annotations

import base64
import math
import textwrap

import numpy as np
import pytest
import requests

from models.base import ClassSpec, Model, ModelSpec, SkeletonSpec
from models.driver import ModelContractError, ModelFailed, Request, run_model
from models.files import ModelFileLocator
from models.registry import ModelLoadFailed, ModelRegistry
from models.samples import encode_png
from tests.contract_checks import assert_v7_answer
from tests.servers import start_api

IMAGE = np.zeros((100, 200, 3), np.uint8)  # 200 x 100: the size the error messages must quote
CLASSES = (
    ClassSpec("face", "bounding_box"),
    ClassSpec("outline", "polygon"),
    ClassSpec("path", "line"),
    ClassSpec("spot", "keypoint"),
    ClassSpec("person", "skeleton", SkeletonSpec(("head", "hip", "foot"), (("head", "hip"), ("hip", "foot")))),
    ClassSpec("scene", "tag"),
)
NODES = [
    {"name": "head", "x": 50.0, "y": 10.0, "occluded": False},
    {"name": "hip", "x": 50.0, "y": 50.0, "occluded": False},
    {"name": "foot", "x": 50.0, "y": 90.0, "occluded": True},
]
VALID = {
    "face": {"label": "face", "confidence": 0.9, "bounding_box": {"x": 10, "y": 10, "w": 40, "h": 30}},
    "outline": {
        "label": "outline",
        "confidence": 0.9,
        "polygon": {"path": [{"x": 1, "y": 1}, {"x": 9, "y": 1}, {"x": 5, "y": 9}]},
    },
    "path": {"label": "path", "confidence": 0.9, "line": {"path": [{"x": 1, "y": 1}, {"x": 90, "y": 50}]}},
    "spot": {"label": "spot", "confidence": 0.9, "keypoint": {"x": 20, "y": 30}},
    "person": {"label": "person", "confidence": 0.9, "skeleton": {"nodes": NODES}},
    "scene": {"label": "scene", "confidence": 0.9, "tag": {}},
}


def returning(output, name: str = "fake") -> Model:
    """A model whose detect returns `output` (or calls it, when it is a function of the image)."""
    spec = ModelSpec(name, "a fake model breaking one rule", CLASSES, default_threshold=0.0)
    detect = (lambda self, image, options: output(image)) if callable(output) else (lambda self, i, o: output)
    return type("Fake", (Model,), {"spec": spec, "detect": detect})()


def changed(class_name: str, **changes) -> dict:
    """A valid result of this class with some keys replaced (None removes a key)."""
    result = {**VALID[class_name], **changes}
    return {k: v for k, v in result.items() if v is not None}


def breach(output, request: Request | None = None) -> str:
    """The message of the ModelContractError a model returning `output` gets."""
    with pytest.raises(ModelContractError) as caught:
        run_model(returning(output), IMAGE, request or Request())
    message = str(caught.value)
    assert message.startswith("model 'fake' broke the rule '"), message
    return message


def test_a_valid_result_of_every_type_passes():
    results = run_model(returning(list(VALID.values())), IMAGE)

    assert [r["name"] for r in results] == list(VALID)
    assert all(r["name"] == r["label"] for r in results)


# -- the shape of detect's output ----------------------------------------------------------------


@pytest.mark.parametrize(("output", "type_name"), [(VALID["face"], "dict"), (None, "NoneType"), ("face", "str")])
def test_detect_returns_a_list(output, type_name):
    assert breach(output) == f"model 'fake' broke the rule 'detect returns a list': got {type_name}"


def test_a_generator_is_not_a_list():
    assert "'detect returns a list': got generator" in breach(r for r in [VALID["face"]])


def test_each_result_is_a_dict():
    assert "'a result is a dict': got tuple" in breach([("face", 0.9)])


def test_only_known_keys():
    message = breach([changed("face", score=0.9)])
    assert "'only known keys': unknown key(s) ['score']" in message


# -- label and confidence --------------------------------------------------------------------------


def test_label_is_a_declared_class():
    message = breach([changed("face", label="cat")])
    assert "'label is a declared class': label 'cat' is not one of ['face', 'outline'," in message


def test_a_result_without_label_or_name():
    assert "'label is a declared class': label None" in breach([changed("face", label=None)])


def test_name_alone_is_accepted_as_the_label():
    (result,) = run_model(returning([changed("face", label=None, name="face")]), IMAGE)
    assert result["name"] == result["label"] == "face"


@pytest.mark.parametrize("confidence", [1.7, -0.1, math.nan, math.inf, True, None])
def test_confidence_is_a_number_from_0_to_1(confidence):
    message = breach([changed("face", confidence=confidence)])
    assert f"'confidence is a number from 0 to 1': face: confidence {confidence!r}" in message


def test_a_numpy_confidence_says_how_to_fix_it():
    message = breach([changed("face", confidence=np.float32(0.9))])
    assert "confidence np.float32(0.9) (a numpy float32: convert it with float())" in message


def test_a_string_confidence_says_it_is_a_string():
    assert "confidence '0.9' (a string, not a number)" in breach([changed("face", confidence="0.9")])


# -- geometry ---------------------------------------------------------------------------------------


def test_exactly_one_geometry_not_two():
    two = changed("face", polygon=VALID["outline"]["polygon"])
    assert "'exactly one geometry': face: has ['bounding_box', 'polygon']" in breach([two])


def test_exactly_one_geometry_not_none():
    assert "'exactly one geometry': face: has no geometry" in breach([changed("face", bounding_box=None)])


def test_geometry_matches_the_class_type():
    wrong = changed("face", bounding_box=None, polygon=VALID["outline"]["polygon"])
    assert "'geometry matches the class type': face is declared bounding_box but returned polygon" in breach([wrong])


def test_a_box_needs_x_y_w_h():
    message = breach([changed("face", bounding_box={"x": 1, "y": 1, "w": 5})])
    assert "'geometry well formed': face: bounding_box needs numeric x, y, w, h" in message


def test_box_sizes_are_not_negative():
    message = breach([changed("face", bounding_box={"x": 50, "y": 50, "w": -10, "h": 5})])
    assert "'box sizes are not negative': face: w=-10, h=5" in message


def test_a_polygon_needs_three_points():
    message = breach([changed("outline", polygon={"path": [{"x": 1, "y": 1}, {"x": 5, "y": 5}]})])
    assert "'geometry well formed': outline.polygon needs 'path': a list of at least 3 points" in message


def test_a_line_needs_two_points():
    message = breach([changed("path", line={"path": [{"x": 1, "y": 1}]})])
    assert "'geometry well formed': path.line needs 'path': a list of at least 2 points" in message


def test_a_tag_is_an_empty_object():
    message = breach([changed("scene", tag={"value": "indoor"})])
    assert "'geometry well formed': scene: tag must be an empty object, got {'value': 'indoor'}" in message


# -- coordinates ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, "12", None])
def test_coordinates_are_finite_numbers(bad):
    message = breach([changed("spot", keypoint={"x": bad, "y": 3})])
    assert "'coordinates are finite numbers': spot.keypoint must be an object with numeric x and y" in message


def test_numpy_coordinates_say_how_to_fix_them():
    message = breach([changed("spot", keypoint={"x": np.int64(3), "y": 3.0})])
    assert "(a numpy int64: convert it with float())" in message


def test_coordinates_inside_the_image():
    message = breach([changed("spot", keypoint={"x": 450.0, "y": 30.0})])
    assert (
        "'coordinates inside the image': spot.keypoint (450.0, 30.0) is far outside the 200x100 image "
        "given to the model (pixels of that image are expected, origin top-left)"
    ) in message


def test_the_far_corner_of_a_box_is_inside_the_image_too():
    message = breach([changed("face", bounding_box={"x": 10, "y": 10, "w": 5000, "h": 20})])
    assert "'coordinates inside the image': face.bounding_box far corner (x+w, y+h) (5010, 30)" in message


def test_polygon_points_inside_the_image():
    path = [{"x": 1, "y": 1}, {"x": 9, "y": 1}, {"x": 5, "y": -300}]
    assert "'coordinates inside the image': outline.polygon.path[2] (5, -300)" in breach(
        [changed("outline", polygon={"path": path})]
    )


def test_coordinates_are_checked_against_the_crop_the_model_was_given():
    """With an Auto-Annotate box the model sees the box plus a margin, and must answer in its pixels."""
    full_image_coordinates = changed("spot", keypoint={"x": 180.0, "y": 90.0})  # fine in 200x100, not in the crop
    message = breach([full_image_coordinates], Request(box_xywh=(10, 10, 20, 20)))
    assert "is far outside the 36x36 image given to the model" in message


def test_a_result_far_outside_only_a_little_is_clipped_not_refused():
    (result,) = run_model(returning([changed("face", bounding_box={"x": 180, "y": 80, "w": 40, "h": 40})]), IMAGE)
    assert result["bounding_box"] == {"x": 180, "y": 80, "w": 20, "h": 20}


# -- skeletons --------------------------------------------------------------------------------------


def test_skeleton_nodes_as_declared_no_undeclared_node():
    nodes = [*NODES, {"name": "tail", "x": 1.0, "y": 1.0, "occluded": False}]
    message = breach([changed("person", skeleton={"nodes": nodes})])
    assert (
        "'skeleton nodes as declared': person: nodes ['head', 'hip', 'foot', 'tail'] differ from the declared"
        in message
    )
    assert "(undeclared: ['tail'])" in message


def test_skeleton_nodes_as_declared_none_missing():
    message = breach([changed("person", skeleton={"nodes": NODES[:2]})])
    assert (
        "'skeleton nodes as declared': person: nodes ['head', 'hip'] differ from the declared ['head', 'hip', 'foot']"
        in message
    )


def test_skeleton_nodes_in_the_declared_order():
    message = breach([changed("person", skeleton={"nodes": NODES[::-1]})])
    assert "'skeleton nodes as declared': person: nodes ['foot', 'hip', 'head']" in message


def test_skeleton_nodes_say_whether_they_are_occluded():
    nodes = [*NODES[:2], {"name": "foot", "x": 50.0, "y": 90.0, "occluded": "no"}]
    message = breach([changed("person", skeleton={"nodes": nodes})])
    assert "'geometry well formed': person: node 'foot' needs 'occluded' true or false" in message


# -- extras beside the geometry ---------------------------------------------------------------------


def test_attributes_are_strings():
    message = breach([changed("face", attributes=["left", 3])])
    assert "'attributes are strings': face: attributes must be a list of strings, got ['left', 3]" in message


def test_text_is_an_object_with_text():
    assert "'text is {text: str}': face: got 'smiling'" in breach([changed("face", text="smiling")])


# -- a model that raises ----------------------------------------------------------------------------


def test_an_exception_in_detect_names_the_model_the_error_and_the_line():
    def detect(image):
        return [VALID["face"]] * (1 // 0)

    with pytest.raises(ModelFailed) as caught:
        run_model(returning(detect), IMAGE)
    assert str(caught.value).startswith("model 'fake' failed: ZeroDivisionError: integer division or modulo by zero")
    assert "(at test_driver_rules.py:" in str(caught.value)


def test_an_exception_while_loading_names_the_model(tmp_path):
    class Broken(Model):
        spec = ModelSpec("broken-load", "raises in its constructor", (ClassSpec("face", "bounding_box"),))

        def __init__(self, files=None):
            raise OSError("weights.bin is corrupt")

        def detect(self, image_rgb, options):
            return []

    registry = ModelRegistry({"broken-load": Broken}, ModelFileLocator(None, tmp_path))
    with pytest.raises(ModelLoadFailed) as caught:
        registry.get("broken-load")
    assert str(caught.value).startswith("model 'broken-load' could not be loaded: OSError: weights.bin is corrupt")
    assert isinstance(caught.value, ModelFailed)  # so the server answers it like any model failure


# -- through a real server --------------------------------------------------------------------------

BREAKERS = textwrap.dedent(
    '''
    """Models that each break one rule of the contract, for tests."""
    from models.base import ClassSpec, Model, ModelSpec, SkeletonSpec, bounding_box, polygon, skeleton

    BOX = (ClassSpec("face", "bounding_box"),)


    class Overconfident(Model):
        spec = ModelSpec("breaks-confidence", "confidence 1.7", BOX)

        def detect(self, image_rgb, options):
            return [bounding_box("face", 1.7, (10, 10, 50, 50))]


    class TwoGeometries(Model):
        spec = ModelSpec("breaks-one-geometry", "a box and a polygon in one result", BOX)

        def detect(self, image_rgb, options):
            result = bounding_box("face", 0.9, (10, 10, 50, 50))
            result["polygon"] = polygon("face", 0.9, [(1, 1), (9, 1), (5, 9)])["polygon"]
            return [result]


    class WrongType(Model):
        spec = ModelSpec("breaks-type", "a polygon for a box class", BOX)

        def detect(self, image_rgb, options):
            return [polygon("face", 0.9, [(1, 1), (90, 1), (50, 90)])]


    class UndeclaredNode(Model):
        spec = ModelSpec(
            "breaks-nodes", "a node it did not declare",
            (ClassSpec("person", "skeleton", SkeletonSpec(("head", "foot"))),),
        )

        def detect(self, image_rgb, options):
            return [skeleton("person", 0.9, [("head", 5, 5, False), ("tail", 9, 9, False)])]


    class Raises(Model):
        spec = ModelSpec("breaks-by-raising", "raises", BOX)

        def detect(self, image_rgb, options):
            raise RuntimeError("out of GPU memory")
    '''
)

SERVED_BREACHES = [
    ("breaks-confidence", "broke the rule 'confidence is a number from 0 to 1': face: confidence 1.7"),
    ("breaks-one-geometry", "broke the rule 'exactly one geometry': face: has ['bounding_box', 'polygon']"),
    ("breaks-type", "broke the rule 'geometry matches the class type': face is declared bounding_box but returned"),
    ("breaks-nodes", "broke the rule 'skeleton nodes as declared': person: nodes ['head', 'tail'] differ"),
    ("breaks-by-raising", "failed: RuntimeError: out of GPU memory (at breakers.py:"),
]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    home = tmp_path_factory.mktemp("breakers")
    breakers = home / "breakers.py"
    breakers.write_text(BREAKERS)
    server = start_api(home, "--model-file", str(breakers))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def astronaut_request(picture) -> dict:
    return {"image": {"base64": base64.b64encode(encode_png(picture("astronaut"))).decode()}}


@pytest.mark.parametrize(("model", "expected_error"), SERVED_BREACHES)
def test_a_breaking_model_gets_a_clear_failed_answer_and_the_others_keep_serving(
    api, astronaut_request, v7_schema, model, expected_error
):
    broken = requests.post(f"{api.url}/models/{model}/infer", json=astronaut_request, timeout=30)

    assert broken.status_code == 500 and broken.headers["Content-Type"] == "application/json"
    assert_v7_answer(broken.json(), v7_schema)
    assert broken.json()["status"] == "failed" and broken.json()["results"] == []
    assert broken.json()["error"].startswith(f"model {model!r} ")
    assert expected_error in broken.json()["error"]

    working = requests.post(f"{api.url}/models/opencv-face/infer", json=astronaut_request, timeout=30)
    assert working.status_code == 200, working.text
    assert [r["name"] for r in working.json()["results"]] == ["face"]


def test_breaking_models_are_listed_as_available(api):
    """Breaking a rule is a per-request failure: the model loaded fine and stays listed."""
    listed = {m["name"]: m for m in requests.get(f"{api.url}/models", timeout=10).json()["models"]}

    for model, _ in SERVED_BREACHES:
        assert listed[model]["available"] is True and "error" not in listed[model]
    assert requests.get(f"{api.url}/health", timeout=10).json()["healthy"] is True
