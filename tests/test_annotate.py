"""`python run.py annotate`: real models over real pictures, written as Darwin JSON 2.0 and read back
with darwin-py's own importer (`darwin.importer.get_importer("darwin")`, what `darwin dataset import`
uses), which must give every annotation back with the same class, type and coordinates.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from darwin.future.data_objects.darwinV2 import AnnotationBase, BoundingBoxAnnotation, PolygonAnnotation
from darwin.importer import get_importer
from darwin.utils import parse_darwin_json
from PIL import Image

import run
from models.driver import Request, run_model
from models.mapping import ClassMapping
from models.registry import ModelRegistry
from models.samples import encode_png, sample_bytes
from server.images import decode_image
from tests.servers import PROJECT_DIR

MODELS = ("opencv-face", "face-landmarks", "pose")
GEOMETRIES = ("bounding_box", "polygon", "skeleton", "keypoint", "line", "tag")
#: Width and height as shown (EXIF orientation applied).
SHOWN_SIZES = {
    "astronaut.png": (512, 512),
    "grace_hopper.jpg": (512, 600),
    "coffee.jpg": (600, 400),
    "rotated.jpg": (512, 600),
}
LIMITS = {"max_pixels": 50_000_000, "max_side_px": 20_000}


def write_pictures(folder: Path, picture) -> Path:
    """Four pictures (one below a sub-folder, one stored rotated with EXIF orientation 6), a broken
    .jpg, and files the search must skip (a text file, a hidden folder)."""
    (folder / "sub").mkdir(parents=True)
    (folder / "astronaut.png").write_bytes(encode_png(picture("astronaut")))
    (folder / "sub" / "grace_hopper.jpg").write_bytes(sample_bytes("grace_hopper", "jpeg"))
    (folder / "sub" / "coffee.jpg").write_bytes(sample_bytes("coffee", "jpeg"))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown after a 90° clockwise turn: stored 600x512, shown 512x600 like the original
    upright = Image.fromarray(picture("grace_hopper"))
    upright.transpose(Image.Transpose.ROTATE_90).save(folder / "rotated.jpg", quality=95, exif=exif)
    (folder / "broken.jpg").write_bytes(b"this is not a JPEG")
    (folder / "notes.txt").write_text("not a picture")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "astronaut.png").write_bytes(encode_png(picture("astronaut")))
    return folder


def annotate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "run.py"), "annotate", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=PROJECT_DIR,
    )


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, picture) -> Path:
    return write_pictures(tmp_path_factory.mktemp("pictures"), picture)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, pictures, model_dir) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("darwin")
    return annotate(str(pictures), "--model", "opencv-face,face-landmarks", "--model", "pose", "--out", str(out)), out


def outputs(out: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(out).as_posix(): json.loads(p.read_text()) for p in sorted(out.rglob("*.json"))}


def geometry_of(annotation: dict[str, Any]) -> str:
    keys = [k for k in GEOMETRIES if k in annotation]
    if "polygon" in keys:  # Darwin JSON 2.0 polygons carry their bounding box too
        keys.remove("bounding_box")
    assert len(keys) == 1, annotation
    return keys[0]


def comparable(annotation: dict[str, Any]) -> tuple:
    """An annotation without its id: class, type, coordinates, confidence and model."""
    geometry = geometry_of(annotation)
    return (
        annotation["name"],
        geometry,
        json.dumps(annotation[geometry], sort_keys=True),
        annotation["inference"]["confidence"],
        annotation["inference"]["model"]["name"],
    )


def test_every_readable_picture_gets_a_file_and_the_broken_one_a_message(first_run, pictures):
    completed, out = first_run
    assert completed.returncode == 1, completed.stderr
    assert set(outputs(out)) == {
        "astronaut.png.json",
        "rotated.jpg.json",
        "sub/coffee.jpg.json",
        "sub/grace_hopper.jpg.json",
    }
    assert (
        f"skipped {pictures / 'broken.jpg'}: not a usable picture: the bytes sent are not an image" in completed.stderr
    )
    assert "annotate [########################] 5/5 pictures" in completed.stderr  # the progress bar, as lines
    assert completed.stdout.startswith("5 pictures: 4 written (")
    assert completed.stdout.rstrip().endswith(f"0 kept from an earlier run, 1 skipped -> {out}")


def test_the_files_have_darwin_json_2_structure(first_run):
    _, out = first_run
    ids = []
    for relative, document in outputs(out).items():
        name = Path(relative).name.removesuffix(".json")
        assert document["version"] == "2.0"
        assert document["schema_ref"] == "https://darwin-public.s3.eu-west-1.amazonaws.com/darwin_json/2.0/schema.json"
        assert document["item"]["name"] == name and document["item"]["path"] == "/"
        (slot,) = document["item"]["slots"]
        assert slot["type"] == "image" and slot["slot_name"] == "0"
        assert slot["source_files"] == [{"file_name": name}]
        assert (slot["width"], slot["height"]) == SHOWN_SIZES[name]
        for annotation in document["annotations"]:
            ids.append(annotation["id"])
            assert uuid.UUID(annotation["id"]).version == 4
            assert annotation["slot_names"] == ["0"]
            geometry = geometry_of(annotation)
            assert set(annotation) <= {
                "id",
                "name",
                "slot_names",
                "inference",
                "attributes",
                "text",
                geometry,
                "bounding_box",
            }
            inference = annotation["inference"]
            assert 0 <= inference["confidence"] <= 1
            assert inference["model"]["type"] == "external" and inference["model"]["name"] in MODELS
            AnnotationBase.model_validate(annotation)  # darwin-py's own model of a Darwin 2.0 annotation
            if geometry == "polygon":
                assert len(annotation["polygon"]["paths"]) == 1 and len(annotation["polygon"]["paths"][0]) >= 3
                PolygonAnnotation.model_validate(annotation)
            if geometry == "bounding_box":
                BoundingBoxAnnotation.model_validate(annotation)
    assert len(ids) == len(set(ids)) > 10


def test_darwin_py_reads_back_every_annotation_with_its_class_type_and_coordinates(first_run):
    _, out = first_run
    importer = get_importer("darwin")
    for relative, document in outputs(out).items():
        path = out / relative
        for parsed in (importer(path), parse_darwin_json(path)):
            (slot,) = document["item"]["slots"]
            assert (parsed.filename, parsed.image_width, parsed.image_height) == (
                document["item"]["name"],
                slot["width"],
                slot["height"],
            )
            assert len(parsed.annotations) == len(document["annotations"])
            for back, written in zip(parsed.annotations, document["annotations"], strict=True):
                geometry = geometry_of(written)
                assert back.id == written["id"]
                assert back.annotation_class.name == written["name"]
                assert back.annotation_class.annotation_type == geometry
                if geometry == "polygon":
                    assert back.data["paths"] == written["polygon"]["paths"]
                    assert back.data["bounding_box"] == written["bounding_box"]
                else:
                    assert back.data == written[geometry]
                subs = {sub.annotation_type: sub.data for sub in back.subs}
                assert subs["inference"] == written["inference"]


def test_the_annotations_are_what_the_server_driver_gives(first_run, pictures):
    """The astronaut's file holds exactly the driver's results (same decoder, same mapping), in order."""
    _, out = first_run
    registry = ModelRegistry.builtin()
    image = decode_image((pictures / "astronaut.png").read_bytes(), **LIMITS)
    try:
        expected = [
            (model, result)
            for model in MODELS
            for result in run_model(registry.get(model), image, Request(), ClassMapping())
        ]
    finally:
        for name in MODELS:  # MediaPipe tasks left to interpreter exit complain
            getattr(registry.get(name), "close", lambda: None)()
    annotations = outputs(out)["astronaut.png.json"]["annotations"]
    assert len(annotations) == len(expected)
    for annotation, (model, result) in zip(annotations, expected, strict=True):
        geometry = geometry_of(annotation)
        assert annotation["name"] == result["name"] and geometry in result
        assert annotation["inference"] == {
            "confidence": result["confidence"],
            "model": {"name": model, "type": "external"},
        }
        if geometry == "polygon":
            assert annotation["polygon"]["paths"] == [result["polygon"]["path"]]
        else:
            assert annotation[geometry] == result[geometry]
    names = [a["name"] for a in annotations]
    assert names.count("face") == 1 and names.count("person") == 1 and "face_oval" in names
    face = next(a["bounding_box"] for a in annotations if a["name"] == "face")
    assert 150 < face["x"] < 220 and 40 < face["y"] < 110 and 70 < face["w"] < 130  # her face, top left
    person = next(a["skeleton"]["nodes"] for a in annotations if a["name"] == "person")
    assert len(person) == 33 and person[0]["name"] == "nose"
    nose = person[0]
    assert face["x"] < nose["x"] < face["x"] + face["w"] and face["y"] < nose["y"] < face["y"] + face["h"]


def test_a_picture_with_nothing_in_it_gets_a_file_with_no_annotations(first_run):
    _, out = first_run
    assert outputs(out)["sub/coffee.jpg.json"]["annotations"] == []


def test_exif_orientation_is_applied_as_the_server_does(first_run):
    """rotated.jpg shows grace_hopper upright: same size, and the same face within a few pixels."""
    _, out = first_run
    files = outputs(out)
    rotated, upright = files["rotated.jpg.json"], files["sub/grace_hopper.jpg.json"]
    assert (rotated["item"]["slots"][0]["width"], rotated["item"]["slots"][0]["height"]) == (512, 600)

    def face(document):
        (box,) = [a["bounding_box"] for a in document["annotations"] if a["name"] == "face"]
        return box

    assert face(rotated) == pytest.approx(face(upright), abs=6)


def test_a_second_run_keeps_the_files_and_overwrite_redoes_them(first_run, pictures):
    _, out = first_run
    before = {p: p.read_bytes() for p in out.rglob("*.json")}
    again = annotate(str(pictures), "--model", "opencv-face,face-landmarks,pose", "--out", str(out))
    assert again.returncode == 1  # broken.jpg still cannot be read
    assert again.stdout.startswith("5 pictures: 0 written (0 annotations), 4 kept from an earlier run")
    assert {p: p.read_bytes() for p in out.rglob("*.json")} == before

    redo = annotate(
        str(pictures / "astronaut.png"), "--model", "opencv-face,face-landmarks,pose", "--out", str(out), "--overwrite"
    )
    assert redo.returncode == 0, redo.stderr
    path = out / "astronaut.png.json"
    old, new = json.loads(before[path]), json.loads(path.read_text())
    assert [a["id"] for a in old["annotations"]] != [a["id"] for a in new["annotations"]]
    assert [comparable(a) for a in old["annotations"]] == [comparable(a) for a in new["annotations"]]
    assert not list(out.rglob(".*.tmp"))


def test_parallel_workers_write_the_same_annotations(first_run, pictures, tmp_path):
    _, out = first_run
    parallel = annotate(
        str(pictures), "--model", "opencv-face", "--model", "pose", "--out", str(tmp_path), "--jobs", "2"
    )
    assert parallel.returncode == 1
    assert "skipped" in parallel.stderr and "broken.jpg" in parallel.stderr
    serial, both = outputs(out), outputs(tmp_path)
    assert set(both) == set(serial)
    for name, document in both.items():
        wanted = [
            comparable(a)
            for a in serial[name]["annotations"]
            if a["inference"]["model"]["name"] in ("opencv-face", "pose")
        ]
        assert [comparable(a) for a in document["annotations"]] == wanted


def test_the_class_mapping_decides_names_and_drops_disabled_classes(pictures, tmp_path, model_dir, capsys):
    config = tmp_path / "mapping.json"
    config.write_text(
        json.dumps(
            {
                "classes": {
                    "opencv-face": {"face": {"v7_name": "Face", "enabled": True}},
                    "pose": {"person": {"v7_name": "person", "enabled": False}},
                }
            }
        )
    )
    out = tmp_path / "out"
    code = run.main(
        [
            "annotate",
            str(pictures / "astronaut.png"),
            "--model",
            "opencv-face,pose",
            "--out",
            str(out),
            "--config",
            str(config),
        ]
    )
    assert code == 0
    (annotation,) = json.loads((out / "astronaut.png.json").read_text())["annotations"]
    assert annotation["name"] == "Face" and "bounding_box" in annotation
    assert "1 written (1 annotations)" in capsys.readouterr().out


def test_preserve_folders_records_the_item_path(pictures, tmp_path, model_dir):
    code = run.main(["annotate", str(pictures), "--model", "opencv-face", "--out", str(tmp_path), "--preserve-folders"])
    assert code == 1  # broken.jpg
    assert json.loads((tmp_path / "sub" / "coffee.jpg.json").read_text())["item"]["path"] == "/sub"
    assert json.loads((tmp_path / "astronaut.png.json").read_text())["item"]["path"] == "/"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope"], "unknown model 'nope'; known models: opencv-face"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--threshold", "2"], "--threshold must be from 0 to 1"),
    ],
)
def test_bad_options_exit_2(pictures, tmp_path, capsys, args, message):
    assert run.main(["annotate", str(pictures), "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_nothing_to_annotate_or_a_bad_mapping_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run.main(["annotate", str(empty), "--out", str(tmp_path / "out")]) == 2
    assert run.main(["annotate", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 2
    (empty / "a.png").write_bytes(sample_bytes("coffee"))
    bad = tmp_path / "mapping.json"
    bad.write_text('{"default_models": ["no-such-model"]}')
    assert run.main(["annotate", str(empty), "--out", str(tmp_path / "out"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "no pictures found in" in err
    assert "is neither a file nor a folder" in err
    assert "the class-mapping file is not valid" in err and "no-such-model" in err


def test_two_pictures_writing_the_same_file_are_refused(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.png").write_bytes(sample_bytes("coffee"))
    assert run.main(["annotate", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out")]) == 2
    assert "would both be written to" in capsys.readouterr().err


PLUGIN = """
from models.base import ClassSpec, Model, ModelSpec, keypoint, line, tag


class Marks(Model):
    spec = ModelSpec(name="marks", description="fixed marks, for tests", classes=(
        ClassSpec("centre", "keypoint"), ClassSpec("diagonal", "line"), ClassSpec("scene", "tag")))

    def detect(self, image_rgb, options):
        height, width = image_rgb.shape[:2]
        return [keypoint("centre", 0.9, (width / 2, height / 2), attributes=["middle"]),
                line("diagonal", 0.8, [(0, 0), (width / 2, height / 3), (width, height)]),
                tag("scene", 0.7, text="a test picture")]


class Broken(Model):
    spec = ModelSpec(name="broken", description="cannot load", classes=(ClassSpec("thing", "tag"),))

    def __init__(self, files=None):
        raise RuntimeError("the weights are corrupt")

    def detect(self, image_rgb, options):
        return []
"""


def test_keypoints_lines_tags_attributes_and_text_of_a_plug_in_come_back_from_darwin_py(pictures, tmp_path):
    plugin = tmp_path / "marks.py"
    plugin.write_text(PLUGIN)
    out = tmp_path / "out"
    code = run.main(
        [
            "annotate",
            str(pictures / "sub" / "coffee.jpg"),
            "--model-file",
            str(plugin),
            "--model",
            "marks",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    path = out / "coffee.jpg.json"
    written = json.loads(path.read_text())["annotations"]
    assert [(a["name"], geometry_of(a)) for a in written] == [
        ("centre", "keypoint"),
        ("diagonal", "line"),
        ("scene", "tag"),
    ]
    assert written[0]["keypoint"] == {"x": 300.0, "y": 200.0} and written[0]["attributes"] == ["middle"]
    assert written[1]["line"]["path"] == [{"x": 0.0, "y": 0.0}, {"x": 300.0, "y": 133.33}, {"x": 600.0, "y": 400.0}]
    assert written[2]["tag"] == {} and written[2]["text"] == {"text": "a test picture"}
    back = get_importer("darwin")(path).annotations
    assert [(a.annotation_class.name, a.annotation_class.annotation_type) for a in back] == [
        ("centre", "keypoint"),
        ("diagonal", "line"),
        ("scene", "tag"),
    ]
    assert back[0].data == {"x": 300.0, "y": 200.0}
    assert back[1].data == {"path": written[1]["line"]["path"]}
    subs = [{sub.annotation_type: sub.data for sub in a.subs} for a in back]
    assert subs[0]["attributes"] == ["middle"] and subs[2]["text"] == "a test picture"
    assert [s["inference"]["model"]["name"] for s in subs] == ["marks"] * 3


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_model_that_cannot_load_stops_the_run_with_its_error(pictures, tmp_path, jobs):
    plugin = tmp_path / "broken.py"
    plugin.write_text(PLUGIN)
    completed = annotate(
        str(pictures / "sub"),
        "--model-file",
        str(plugin),
        "--model",
        "broken",
        "--out",
        str(tmp_path / "out"),
        "--jobs",
        jobs,
    )
    assert completed.returncode == 2
    assert "model 'broken' could not be loaded: RuntimeError: the weights are corrupt" in completed.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.json"))
