"""Write a small, working model file and its test, to start your own model from.

  python run.py new-model my-model                    a bounding_box model: my_model.py + test_my_model.py
  python run.py new-model my-model --type polygon     bounding_box, polygon, keypoint, skeleton or tag
  python run.py new-model my-model --dir models_of_mine

The model runs as written, with no download: a stand-in built on OpenCV (bright regions for the geometry
types; bright or dark for tags), and its test passes as written. Replace the inside of `detect` with
your own model, keep the test passing, then serve it with `python run.py serve --model-file my_model.py`.
Existing files are never overwritten unless you pass --force.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

PROJECT_DIR = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
MODEL_TYPES = ("bounding_box", "polygon", "keypoint", "skeleton", "tag")
#: A model name is a URL segment (/models/NAME/infer) and, with '-' as '_', a module name.
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
#: Top-level names a generated file must not take: the project's packages and what the files import.
TAKEN_MODULE_NAMES = {"models", "server", "tools", "playground", "bench", "tests", "examples", "cv2", "numpy", "pytest"}


@dataclass(frozen=True)
class TypeParts:
    """What differs between the generated files of one result type."""

    base_imports: str
    class_spec: str
    result_code: str
    centre_code: str
    shape_test: str = ""
    constants: str = ""


REGION_PARTS: dict[str, TypeParts] = {
    "bounding_box": TypeParts(
        base_imports="ClassSpec, DetectOptions, Model, ModelSpec, bounding_box",
        class_spec='ClassSpec("object", "bounding_box", description="a bright region")',
        result_code="""\
            results.append(bounding_box("object", solidity(contour), cv2.boundingRect(contour)))""",
        centre_code="""\
    box = result["bounding_box"]
    return box["x"] + box["w"] / 2, box["y"] + box["h"] / 2""",
        shape_test="""

def test_each_box_fits_its_disc(model):
    for result in run_model(model, picture_with_discs((200, 240), (480, 200))):
        assert (result["bounding_box"]["w"], result["bounding_box"]["h"]) == pytest.approx((121, 121), abs=2)
""",
    ),
    "polygon": TypeParts(
        base_imports="ClassSpec, DetectOptions, Model, ModelSpec, polygon",
        class_spec='ClassSpec("object", "polygon", description="the outline of a bright region")',
        result_code="""\
            outline = cv2.approxPolyDP(contour, 0.005 * cv2.arcLength(contour, True), True).reshape(-1, 2)
            if len(outline) >= 3:  # a polygon needs three points
                results.append(polygon("object", solidity(contour), outline))""",
        centre_code="""\
    xs = [p["x"] for p in result["polygon"]["path"]]
    ys = [p["y"] for p in result["polygon"]["path"]]
    return (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2""",
        shape_test="""

def test_each_outline_has_the_area_of_its_disc(model):
    for result in run_model(model, picture_with_discs((200, 240), (480, 200))):
        path = result["polygon"]["path"]
        area = abs(sum(a["x"] * b["y"] - b["x"] * a["y"] for a, b in zip(path, path[1:] + path[:1], strict=True))) / 2
        assert area == pytest.approx(np.pi * 60**2, rel=0.05)
""",
    ),
    "keypoint": TypeParts(
        base_imports="ClassSpec, DetectOptions, Model, ModelSpec, keypoint",
        class_spec='ClassSpec("object", "keypoint", description="the centre of a bright region")',
        result_code="""\
            moments = cv2.moments(contour)
            centre_xy = (moments["m10"] / moments["m00"], moments["m01"] / moments["m00"])
            results.append(keypoint("object", solidity(contour), centre_xy))""",
        centre_code="""\
    return result["keypoint"]["x"], result["keypoint"]["y"]""",
    ),
    "skeleton": TypeParts(
        base_imports="ClassSpec, DetectOptions, Model, ModelSpec, SkeletonSpec, skeleton",
        constants="""\
#: The skeleton's nodes (the region's extreme points) and edges: V7's skeleton class must use these node names.
NODES = ("top", "right", "bottom", "left")
EDGES = (("top", "right"), ("right", "bottom"), ("bottom", "left"), ("left", "top"))


def extreme_points(contour: np.ndarray) -> dict[str, tuple[float, float]]:
    \"\"\"The middle of the region's top row, right column, bottom row and left column.\"\"\"
    points = contour.reshape(-1, 2).astype(float)
    xs, ys = points[:, 0], points[:, 1]
    return {
        "top": (xs[ys == ys.min()].mean(), ys.min()),
        "right": (xs.max(), ys[xs == xs.max()].mean()),
        "bottom": (xs[ys == ys.max()].mean(), ys.max()),
        "left": (xs.min(), ys[xs == xs.min()].mean()),
    }
""",
        class_spec='ClassSpec("object", "skeleton", SkeletonSpec(NODES, EDGES), description="extreme points")',
        result_code="""\
            extremes = extreme_points(contour)
            nodes = [(name, *extremes[name], False) for name in NODES]  # (name, x, y, occluded), in NODES order
            results.append(skeleton("object", solidity(contour), nodes))""",
        centre_code="""\
    nodes = {n["name"]: n for n in result["skeleton"]["nodes"]}
    return (nodes["left"]["x"] + nodes["right"]["x"]) / 2, (nodes["top"]["y"] + nodes["bottom"]["y"]) / 2""",
        shape_test="""

def test_nodes_sit_on_the_edge_of_the_disc(model):
    (result,) = run_model(model, picture_with_discs((320, 240)))

    nodes = {n["name"]: (n["x"], n["y"]) for n in result["skeleton"]["nodes"]}
    expected = {"top": (320, 180), "right": (380, 240), "bottom": (320, 300), "left": (260, 240)}
    for name, xy in expected.items():
        assert nodes[name] == pytest.approx(xy, abs=2), name
""",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the model's name, used in its URL: /models/NAME/infer")
    parser.add_argument(
        "--type", choices=MODEL_TYPES, default="bounding_box", help="what the model returns (default: bounding_box)"
    )
    parser.add_argument("--dir", type=Path, default=Path("."), help="folder to write into (default: here)")
    parser.add_argument("--force", action="store_true", help="overwrite the files if they exist")


def module_name_for(name: str) -> str:
    return name.lower().replace("-", "_")


def class_name_for(name: str) -> str:
    camel = "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]+", name) if part)
    return camel if camel.lower().endswith("model") else camel + "Model"


def name_problem(name: str, taken_model_names: set[str]) -> str | None:
    if not NAME_PATTERN.match(name):
        return f"{name!r} is not a usable model name: use letters, digits, '-' and '_', starting with a letter"
    if name in taken_model_names:
        return f"{name!r} is the name of a built-in model: choose another"
    module = module_name_for(name)
    if keyword.iskeyword(module) or module in TAKEN_MODULE_NAMES or module in sys.stdlib_module_names:
        return f"{name!r} would make a file {module}.py that hides the module {module!r}: choose another name"
    return None


def shown_path(path: Path) -> str:
    """A path as the user best types it: relative to here when it is below here."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def run_py_command() -> str:
    run_py = PROJECT_DIR / "run.py"
    return "run.py" if Path.cwd().resolve() == PROJECT_DIR else str(run_py)


def render(name: str, model_type: str, model_path: Path, test_path: Path) -> tuple[str, str]:
    """The model file's and the test file's text."""
    common = {
        "name": name,
        "type": model_type,
        "title": name.replace("-", " ").replace("_", " ").capitalize(),
        "class_name": class_name_for(name),
        "file_name": model_path.name,
        "test_file_name": test_path.name,
        "run_py": run_py_command(),
        "docs_path": str(PROJECT_DIR / "docs" / "MODEL_API.md"),
        "project_dir": json.dumps(str(PROJECT_DIR)),
    }
    if model_type == "tag":
        model_text = Template((TEMPLATE_DIR / "model_tag.py.tmpl").read_text()).substitute(common)
        value_tests = (TEMPLATE_DIR / "test_tag.tmpl").read_text()
        served = {
            "expected_classes": '[{"name": "bright", "type": "tag"}, {"name": "dark", "type": "tag"}]',
            "served_picture": "grey_picture(220)",
            "served_names": '["bright"]',
        }
    else:
        parts = REGION_PARTS[model_type]
        model_text = Template((TEMPLATE_DIR / "model_regions.py.tmpl").read_text()).substitute(
            common,
            base_imports=parts.base_imports,
            class_spec=parts.class_spec,
            result_code=parts.result_code,
            constants=("\n" + parts.constants) if parts.constants else "",
        )
        value_tests = Template((TEMPLATE_DIR / "test_regions.tmpl").read_text()).substitute(
            centre_code=parts.centre_code, shape_test=parts.shape_test
        )
        served = {
            "expected_classes": f'[{{"name": "object", "type": "{model_type}"}}]',
            "served_picture": "picture_with_discs((200, 240), (480, 200))",
            "served_names": '["object", "object"]',
        }
    test_text = Template((TEMPLATE_DIR / "test_model.py.tmpl").read_text()).substitute(
        common, value_tests=value_tests, **served
    )
    return tidy(model_text), tidy(test_text)


def tidy(text: str) -> str:
    """At most two blank lines in a row (optional template parts leave more), one newline at the end."""
    return re.sub(r"\n{4,}", "\n\n\n", text).rstrip("\n") + "\n"


def next_steps(name: str, model_path: Path, test_path: Path) -> str:
    run_py = run_py_command()
    model_file = shown_path(model_path)
    test_dir = shown_path(test_path.parent)
    cd = "" if test_dir == "." else f"cd {test_dir} && "
    return f"""
Next steps:
  1. Run its test (it passes as written):
       {cd}python -m pytest {test_path.name}
  2. Serve it beside the built-in models:
       python {run_py} serve --model-file {model_file}
     then POST http://127.0.0.1:8000/models/{name}/infer  (GET /models/{name}/classes lists its classes)
  3. Try it in the playground UI (pick '{name}', draw an Auto-Annotate box):
       python {run_py} --model-file {model_file}
  4. Check the running endpoint against V7's contract, as V7 would call it:
       python {run_py} check http://127.0.0.1:8000/models/{name}/infer --send base64
     and annotate a folder of your pictures into Darwin JSON for V7's import:
       python {run_py} annotate PICTURES/ --model-file {model_file} --model {name} --out darwin/
  5. Put your own model into detect() in {model_file} and keep the test passing. To register it in V7
     (Models > Register External Model), serve it where V7 can reach it, with authentication, and give
     https://YOUR-PUBLIC-HOST/models/{name}/infer as the inference URL (README: "Bring your own model").
     The interface and every rule the driver checks: {PROJECT_DIR / "docs" / "MODEL_API.md"}
"""


def main(args: argparse.Namespace) -> int:
    from models.registry import BUILTIN_MODELS

    problem = name_problem(args.name, set(BUILTIN_MODELS))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    folder: Path = args.dir
    module = module_name_for(args.name)
    model_path, test_path = folder / f"{module}.py", folder / f"test_{module}.py"
    existing = [shown_path(p) for p in (model_path, test_path) if p.exists()]
    if existing and not args.force:
        verb = "exists" if len(existing) == 1 else "exist"
        print(
            f"error: {' and '.join(existing)} already {verb}: choose another name or --dir, or pass --force",
            file=sys.stderr,
        )
        return 2
    model_text, test_text = render(args.name, args.type, model_path, test_path)
    folder.mkdir(parents=True, exist_ok=True)
    model_path.write_text(model_text, encoding="utf-8")
    test_path.write_text(test_text, encoding="utf-8")
    print(
        f"Wrote {shown_path(model_path)} (model '{args.name}', {args.type} results, class {class_name_for(args.name)})"
        f" and its test {shown_path(test_path)}."
    )
    print(next_steps(args.name, model_path, test_path), end="")
    return 0
