"""Canvas maths: rectangles from the drawable canvas into picture pixels, and typed boxes."""

from __future__ import annotations

import pytest

from playground.boxes import (
    canvas_rects,
    canvas_to_image_xywh,
    check_typed_box,
    display_size_wh,
    image_to_canvas_xywh,
    last_box_from_canvas,
    whole_image_xywh,
)


def rect(left, top, width, height, **extra):
    return {"type": "rect", "left": left, "top": top, "width": width, "height": height, **extra}


def test_display_size_shrinks_large_photos_and_keeps_aspect():
    assert display_size_wh((4000, 3000), (760, 600)) == (760, 570)
    assert display_size_wh((3000, 4000), (760, 600)) == (450, 600)


def test_display_size_never_enlarges_unless_asked():
    assert display_size_wh((512, 512), (760, 600)) == (512, 512)
    assert display_size_wh((512, 512), (1000, 800), enlarge=True) == (800, 800)


def test_rect_type_is_compared_case_insensitively_and_other_shapes_are_ignored():
    data = {"objects": [rect(1, 2, 3, 4), {**rect(5, 6, 7, 8), "type": "Rect"}, {"type": "circle", "left": 0}]}
    assert canvas_rects(data) == [(1, 2, 3, 4), (5, 6, 7, 8)]


def test_resized_rect_uses_scale_factors():
    assert canvas_rects({"objects": [rect(10, 20, 30, 40, scaleX=2, scaleY=0.5)]}) == [(10, 20, 60, 20)]


def test_centre_origin_is_moved_to_top_left():
    assert canvas_rects({"objects": [rect(50, 50, 20, 10, originX="center", originY="center")]}) == [(40, 45, 20, 10)]


def test_rect_dragged_up_and_left_is_normalised():
    assert canvas_rects({"objects": [rect(50, 60, -20, -30)]}) == [(30, 30, 20, 30)]


def test_canvas_rect_is_scaled_to_picture_pixels():
    # A 4000x3000 photo shown at 760x570: scale 5.263
    assert canvas_to_image_xywh((76, 57, 380, 285), (760, 570), (4000, 3000)) == (400.0, 300.0, 2000.0, 1500.0)


def test_canvas_rect_is_clipped_to_the_picture():
    assert canvas_to_image_xywh((-10, -10, 60, 60), (100, 100), (200, 200)) == (0.0, 0.0, 100.0, 100.0)
    assert canvas_to_image_xywh((90, 90, 50, 50), (100, 100), (100, 100)) == (90.0, 90.0, 10.0, 10.0)


def test_a_click_is_not_a_box():
    assert canvas_to_image_xywh((10, 10, 0.5, 0.5), (100, 100), (100, 100)) is None


def test_last_usable_rect_wins():
    data = {"objects": [rect(0, 0, 10, 10), rect(20, 20, 30, 30), rect(5, 5, 0, 0)]}
    assert last_box_from_canvas(data, (100, 100), (200, 200)) == (40.0, 40.0, 60.0, 60.0)
    assert last_box_from_canvas(None, (100, 100), (200, 200)) is None
    assert last_box_from_canvas({"objects": []}, (100, 100), (200, 200)) is None


def test_image_to_canvas_is_the_inverse():
    box = (400.0, 300.0, 2000.0, 1500.0)
    back = canvas_to_image_xywh(image_to_canvas_xywh(box, (760, 570), (4000, 3000)), (760, 570), (4000, 3000))
    assert back == pytest.approx(box, abs=0.1)


def test_whole_image_box():
    assert whole_image_xywh((640, 480)) == (0.0, 0.0, 640.0, 480.0)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((0, 0, 0, 10), "positive width and height"),
        ((0, 0, 10, -1), "positive width and height"),
        ((700, 0, 10, 10), "outside the 640x480 picture"),
        ((-20, -20, 10, 10), "outside the 640x480 picture"),
        ((float("nan"), 0, 10, 10), "finite"),
    ],
)
def test_typed_box_problems(box, message):
    assert message in check_typed_box(box, (640, 480))


def test_partly_outside_box_is_fine():
    assert check_typed_box((-10, -10, 100, 100), (640, 480)) is None
