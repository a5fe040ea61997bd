"""Pure geometry: crop regions, shifting, clipping, centres (exact arithmetic)."""

from __future__ import annotations

import pytest

from models.base import bounding_box, keypoint, line, polygon, skeleton, tag
from models.geometry import (
    clip_result,
    clip_xywh,
    crop_region_xyxy,
    point_in_xywh,
    result_center_xy,
    round_result,
    shift_result,
)


@pytest.mark.parametrize(
    ("box_xywh", "resolution_wh", "expected_xyxy"),
    [
        ((100, 50, 200, 100), (640, 480), (80, 40, 320, 160)),  # 10% margin: 20 px and 10 px
        ((0, 0, 640, 480), (640, 480), (0, 0, 640, 480)),  # whole image: the margin is clipped away
        ((10, 10, 20, 20), (640, 480), (2, 2, 38, 38)),  # small box: at least 8 px margin
        ((600, 450, 100, 100), (640, 480), (590, 440, 640, 480)),  # partly outside
        ((10.5, 20.25, 30.0, 40.0), (640, 480), (2, 12, 49, 69)),  # fractions widen outwards
    ],
)
def test_crop_region_adds_margin_and_stays_inside(box_xywh, resolution_wh, expected_xyxy):
    assert crop_region_xyxy(box_xywh, resolution_wh) == expected_xyxy


@pytest.mark.parametrize(
    ("xywh", "expected"),
    [
        ((10, 10, 20, 20), (10, 10, 20, 20)),
        ((-10, -5, 30, 30), (0, 0, 20, 25)),
        ((90, 40, 50, 50), (90, 40, 10, 10)),
        ((200, 200, 5, 5), (100, 50, 0, 0)),
        ((0, 0, 0, 0), (0, 0, 0, 0)),
    ],
)
def test_clip_xywh(xywh, expected):
    assert clip_xywh(xywh, (100, 50)) == pytest.approx(expected)


def test_shift_moves_every_kind_of_geometry_exactly():
    nodes = [("a", 1.0, 2.0, False), ("b", 3.0, 4.0, True)]
    shifted = [
        shift_result(r, 100, 7)
        for r in (
            bounding_box("f", 0.9, (1, 2, 3, 4)),
            polygon("p", 0.9, [(0, 0), (10, 0), (0, 10)]),
            line("l", 0.9, [(1, 1), (2, 2)]),
            keypoint("k", 0.9, (5, 6)),
            skeleton("s", 0.9, nodes),
        )
    ]
    assert shifted[0]["bounding_box"] == {"x": 101, "y": 9, "w": 3, "h": 4}
    assert shifted[1]["polygon"]["path"] == [{"x": 100, "y": 7}, {"x": 110, "y": 7}, {"x": 100, "y": 17}]
    assert shifted[2]["line"]["path"] == [{"x": 101, "y": 8}, {"x": 102, "y": 9}]
    assert shifted[3]["keypoint"] == {"x": 105, "y": 13}
    assert [(n["x"], n["y"], n["occluded"]) for n in shifted[4]["skeleton"]["nodes"]] == [
        (101, 9, False),
        (103, 11, True),
    ]


def test_shift_does_not_change_the_original():
    original = bounding_box("f", 0.9, (1, 2, 3, 4))
    shift_result(original, 10, 10)
    assert original["bounding_box"]["x"] == 1


@pytest.mark.parametrize(
    ("result", "expected_geometry"),
    [
        (bounding_box("f", 1, (-5, -5, 20, 20)), {"x": 0, "y": 0, "w": 15, "h": 15}),
        (bounding_box("f", 1, (90, 40, 20, 20)), {"x": 90, "y": 40, "w": 10, "h": 10}),
        (bounding_box("f", 1, (150, 10, 20, 20)), None),  # wholly outside: zero size, dropped
        (bounding_box("f", 1, (10, 10, 0, 5)), None),  # zero width: V7 rejects it
        (keypoint("k", 1, (100, 50)), {"x": 100, "y": 50}),  # on the border is inside
        (keypoint("k", 1, (101, 5)), None),
        (
            polygon("p", 1, [(-10, -10), (50, -10), (50, 20)]),
            {"path": [{"x": 0, "y": 0}, {"x": 50, "y": 0}, {"x": 50, "y": 20}]},
        ),
        (polygon("p", 1, [(-10, -10), (-5, -10), (-5, -2)]), None),  # collapses onto the corner
        (line("l", 1, [(-1, -1), (-2, -2)]), None),
        (tag("t", 1), {}),
    ],
)
def test_clip_result(result, expected_geometry):
    geometry = next(k for k in result if k not in ("label", "confidence"))
    clipped = clip_result(result, (100, 50))
    if expected_geometry is None:
        assert clipped is None
    else:
        assert clipped[geometry] == expected_geometry


def test_clip_marks_skeleton_nodes_outside_occluded_and_keeps_them_inside():
    result = skeleton("s", 1, [("in", 10, 10, False), ("left", -3, 10, False), ("below", 50, 70, False)])
    nodes = clip_result(result, (100, 50))["skeleton"]["nodes"]
    assert [(n["name"], n["x"], n["y"], n["occluded"]) for n in nodes] == [
        ("in", 10, 10, False),
        ("left", 0, 10, True),
        ("below", 50, 50, True),
    ]


def test_centres():
    assert result_center_xy(bounding_box("f", 1, (10, 20, 30, 40))) == (25, 40)
    assert result_center_xy(polygon("p", 1, [(0, 0), (6, 0), (0, 6)])) == (2, 2)
    # occluded nodes do not pull the centre of a skeleton away
    assert result_center_xy(skeleton("s", 1, [("a", 10, 10, False), ("b", 500, 500, True)])) == (10, 10)
    assert result_center_xy(tag("t", 1)) is None


@pytest.mark.parametrize(
    ("point", "inside"), [((10, 10), True), ((9.9, 10), False), ((30, 40), True), ((30.1, 5), False)]
)
def test_point_in_xywh(point, inside):
    assert point_in_xywh(point, (10, 5, 20, 35)) is inside


def test_round_result_keeps_two_decimals():
    assert round_result(keypoint("k", 1, (1.23456, 2.98765)))["keypoint"] == {"x": 1.23, "y": 2.99}
