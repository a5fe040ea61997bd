"""Drawing results: each geometry lands where the result says, in its class colour, scaled for display."""

from __future__ import annotations

import numpy as np
from PIL import Image

from playground.overlay import PALETTE, class_colors, draw_results

GREY = (90, 90, 90)
RED, GREEN = (255, 0, 0), (0, 200, 0)


def canvas(size=(400, 300)) -> Image.Image:
    return Image.new("RGB", size, GREY)


def pixel(image: Image.Image, xy) -> tuple[int, int, int]:
    return image.getpixel((int(xy[0]), int(xy[1])))


def test_class_colours_follow_class_order_and_wrap_around():
    names = [f"c{i}" for i in range(len(PALETTE) + 1)]
    colors = class_colors(names)
    assert colors["c0"] == PALETTE[0] and colors["c1"] == PALETTE[1]
    assert colors[names[-1]] == PALETTE[0]


def test_box_outline_in_class_colour_and_inside_untouched():
    result = {"label": "face", "confidence": 0.9, "bounding_box": {"x": 100, "y": 100, "w": 100, "h": 80}}
    drawn = draw_results(canvas(), [result], colors={"face": RED}, show_labels=False)
    assert pixel(drawn, (100, 140)) == RED  # left edge
    assert pixel(drawn, (150, 180)) == RED  # bottom edge
    assert pixel(drawn, (150, 140)) == GREY  # inside
    assert pixel(drawn, (50, 50)) == GREY


def test_results_are_scaled_to_the_displayed_size():
    result = {"label": "face", "confidence": 0.9, "bounding_box": {"x": 200, "y": 200, "w": 200, "h": 160}}
    drawn = draw_results(canvas(), [result], scale_xy=(0.5, 0.5), colors={"face": RED}, show_labels=False)
    assert pixel(drawn, (100, 140)) == RED
    assert pixel(drawn, (300, 240)) == GREY


def test_polygon_is_filled_translucently_and_outlined():
    path = [{"x": 50, "y": 50}, {"x": 250, "y": 50}, {"x": 150, "y": 250}]
    drawn = draw_results(
        canvas(),
        [{"label": "lips", "confidence": 1, "polygon": {"path": path}}],
        colors={"lips": GREEN},
        show_labels=False,
    )
    inside = pixel(drawn, (150, 100))
    assert inside != GREY and inside != GREEN  # tinted, not opaque
    assert inside[1] > GREY[1]
    assert pixel(drawn, (150, 50)) == GREEN


def test_visible_nodes_are_filled_and_occluded_nodes_hollow():
    nodes = [{"name": "a", "x": 100, "y": 100, "occluded": False}, {"name": "b", "x": 300, "y": 100, "occluded": True}]
    result = {"label": "person", "confidence": 1, "skeleton": {"nodes": nodes}}
    drawn = draw_results(
        canvas(), [result], colors={"person": RED}, skeleton_edges={"person": [("a", "b")]}, show_labels=False
    )
    assert pixel(drawn, (100, 100)) == RED  # filled dot
    assert pixel(drawn, (300, 100)) != RED  # hollow ring: its centre is not painted solid
    edge = pixel(drawn, (200, 100))  # edge to an occluded node: faint
    assert edge != GREY and edge != RED


def test_visible_edges_are_solid():
    nodes = [{"name": "a", "x": 100, "y": 100, "occluded": False}, {"name": "b", "x": 300, "y": 100, "occluded": False}]
    drawn = draw_results(
        canvas(),
        [{"label": "p", "confidence": 1, "skeleton": {"nodes": nodes}}],
        colors={"p": RED},
        skeleton_edges={"p": [["a", "b"]]},
        show_labels=False,
    )
    assert pixel(drawn, (200, 100)) == RED


def test_keypoint_and_line():
    results = [
        {"label": "tip", "confidence": 1, "keypoint": {"x": 50, "y": 250}},
        {"label": "edge", "confidence": 1, "line": {"path": [{"x": 200, "y": 250}, {"x": 380, "y": 250}]}},
    ]
    drawn = draw_results(canvas(), results, colors={"tip": RED, "edge": GREEN}, show_labels=False)
    assert pixel(drawn, (50, 250)) == RED
    assert pixel(drawn, (300, 250)) == GREEN


def test_sent_box_is_dashed_white_over_a_dark_line():
    drawn = np.asarray(draw_results(canvas(), [], sent_box_xywh=(20, 20, 360, 260), show_labels=False))
    top_edge = drawn[20, 30:370]
    whites = np.all(top_edge == 255, axis=1)
    assert 0.3 < whites.mean() < 0.7  # dashes: about half white
    assert np.all(top_edge[~whites].max(axis=1) < GREY[0])  # the gaps show the dark line


def test_labels_name_the_class_in_its_colour():
    result = {"label": "face", "confidence": 0.87, "bounding_box": {"x": 100, "y": 100, "w": 100, "h": 80}}
    with_labels = np.asarray(draw_results(canvas(), [result], colors={"face": RED}))
    without = np.asarray(draw_results(canvas(), [result], colors={"face": RED}, show_labels=False))
    changed = np.argwhere(np.any(with_labels != without, axis=2))
    assert len(changed) > 100
    ys, xs = changed[:, 0], changed[:, 1]
    assert ys.max() <= 100 and xs.min() >= 100  # the chip sits just above the box's top-left corner


def test_unknown_classes_still_get_a_colour_and_tags_are_listed():
    results = [
        {"label": "indoor", "confidence": 0.7, "tag": {}},
        {"label": "x", "confidence": 1, "bounding_box": {"x": 1, "y": 1, "w": 5, "h": 5}},
    ]
    drawn = np.asarray(draw_results(canvas(), results))
    assert np.any(drawn[0:30, 0:100] != GREY)  # the tag chip at the top-left


def test_input_is_not_modified_and_output_is_rgb():
    image = canvas()
    drawn = draw_results(image, [{"label": "a", "confidence": 1, "bounding_box": {"x": 0, "y": 0, "w": 50, "h": 50}}])
    assert drawn.mode == "RGB" and drawn.size == image.size
    assert image.getpixel((0, 0)) == GREY
