"""End to end in a real browser: `python run.py`, then headless Chromium drives the UI like a person.

Uploads a large photo, draws the Auto-Annotate box with the mouse, runs the default endpoint, checks the
overlay and the JSON; renames a class and checks /classes; runs the self-check; reads the requests log.
Screenshots go to the test's tmp folder (and to $BYOM_SCREENSHOT_DIR when set, for the README).
Uses Debian's /usr/bin/chromium through Playwright's driver: never `playwright install`.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from playground.overlay import PALETTE
from tests.test_playground_cli import start_playground

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
PHOTO_WH = (2400, 2400)
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    running = start_playground(tmp_path_factory.mktemp("browser-home"))
    yield running
    running.interrupt()


@pytest.fixture(scope="module")
def console_errors() -> list[str]:
    return []


@pytest.fixture(scope="module")
def page(playground, console_errors):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: console_errors.append(str(exc)))
        page.goto(playground.ui_url)
        page.locator("canvas.upper-canvas").wait_for()
        yield page
        browser.close()


def screenshot(page, tmp_path: Path, name: str) -> Path:
    """The whole page (Streamlit scrolls inside its own container, so the window is made tall enough)."""
    height = page.evaluate("document.querySelector('[data-testid=\"stMainBlockContainer\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": int(min(max(height + 120, 900), 4000))})
    time.sleep(0.4)
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path)
    page.set_viewport_size({"width": 1400, "height": 1000})
    if os.environ.get("BYOM_SCREENSHOT_DIR"):  # for the README: 256 colours keep the committed files small
        Image.open(path).convert("RGB").quantize(256).save(Path(os.environ["BYOM_SCREENSHOT_DIR"]) / path.name,
                                                           optimize=True)  # fmt: skip
    return path


def wait_until_idle(page) -> None:
    """Until Streamlit has finished the rerun an interaction started (its status widget is gone)."""
    time.sleep(0.3)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')")


def no_exception_on(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def test_try_upload_draw_run(page, tmp_path, picture):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(picture("astronaut")).resize(PHOTO_WH, Image.Resampling.LANCZOS).save(photo, quality=90)
    page.get_by_text("Upload", exact=True).click()
    page.locator("input[type=file]").set_input_files(str(photo))
    page.get_by_text(f"photo.jpg: {PHOTO_WH[0]}×{PHOTO_WH[1]} px").wait_for()

    canvas = page.locator("canvas.upper-canvas")
    box = canvas.bounding_box()
    start = (box["x"] + 0.2 * box["width"], box["y"] + 0.02 * box["height"])
    end = (box["x"] + 0.8 * box["width"], box["y"] + 0.65 * box["height"])
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=10)
    page.mouse.up()
    scale = PHOTO_WH[0] / box["width"]
    expected = ((start[0] - box["x"]) * scale, (start[1] - box["y"]) * scale, (end[0] - start[0]) * scale,
                (end[1] - start[1]) * scale)  # fmt: skip
    deadline = time.monotonic() + 15
    while True:  # the box reaches the number fields after the canvas's rerun
        typed = [float(page.get_by_role("spinbutton", name=n, exact=True).input_value()) for n in "xywh"]
        if typed == pytest.approx(expected, abs=1.5 * scale) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert typed == pytest.approx(expected, abs=1.5 * scale)  # ±1.5 displayed pixels

    page.get_by_role("button", name="Run").click()
    page.get_by_text("Download Darwin JSON 2.0").wait_for()
    no_exception_on(page)
    assert page.get_by_text("HTTP 200", exact=True).count() >= 1
    response_text = page.locator('[data-testid="stJson"]').nth(1).inner_text()
    for name in ('"face"', '"face_oval"', '"lips"', '"person"'):
        assert name in response_text
    request_text = page.locator('[data-testid="stJson"]').nth(0).inner_text()
    assert "characters)" in request_text and '"bbox"' in request_text

    overlay = page.locator('[data-testid="stImage"] img').first
    assert overlay.evaluate("img => img.naturalWidth") >= 800
    pixels = np.asarray(Image.open(io.BytesIO(overlay.screenshot())).convert("RGB")).astype(int)
    face_colour = np.array(PALETTE[0])  # "face" is the first class of /classes
    assert (np.abs(pixels - face_colour).max(axis=2) < 40).sum() > 300  # the face box is drawn
    screenshot(page, tmp_path, "try")


def test_classes_rename_reaches_the_endpoint(page, playground, tmp_path):
    page.get_by_role("tab", name="Classes").click()
    editor = page.locator(".st-key-class_editor_0")
    editor.scroll_into_view_if_needed()
    cell_editor = page.locator("textarea.gdg-input")
    for _ in range(3):  # the grid is drawn on a canvas: select by position, move with the keyboard
        grid = editor.bounding_box()
        page.mouse.click(grid["x"] + 30, grid["y"] + 35 + 17)  # row 1, column "Model"
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")  # column "V7 class name"
        page.keyboard.press("Enter")
        try:
            cell_editor.wait_for(timeout=3000)
            break
        except sync_api.TimeoutError:
            wait_until_idle(page)
    cell_editor.fill("Human face")
    cell_editor.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('.st-key-class_editor_0 #glide-cell-2-0')?.textContent === 'Human face'"
    )
    wait_until_idle(page)  # the edit went to the app: the table's rerun is over
    page.get_by_role("button", name="Save the class mapping").click()
    page.get_by_text("Saved. /classes now answers as below.").wait_for()
    no_exception_on(page)
    classes = requests.get(f"{playground.api_url}/classes", timeout=10).json()
    assert classes[0] == {"name": "Human face", "type": "bounding_box"}
    assert '"Human face"' in page.locator('[data-testid="stCode"]').first.inner_text()
    screenshot(page, tmp_path, "classes")


def test_register_and_self_check(page, playground, tmp_path):
    page.get_by_role("tab", name="Register").click()
    page.get_by_text(f"{playground.api_url}/infer", exact=True).first.wait_for()
    page.get_by_role("button", name="Run the self-check").click()
    summary = page.get_by_text("Self-check of /infer:")
    summary.wait_for()
    no_exception_on(page)
    assert "0 failed" in summary.inner_text()
    screenshot(page, tmp_path, "register")


def test_requests_log(page, tmp_path):
    page.get_by_role("tab", name="Requests").click()
    chooser = page.locator('[data-testid="stSelectbox"]').filter(has_text="Show a request")
    chooser.wait_for()
    no_exception_on(page)
    chooser.click()
    page.get_by_role("option").filter(has_text="→ 200").last.click()  # the Try tab's call
    shown = page.locator('[data-testid="stJson"]').filter(has_text="base64 characters>")
    shown.first.wait_for()  # the server keeps the size of a base64 picture, never the picture
    screenshot(page, tmp_path, "requests")


def test_no_error_in_the_browser_console(page, console_errors):
    assert console_errors == []
