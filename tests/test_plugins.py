"""Plug-in models from a file, a module and an installed package's entry point, in-process and served.

The installed package is made in the test: a pyproject.toml with a
[project.entry-points."byom_playground.models"] table, whose metadata setuptools writes next to the
code (as `pip install -e` does); putting that folder on the path makes it an installed distribution
to importlib.metadata, with nothing installed into the system.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

import run
from models.driver import run_model
from models.plugins import ENTRY_POINT_GROUP, PluginError, discover, load_file, load_module
from models.registry import BUILTIN_MODELS, ModelRegistry, PluginUnavailable, UnknownModel
from server.cli import server_environment
from tests.contract_checks import assert_v7_answer
from tests.servers import PROJECT_DIR, free_port, start_api


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def make_installed_package(
    root: Path, dist_name: str, package: str, modules: dict[str, str], entry_points: dict[str, str]
) -> Path:
    """A package folder with its pyproject.toml and the metadata setuptools builds from it; returns the
    folder that makes it installed when put on sys.path / PYTHONPATH."""
    write(root / package / "__init__.py", "")
    for name, code in modules.items():
        write(root / package / f"{name}.py", code)
    table = "\n".join(f'{name} = "{target}"' for name, target in entry_points.items())
    write(
        root / "pyproject.toml",
        f"""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist_name}"
        version = "0.1"

        [tool.setuptools]
        packages = ["{package}"]

        [project.entry-points."{ENTRY_POINT_GROUP}"]
        """,
    )
    with (root / "pyproject.toml").open("a") as f:
        f.write(table + "\n")
    subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "egg_info"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    return root


MODEL_HEADER = "from models.base import ClassSpec, Model, ModelSpec, bounding_box, keypoint, line, tag\n"


def model_code(
    class_name: str, name: str, body: str = 'return [tag("thing", 0.9)]', classes: str = '(ClassSpec("thing", "tag"),)'
) -> str:
    """Source of one small model class (after MODEL_HEADER)."""
    return f"""

class {class_name}(Model):
    spec = ModelSpec("{name}", "a test model", {classes})

    def detect(self, image_rgb, options):
        {body}
"""


# -- loading, in-process ---------------------------------------------------------------------------


def test_a_file_gives_each_model_class_it_defines(tmp_path):
    path = write(tmp_path / "two.py", MODEL_HEADER + model_code("First", "first") + model_code("Second", "second"))

    classes = load_file(path)

    assert [c.spec.name for c in classes] == ["first", "second"]
    assert classes[0].__module__.startswith("byom_plugin_two_")


def test_two_files_of_the_same_name_in_two_folders_do_not_mix(tmp_path):
    one = write(tmp_path / "a" / "model.py", MODEL_HEADER + model_code("M", "from-a"))
    two = write(tmp_path / "b" / "model.py", MODEL_HEADER + model_code("M", "from-b"))

    scan = discover([str(one), str(two)], entry_points=False)

    assert [m.name for m in scan.models] == ["from-a", "from-b"] and not scan.failures
    assert scan.models[0].model_class.__module__ != scan.models[1].model_class.__module__


def test_a_file_can_import_a_helper_next_to_it(tmp_path):
    write(tmp_path / "helper_for_scores.py", "SCORE = 0.75\n")
    path = write(
        tmp_path / "scored.py",
        "from helper_for_scores import SCORE\n"
        + MODEL_HEADER
        + model_code("Scored", "scored", 'return [tag("thing", SCORE)]'),
    )

    (model_class,) = load_file(path)

    assert run_model(model_class(), np.zeros((10, 10, 3), np.uint8))[0]["confidence"] == 0.75


def test_a_module_gives_the_model_classes_it_defines_not_those_it_imports(tmp_path, monkeypatch):
    write(tmp_path / "mods_one" / "__init__.py", "")
    write(tmp_path / "mods_one" / "base.py", MODEL_HEADER + model_code("Imported", "imported-elsewhere"))
    write(
        tmp_path / "mods_one" / "models.py",
        MODEL_HEADER
        + "from mods_one.base import Imported\n"
        + "\n\nclass Helper(Model):\n    pass\n"
        + model_code("Alpha", "alpha")
        + model_code("Beta", "beta"),
    )
    monkeypatch.syspath_prepend(tmp_path)

    assert [c.spec.name for c in load_module("mods_one.models")] == ["alpha", "beta"]
    assert [c.spec.name for c in load_module("mods_one.models:Beta")] == ["beta"]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            "mods_two.models:Missing",
            "plug-in module mods_two.models:Missing: module mods_two.models has no attribute 'Missing'",
        ),
        ("mods_two.models:helper", "helper is not a model class: subclass models.base.Model"),
        (
            "mods_two.absent",
            "could not be imported: ModuleNotFoundError: No module named 'mods_two.absent' "
            "(is it installed, or on PYTHONPATH?)",
        ),
        ("mods-two.models", "expected package.module or package.module:ClassName (or a path to a .py file)"),
    ],
)
def test_module_sources_that_give_no_model(tmp_path, monkeypatch, target, expected):
    write(tmp_path / "mods_two" / "__init__.py", "")
    write(tmp_path / "mods_two" / "models.py", MODEL_HEADER + "\n\ndef helper():\n    pass\n" + model_code("A", "a"))
    monkeypatch.syspath_prepend(tmp_path)

    with pytest.raises(PluginError) as caught:
        load_module(target)
    assert expected in str(caught.value)


BROKEN_FILES = {
    "syntax error": ("def detect(:\n", "could not be loaded: SyntaxError: "),
    "missing import": (
        "import torch_that_is_not_installed\n",
        "ModuleNotFoundError: No module named 'torch_that_is_not_installed' (at broken.py:1)",
    ),
    "raises on import": (
        "x = 1\ny = 2\nraise RuntimeError('no GPU here')\n",
        "could not be loaded: RuntimeError: no GPU here (at broken.py:3)",
    ),
    "no model": ("VALUE = 1\n", "defines no model class: expected a subclass of models.base.Model with a `spec`"),
    "class without spec": (
        MODEL_HEADER + "\n\nclass Half(Model):\n    pass\n",
        "defines no model class (Half set no `spec`)",
    ),
    "spec of the wrong type": (
        MODEL_HEADER + "\n\nclass Half(Model):\n    spec = {'name': 'half'}\n",
        "Half.spec must be a models.base.ModelSpec, got dict",
    ),
    "no detect": (
        MODEL_HEADER + '\n\nclass Half(Model):\n    spec = ModelSpec("half", "", (ClassSpec("x", "tag"),))\n',
        "Half does not implement detect(self, image_rgb, options)",
    ),
    "name unfit for a URL": (
        MODEL_HEADER + model_code("Spaced", "my model"),
        "Spaced.spec.name 'my model' cannot be used in a URL",
    ),
    "class of an unknown type": (
        MODEL_HEADER + model_code("Typo", "typo", classes='(ClassSpec("face", "box"),)'),
        "ValueError: class 'face': type 'box' is not one of",
    ),
}


@pytest.mark.parametrize("case", BROKEN_FILES)
def test_a_broken_file_is_a_failure_naming_the_file_and_the_problem(tmp_path, case):
    code, expected = BROKEN_FILES[case]
    path = write(tmp_path / "broken.py", code)

    scan = discover([str(path)], entry_points=False)

    assert scan.models == ()
    (failure,) = scan.failures
    assert failure.label == "broken" and failure.fatal
    assert str(failure).startswith(f"plug-in file {path}: ")
    assert expected in str(failure)


def test_a_missing_file_or_not_a_python_file(tmp_path):
    text_file = write(tmp_path / "notes.txt", "hello\n")

    scan = discover([str(tmp_path / "missing.py"), str(text_file)], entry_points=False)

    assert [str(f) for f in scan.failures] == [
        f"plug-in file {tmp_path / 'missing.py'}: no such file",
        f"plug-in file {text_file}: a model file must be a Python file ending in .py",
    ]


def test_a_name_taken_by_a_built_in_is_a_fatal_failure(tmp_path):
    path = write(tmp_path / "pose.py", MODEL_HEADER + model_code("MyPose", "pose"))

    scan = discover([str(path)], entry_points=False, reserved_names=BUILTIN_MODELS)

    (failure,) = scan.failures
    assert failure.fatal and "model name 'pose' is taken by a built-in model: change spec.name" in str(failure)
    assert failure.label != "pose"  # the built-in keeps its name in /health and /models
    assert scan.models == ()


def test_two_named_sources_with_one_model_name_is_a_fatal_failure(tmp_path):
    one = write(tmp_path / "one.py", MODEL_HEADER + model_code("A", "same"))
    two = write(tmp_path / "two.py", MODEL_HEADER + model_code("B", "same"))

    scan = discover([str(one), str(two)], entry_points=False)

    assert [m.source for m in scan.models] == [f"file {one}"]
    (failure,) = scan.failures
    assert failure.fatal and f"model name 'same' is already used by file {one}: change one spec.name" in str(failure)


# -- entry points, in-process ----------------------------------------------------------------------


@pytest.fixture
def installed_package(tmp_path, monkeypatch):
    root = make_installed_package(
        tmp_path / "pkg",
        "byom-test-inprocess",
        "ep_inprocess",
        {"models": MODEL_HEADER + model_code("Eps", "ep-model") + model_code("EpsToo", "ep-model-too")},
        {"by-class": "ep_inprocess.models:Eps", "by-module": "ep_inprocess.models"},
    )
    monkeypatch.syspath_prepend(root)
    return root


def test_an_installed_entry_point_is_found_without_any_option(installed_package):
    scan = discover([])

    assert [m.name for m in scan.models] == ["ep-model", "ep-model-too"]  # the class reached twice is served once
    assert scan.failures == ()
    assert (
        scan.models[0].source == "entry point 'by-class' = 'ep_inprocess.models:Eps' of package byom-test-inprocess 0.1"
    )
    assert discover([], entry_points=False).models == ()


def test_a_named_source_replaces_an_installed_model_of_the_same_name(installed_package, tmp_path):
    newer = write(tmp_path / "newer.py", MODEL_HEADER + model_code("Newer", "ep-model"))

    scan = discover([str(newer)])

    assert {m.name: m.source for m in scan.models}["ep-model"] == f"file {newer}"
    (failure,) = scan.failures
    assert not failure.fatal and "(the one named on the command line is served)" in str(failure)


def test_the_registry_serves_plug_ins_and_names_the_ones_that_failed(installed_package, tmp_path):
    broken = write(tmp_path / "broken_one.py", "import torch_that_is_not_installed\n")

    registry = ModelRegistry.with_plugins([str(broken)])

    assert registry.names() == [*BUILTIN_MODELS, "ep-model", "ep-model-too"]
    with pytest.raises(PluginUnavailable) as caught:
        registry.spec("broken_one")
    assert str(caught.value).startswith(
        f"model 'broken_one' is unavailable: plug-in file {broken}: could not be loaded"
    )
    with pytest.raises(UnknownModel) as caught:
        registry.spec("nothing")
    assert "plug-ins that failed to load (see GET /health): broken_one" in str(caught.value)


# -- `serve` options -----------------------------------------------------------------------------


def test_serve_passes_plug_ins_to_the_workers_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BYOM_EXTRA_MODELS", "from_env.py")
    args = run.build_parser().parse_args(["serve", "--model-file", "sub/mine.py", "--model", "pkg.mod:Cls"])

    env = server_environment(args, "127.0.0.1", 8000)

    assert env["BYOM_EXTRA_MODELS"] == f"{tmp_path}/from_env.py,{tmp_path}/sub/mine.py,pkg.mod:Cls"
    assert env["PYTHONPATH"].split(":")[-1] == str(tmp_path)  # --model modules are found from here, as with -m


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model-file", "{tmp}/absent.py"], "error: plug-in file {tmp}/absent.py: no such file"),
        (["--model-file", "{tmp}/pose.py"], "model name 'pose' is taken by a built-in model"),
        (["--model", "no_such_package.models"], "plug-in module no_such_package.models: could not be imported"),
    ],
)
def test_serve_refuses_to_start_on_a_broken_named_plug_in(tmp_path, args, expected):
    write(tmp_path / "pose.py", MODEL_HEADER + model_code("MyPose", "pose"))
    command = [sys.executable, str(PROJECT_DIR / "run.py"), "serve", "--port", str(free_port())]

    done = subprocess.run(
        command + [a.format(tmp=tmp_path) for a in args], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )

    assert done.returncode == 2
    assert expected.format(tmp=tmp_path) in done.stderr
    assert "Traceback" not in done.stderr


# -- served through a real gunicorn ---------------------------------------------------------------

CENTRE_DOT = (
    "from helper_for_centre import half\n"
    + MODEL_HEADER
    + model_code(
        "CentreDot",
        "centre-dot",
        'height, width = image_rgb.shape[:2]\n        return [keypoint("centre", 0.8, (half(width), half(height)))]',
        '(ClassSpec("centre", "keypoint"),)',
    )
    + model_code(
        "PictureShape",
        "picture-shape",
        'height, width = image_rgb.shape[:2]\n        return [tag("landscape" if width > height else "portrait", 1.0)]',
        '(ClassSpec("landscape", "tag"), ClassSpec("portrait", "tag"))',
    )
)
WHOLE_PICTURE = (
    MODEL_HEADER
    + model_code(
        "WholePicture",
        "whole-picture",
        "height, width = image_rgb.shape[:2]\n"
        '        return [bounding_box("picture", 0.7, (10, 10, width - 20, height - 20))]',
        '(ClassSpec("picture", "bounding_box"),)',
    )
    + model_code("NotAskedFor", "acme-extra")
)
HORIZON = MODEL_HEADER + model_code(
    "Horizon",
    "horizon",
    "height, width = image_rgb.shape[:2]\n"
    '        return [line("horizon", 0.6, [(0, height / 2), (width, height / 2)])]',
    '(ClassSpec("horizon", "line"),)',
)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugins")
    write(root / "files" / "helper_for_centre.py", "def half(value):\n    return value / 2\n")
    centre_dot = write(root / "files" / "centre_dot.py", CENTRE_DOT)
    write(root / "modules" / "acme_models" / "__init__.py", "")
    write(root / "modules" / "acme_models" / "boxes.py", WHOLE_PICTURE)
    horizon = make_installed_package(
        root / "horizon", "byom-test-horizon", "ep_horizon", {"model": HORIZON}, {"horizon": "ep_horizon.model:Horizon"}
    )
    broken = make_installed_package(
        root / "broken",
        "byom-test-broken",
        "ep_broken",
        {"model": "import torch_that_is_not_installed\n"},
        {"broken-ep": "ep_broken.model:Model"},
    )
    server = start_api(
        root,
        "--model-file",
        str(centre_dot),
        "--model-file",
        str(PROJECT_DIR / "examples" / "box_contours.py"),
        "--model",
        "acme_models.boxes:WholePicture",
        env={"PYTHONPATH": f"{root / 'modules'}:{horizon}:{broken}"},
    )
    yield server
    server.stop()


def png_request(image_rgb: np.ndarray, **extra) -> dict:
    ok, png = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    return {"image": {"base64": base64.b64encode(png.tobytes()).decode()}, **extra}


def infer(api, model: str, body: dict, v7_schema: dict) -> list[dict]:
    response = requests.post(f"{api.url}/models/{model}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    classes = requests.get(f"{api.url}/models/{model}/classes", timeout=10).json()
    assert_v7_answer(response.json(), v7_schema, classes)
    return response.json()["results"]


BLANK = np.full((480, 640, 3), 90, np.uint8)


def test_every_plug_in_is_listed_with_its_classes(api):
    listed = {m["name"]: m for m in requests.get(f"{api.url}/models", timeout=10).json()["models"]}

    assert list(listed)[: len(BUILTIN_MODELS)] == list(BUILTIN_MODELS)
    for name in ("centre-dot", "picture-shape", "box-contours", "whole-picture", "horizon"):
        assert listed[name]["available"] is True, name
        assert listed[name]["routes"] == {"infer": f"/models/{name}/infer", "classes": f"/models/{name}/classes"}
    assert "acme-extra" not in listed  # --model MODULE:CLASS serves that class only
    assert [(c["name"], c["type"]) for c in listed["picture-shape"]["classes"]] == [
        ("landscape", "tag"),
        ("portrait", "tag"),
    ]
    assert listed["horizon"]["classes"][0]["type"] == "line"


def test_a_broken_installed_plug_in_is_shown_unavailable_and_does_not_stop_the_others(api):
    expected = (
        "plug-in entry point 'broken-ep' = 'ep_broken.model:Model' of package byom-test-broken 0.1: "
        "could not be loaded: ModuleNotFoundError: No module named 'torch_that_is_not_installed'"
    )
    listed = {m["name"]: m for m in requests.get(f"{api.url}/models", timeout=10).json()["models"]}
    health = requests.get(f"{api.url}/health", timeout=10).json()

    assert listed["broken-ep"]["available"] is False and listed["broken-ep"]["error"].startswith(expected)
    assert health["healthy"] is True
    assert health["models"]["broken-ep"] == {"available": False, "missing": [], "error": listed["broken-ep"]["error"]}
    answer = requests.post(f"{api.url}/models/broken-ep/infer", json=png_request(BLANK), timeout=30)
    assert answer.status_code == 404 and answer.json()["status"] == "failed"
    assert answer.json()["error"] == f"model 'broken-ep' is unavailable: {listed['broken-ep']['error']}"
    assert "WARNING: plug-in entry point 'broken-ep'" in api.log()  # said once by `serve`, before starting


def test_a_model_file_answers_in_full_image_pixels_with_and_without_a_box(api, v7_schema):
    (whole,) = infer(api, "centre-dot", png_request(BLANK), v7_schema)
    (boxed,) = infer(api, "centre-dot", png_request(BLANK, bbox={"x": 100, "y": 100, "w": 50, "h": 50}), v7_schema)

    assert whole == {"name": "centre", "label": "centre", "confidence": 0.8, "keypoint": {"x": 320.0, "y": 240.0}}
    # The model saw the box plus an 8 px margin (92..158) and answered its centre, shifted back.
    assert boxed["keypoint"] == {"x": 125.0, "y": 125.0}
    assert infer(api, "picture-shape", png_request(BLANK), v7_schema)[0]["name"] == "landscape"


def test_a_module_plug_in_answers(api, v7_schema):
    (result,) = infer(api, "whole-picture", png_request(BLANK), v7_schema)

    assert result["bounding_box"] == {"x": 10.0, "y": 10.0, "w": 620.0, "h": 460.0}


def test_an_entry_point_plug_in_answers(api, v7_schema):
    (result,) = infer(api, "horizon", png_request(BLANK), v7_schema)

    assert result["line"]["path"] == [{"x": 0.0, "y": 240.0}, {"x": 640.0, "y": 240.0}]


def test_the_polygon_example_outlines_the_object_in_the_box(api, v7_schema):
    picture = np.random.default_rng(3).integers(60, 140, (480, 640, 3), dtype=np.uint8)
    truth = np.zeros((480, 640), np.uint8)
    cv2.ellipse(truth, (420, 260), (90, 60), 20, 0, 360, 1, thickness=-1)
    picture[truth == 1] = (200, 40, 40)
    cv2.rectangle(picture, (60, 60), (180, 180), (40, 40, 200), thickness=-1)  # a second object, outside the box

    (result,) = infer(
        api, "box-contours", png_request(picture, bbox={"x": 310, "y": 170, "w": 220, "h": 180}), v7_schema
    )

    outline = np.zeros_like(truth)
    points = np.array([[p["x"], p["y"]] for p in result["polygon"]["path"]], np.int32)
    cv2.fillPoly(outline, [points], 1)
    iou = np.logical_and(outline, truth).sum() / np.logical_or(outline, truth).sum()
    assert iou > 0.9 and result["confidence"] > 0.9


def test_class_mapping_threshold_and_the_default_endpoint_apply_to_plug_ins(api):
    original = requests.get(f"{api.url}/config", timeout=10).json()
    mapping = {
        "default_models": ["centre-dot", "picture-shape"],
        "classes": {"centre-dot": {"centre": {"v7_name": "middle", "enabled": True, "threshold": None}}},
    }
    try:
        assert requests.put(f"{api.url}/config", json=mapping, timeout=10).status_code == 200
        assert requests.get(f"{api.url}/classes", timeout=10).json() == [
            {"name": "middle", "type": "keypoint"},
            {"name": "landscape", "type": "tag"},
            {"name": "portrait", "type": "tag"},
        ]
        results = requests.post(f"{api.url}/infer", json=png_request(BLANK), timeout=30).json()["results"]
        assert [r["name"] for r in results] == ["middle", "landscape"]

        mapping["classes"]["centre-dot"]["centre"]["threshold"] = 0.9  # the dot's confidence is 0.8
        assert requests.put(f"{api.url}/config", json=mapping, timeout=10).status_code == 200
        results = requests.post(f"{api.url}/infer", json=png_request(BLANK), timeout=30).json()["results"]
        assert [r["name"] for r in results] == ["landscape"]
    finally:
        restore = {"default_models": original["default_models"], "classes": original["classes"]}
        requests.put(f"{api.url}/config", json=restore, timeout=10)
