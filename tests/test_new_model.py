"""`python run.py new-model`: the files it writes pass their own tests, run where they were written."""

from __future__ import annotations

import argparse
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tools import new_model
from tools.new_model import MODEL_TYPES, name_problem

PROJECT_DIR = Path(__file__).resolve().parent.parent
RUFF_FIRST_PARTY = "lint.isort.known-first-party=['models', 'server']"


def new_model_command(*args: str) -> list[str]:
    return [sys.executable, str(PROJECT_DIR / "run.py"), "new-model", *args]


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """The generated tests, run in their own folder as the user runs them (no conftest of ours)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict:
    """One model of each type written into one folder, and the outcome of running all their tests there."""
    folder = tmp_path_factory.mktemp("new-models")
    printed = {}
    for model_type in MODEL_TYPES:
        done = subprocess.run(
            new_model_command(f"demo-{model_type}", "--type", model_type),
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        printed[model_type] = done.stdout
    outcome = run_pytest(folder, "--junitxml", str(folder / "report.xml"))
    counts: dict[str, dict[str, int]] = {}
    for case in ET.parse(folder / "report.xml").iter("testcase"):
        kind = "failed" if case.find("failure") is not None or case.find("error") is not None else "passed"
        kind = "skipped" if case.find("skipped") is not None else kind
        file_counts = counts.setdefault(case.get("classname", ""), {"passed": 0, "failed": 0, "skipped": 0})
        file_counts[kind] += 1
    return {"folder": folder, "printed": printed, "outcome": outcome, "counts": counts}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_the_generated_test_passes_where_it_was_written(generated, model_type):
    module = f"demo_{model_type}"
    assert (generated["folder"] / f"{module}.py").is_file()
    counts = generated["counts"].get(f"test_{module}")
    assert counts is not None, generated["outcome"].stdout[-3000:]
    assert counts["failed"] == 0 and counts["skipped"] == 0, generated["outcome"].stdout[-3000:]
    assert counts["passed"] >= 3  # values, the Auto-Annotate box, served through the app's routes


def test_the_generated_files_are_lint_clean(generated):
    folder = generated["folder"]
    files = sorted(str(p) for p in folder.glob("*.py"))
    config = ["--config", str(PROJECT_DIR / "pyproject.toml"), "--config", RUFF_FIRST_PARTY]
    lint = subprocess.run(["ruff", "check", "--no-cache", *config, *files], capture_output=True, text=True)
    form = subprocess.run(
        ["ruff", "format", "--check", "--no-cache", "--config", str(PROJECT_DIR / "pyproject.toml"), *files],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout
    assert form.returncode == 0, form.stdout


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_it_prints_the_next_steps(generated, model_type):
    printed = generated["printed"][model_type]
    name, module = f"demo-{model_type}", f"demo_{model_type}"

    assert printed.startswith(f"Wrote {module}.py (model '{name}', {model_type} results")
    assert f"python -m pytest test_{module}.py" in printed
    assert f"serve --model-file {module}.py" in printed
    assert f"check http://127.0.0.1:8000/models/{name}/infer" in printed
    assert f"https://YOUR-PUBLIC-HOST/models/{name}/infer" in printed


def test_the_generated_test_catches_a_broken_rule(tmp_path):
    """The test is not decoration: a model returning confidence 1.7 fails it, naming the rule."""
    subprocess.run(new_model_command("overconfident", "--dir", str(tmp_path)), check=True, capture_output=True)
    model_file = tmp_path / "overconfident.py"
    text = model_file.read_text()
    assert "solidity(contour), cv2.boundingRect" in text
    model_file.write_text(text.replace("solidity(contour), cv2.boundingRect", "1.7, cv2.boundingRect"))

    outcome = run_pytest(tmp_path)

    assert outcome.returncode == 1
    assert "model 'overconfident' broke the rule 'confidence is a number from 0 to 1': object: confidence 1.7" in (
        outcome.stdout
    )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("my-model", None),
        ("Cats_v2", None),
        ("pose", "'pose' is the name of a built-in model: choose another"),
        ("9lives", "'9lives' is not a usable model name"),
        ("my model", "'my model' is not a usable model name"),
        ("json", "'json' would make a file json.py that hides the module 'json'"),
        ("models", "'models' would make a file models.py that hides the module 'models'"),
        ("class", "'class' would make a file class.py"),
    ],
)
def test_names_that_would_not_work_are_refused(name, problem):
    found = name_problem(name, {"pose", "hands"})
    assert found == problem if problem is None else found.startswith(problem)


def test_class_and_module_names():
    assert (new_model.module_name_for("my-model"), new_model.class_name_for("my-model")) == ("my_model", "MyModel")
    assert new_model.class_name_for("cats_v2") == "CatsV2Model"


def test_existing_files_are_kept_unless_forced(tmp_path, capsys):
    args = argparse.Namespace(name="kept", type="tag", dir=tmp_path, force=False)
    (tmp_path / "kept.py").write_text("# mine\n")

    assert new_model.main(args) == 2
    assert "kept.py already exists: choose another name" in capsys.readouterr().err
    assert (tmp_path / "kept.py").read_text() == "# mine\n" and not (tmp_path / "test_kept.py").exists()

    assert new_model.main(argparse.Namespace(name="kept", type="tag", dir=tmp_path, force=True)) == 0
    assert "class KeptModel(Model)" in (tmp_path / "kept.py").read_text()
