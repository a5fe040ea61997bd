"""The Streamlit pages, run by AppTest against a real gunicorn (no browser: the canvas value is injected)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.servers import PictureServer, free_port, start_api

APP = str(Path(__file__).resolve().parent.parent / "playground" / "app.py")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    server = start_api(tmp_path_factory.mktemp("app-api"), workers=1)  # no --allow-private-urls on purpose
    yield server
    server.stop()


@pytest.fixture
def app(api, monkeypatch):
    monkeypatch.setenv("BYOM_PLAYGROUND_API_URL", api.url)
    monkeypatch.delenv("BYOM_PLAYGROUND_LOCAL_API", raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def canvas_key(at: AppTest) -> str:
    return next(k for k in at.session_state._state._state.filtered_state if k.startswith("canvas_"))


def draw(at: AppTest, left, top, width, height) -> None:
    """What the drawable canvas sends after a mouse drag (fabric.js JSON, canvas pixels)."""
    rect = {"type": "rect", "left": left, "top": top, "width": width, "height": height, "scaleX": 1, "scaleY": 1}
    at.session_state[canvas_key(at)] = {"drawing": {"raw": {"objects": [rect]}, "data": None}, "backgroundFit": None}
    at.run()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_tabs_and_no_warning_on_the_try_page(app):
    assert [t.label for t in app.tabs] == ["Try", "Classes", "Register", "Requests"]
    assert [e.value for e in app.tabs[0].error] == [] and [w.value for w in app.tabs[0].warning] == []
    assert {b.label for b in app.button} >= {"Run", "Save the class mapping", "Run the self-check"}


def test_drawn_box_is_sent_and_results_are_shown(app):
    draw(app, 150, 30, 150, 170)  # the astronaut sample is shown at its own size: canvas px == picture px
    assert [n.value for n in app.number_input][:4] == [150.0, 30.0, 150.0, 170.0]
    app.selectbox(key="model").set_value("opencv-face").run()
    app.button(key="run").click().run()
    assert not app.exception
    assert metric(app, "Status") == "HTTP 200" and metric(app, "Results") == "1"
    table = app.tabs[0].dataframe[0].value
    assert list(table["class"]) == ["face"] and 0.5 <= table["confidence"][0] <= 1
    request = json.loads(app.tabs[0].json[0].value)
    assert request["bbox"] == {"x": 150, "y": 30, "w": 150, "h": 170} and request["threshold"] == 0.5
    assert "characters)" in request["image"]["base64"]  # shortened for display
    response = json.loads(app.tabs[0].json[1].value)
    assert response["status"] == "succeeded" and response["results"][0]["bounding_box"]["w"] > 50
    assert len(app.tabs[0].get("download_button")) == 2
    assert len(app.tabs[0].get("image")) == 1  # the overlay


def test_box_data_placement_and_whole_picture(app):
    app.radio(key="box_mode").set_value("Whole picture").run()
    app.radio(key="placement").set_value("data").run()
    app.button(key="run").click().run()
    request = json.loads(app.tabs[0].json[0].value)
    assert request["data"] == {"bbox": {"x": 0, "y": 0, "w": 512, "h": 512}, "threshold": 0.5}
    assert metric(app, "Status") == "HTTP 200"
    assert int(metric(app, "Results")) >= 3  # default endpoint: faces, face parts, a person


def test_typed_box_outside_the_picture_is_refused_before_sending(app):
    app.number_input(key="box_x").set_value(900.0).run()
    assert any("outside the 512x512 picture" in w.value for w in app.tabs[0].warning)
    assert app.button(key="run").disabled


def test_endpoint_errors_are_messages_not_tracebacks(app):
    app.radio(key="transport").set_value("url").run()  # this API refuses local URLs
    app.button(key="run").click().run()
    assert not app.exception
    assert metric(app, "Status") == "HTTP 400"
    (error,) = [e.value for e in app.tabs[0].error]
    assert "non-public address" in error and "--allow-private-urls" in error


def test_an_endpoint_that_is_down_is_reported(monkeypatch):
    monkeypatch.setenv("BYOM_PLAYGROUND_API_URL", f"http://127.0.0.1:{free_port()}")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "connection refused" in at.error[0].value
    assert [b.label for b in at.button] == ["Try again"]


def test_classes_table_validates_saves_and_shows_classes(app, api):
    assert app.dataframe(key="class_editor_0").value.shape[1] == 6
    app.session_state["class_editor_0"] = {"edited_rows": {0: {"v7_name": " "}}, "added_rows": [], "deleted_rows": []}
    app.run()
    assert "opencv-face/face: the V7 class name is empty" in [e.value for e in app.tabs[1].error]
    assert app.button(key="save_classes").disabled

    app.session_state["class_editor_0"] = {"edited_rows": {0: {"v7_name": "Human face"}}, "added_rows": [],
                                           "deleted_rows": []}  # fmt: skip
    app.run()
    app.button(key="save_classes").click().run()
    assert not app.exception
    assert "Saved" in app.tabs[1].success[0].value
    shown = json.loads(app.tabs[1].code[0].value)
    assert shown[0] == {"name": "Human face", "type": "bounding_box"}
    assert app.dataframe(key="class_editor_1").value["v7_name"][0] == "Human face"  # fresh table from the server

    app.session_state["class_editor_1"] = {"edited_rows": {0: {"v7_name": "face"}}, "added_rows": [],
                                           "deleted_rows": []}  # fmt: skip
    app.run()
    app.button(key="save_classes").click().run()
    assert json.loads(app.tabs[1].code[0].value)[0] == {"name": "face", "type": "bounding_box"}


def test_register_page_and_self_check(app, api):
    register = app.tabs[2]
    codes = [c.value for c in register.code]
    assert codes[0] == f"{api.url}/infer"
    assert any("curl -sS -X POST" in c and f"{api.url}/infer" in c for c in codes)
    assert any(c.startswith("nose\nleft_eye_inner") for c in codes)  # the person skeleton's node names
    assert any("V7 cannot reach it" in w.value for w in register.warning)
    app.text_input(key="public_url").set_value("https://byom.example.com").run()
    assert app.tabs[2].code[0].value == "https://byom.example.com/infer"
    assert not any("V7 cannot reach it" in w.value for w in app.tabs[2].warning)

    app.button(key="run_selfcheck").click().run()
    assert not app.exception
    summary = app.tabs[2].success[0].value
    assert "0 failed" in summary, summary
    table = app.tabs[2].table[0].value
    assert set(table["result"]) <= {"passed", "skipped"} and (table["result"] == "passed").sum() >= 14


def test_requests_page_lists_the_calls(app):
    app.button(key="run").click().run()
    page = app.tabs[3]
    table = page.dataframe[0].value
    assert table["route"][0] == "/infer" and table["status"][0] == 200
    assert table["image"][0] == f"base64 {len(app.session_state['selfcheck_input'][0].data)} bytes"
    assert page.selectbox[0].value == table["id"][0]  # the newest is shown until another one is picked
    request = json.loads(page.json[0].value)
    assert request["image"]["base64"].endswith("base64 characters>")  # redacted by the server


def test_auth_and_log_off(tmp_path, monkeypatch):
    server = start_api(tmp_path, "--no-request-log", "--basic-auth", "v7:pw", workers=1,
                       env={"BYOM_PRELOAD_MODELS": "0"})  # fmt: skip
    try:
        monkeypatch.setenv("BYOM_PLAYGROUND_API_URL", server.url)
        monkeypatch.delenv("BYOM_BASIC_AUTH", raising=False)
        refused = AppTest.from_file(APP, default_timeout=60).run()
        assert not refused.exception
        assert "refused the UI: HTTP 401" in refused.error[0].value

        monkeypatch.setenv("BYOM_BASIC_AUTH", "v7:pw")  # as python run.py passes it on
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert not at.exception
        assert any("HTTP Basic as 'v7'" in c.value for c in at.sidebar.caption)
        assert "requests log is off" in at.tabs[3].info[0].value
        register = at.tabs[2]
        assert any(m.value == "**2. Authentication**: `basic`" for m in register.markdown)
        assert any('-u "$BYOM_BASIC_AUTH"' in c.value and "pw" not in c.value for c in register.code)
    finally:
        server.stop()


def test_missing_model_files_are_downloaded_from_the_sidebar(tmp_path, monkeypatch):
    """With the API on this machine (python run.py), the UI fetches missing files with a progress bar."""
    model_file = Path(os.environ["BYOM_MODEL_DIR"]) / "blaze_face_short_range.tflite"
    if not model_file.is_file():
        pytest.skip(f"{model_file} is absent")
    empty = tmp_path / "no-models"
    empty.mkdir()
    mirror = PictureServer()
    mirror.add_bytes("/blaze_face_short_range.tflite", model_file.read_bytes(), "application/octet-stream")
    monkeypatch.setenv("BYOM_MODEL_DIR", str(empty))
    monkeypatch.setenv("BYOM_MODEL_BASE_URL", mirror.url)
    server = start_api(tmp_path, workers=1, env={"BYOM_PRELOAD_MODELS": "0"})
    try:
        monkeypatch.setenv("BYOM_PLAYGROUND_API_URL", server.url)
        monkeypatch.setenv("BYOM_PLAYGROUND_LOCAL_API", "1")
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert any("`mediapipe-face`: files missing" in m.value for m in at.sidebar.markdown)
        at.button(key="download_mediapipe-face").click().run()
        assert not at.exception
        assert mirror.hits == ["/blaze_face_short_range.tflite"]
        downloaded = Path(os.environ["BYOM_CACHE_DIR"]) / model_file.name
        assert downloaded.read_bytes() == model_file.read_bytes()
        assert not any("mediapipe-face`: files missing" in m.value for m in at.sidebar.markdown)
        at.selectbox(key="model").set_value("mediapipe-face").run()
        at.button(key="run").click().run()
        assert metric(at, "Status") == "HTTP 200" and int(metric(at, "Results")) >= 1
    finally:
        server.stop()
        mirror.close()
