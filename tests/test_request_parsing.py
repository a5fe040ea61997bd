"""Parsing V7's request body: every accepted shape and every rejected one, with its message."""

from __future__ import annotations

import pytest

from server.contract import ApiError, box_within_image, parse_infer_request


def test_base64_request_without_box():
    parsed = parse_infer_request({"image": {"base64": "aGk="}})
    assert (parsed.image_base64, parsed.image_url, parsed.box_xywh, parsed.threshold) == ("aGk=", None, None, None)


def test_url_request_with_box_and_threshold_at_top_level():
    parsed = parse_infer_request(
        {"image": {"url": " https://x.test/a.jpg?sig=1 "}, "bbox": {"x": 1, "y": 2.5, "w": 3, "h": 4}, "threshold": 0.3}
    )
    assert parsed.image_url == "https://x.test/a.jpg?sig=1"
    assert parsed.box_xywh == (1.0, 2.5, 3.0, 4.0)
    assert parsed.threshold == 0.3


def test_box_and_threshold_under_data_as_clicker_models_get_them():
    parsed = parse_infer_request(
        {
            "image": {"base64": "aGk="},
            "data": {
                "bbox": {"x": 1, "y": 2, "w": 3, "h": 4},
                "threshold": 0.7,
                "clicks": [{"x": 2, "y": 3, "type": "add"}],
            },
        }
    )
    assert parsed.box_xywh == (1, 2, 3, 4) and parsed.threshold == 0.7


def test_unknown_keys_are_ignored():
    parsed = parse_infer_request({"image": {"base64": "aGk=", "width": 5}, "dicom": {"window": 1}, "extra": []})
    assert parsed.image_base64 == "aGk="


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        ({}, 'has no "image"'),
        ({"image": "aGk="}, '"image" must be an object'),
        ({"image": {}}, '"image" needs "url" or "base64"'),
        ({"image": {"url": "https://a", "base64": "aGk="}}, "not both"),
        ({"image": {"url": 5}}, '"image.url" must be a non-empty string'),
        ({"image": {"url": "  "}}, '"image.url" must be a non-empty string'),
        ({"image": {"base64": ["x"]}}, '"image.base64" must be a non-empty string'),
        ({"image": {"base64": "aGk="}, "bbox": [1, 2, 3, 4]}, "bbox must be an object"),
        ({"image": {"base64": "aGk="}, "bbox": {"x": 1, "y": 2, "w": 3}}, "bbox is missing h"),
        ({"image": {"base64": "aGk="}, "bbox": {"x": 1, "y": 2, "w": -3, "h": 4}}, "positive size"),
        ({"image": {"base64": "aGk="}, "bbox": {"x": 1, "y": 2, "w": 3, "h": 0}}, "positive size"),
        ({"image": {"base64": "aGk="}, "bbox": {"x": "1", "y": 2, "w": 3, "h": 4}}, "finite numbers"),
        ({"image": {"base64": "aGk="}, "bbox": {"x": True, "y": 2, "w": 3, "h": 4}}, "finite numbers"),
        ({"image": {"base64": "aGk="}, "threshold": 1.5}, "threshold must be a number from 0 to 1"),
        ({"image": {"base64": "aGk="}, "threshold": -0.1}, "threshold must be a number from 0 to 1"),
        ({"image": {"base64": "aGk="}, "threshold": "0.5"}, "threshold must be a number from 0 to 1"),
    ],
)
def test_rejected_bodies_say_why(body, message):
    with pytest.raises(ApiError) as caught:
        parse_infer_request(body)
    assert caught.value.status_code == 400
    assert message in caught.value.message


@pytest.mark.parametrize("box", [(640, 0, 10, 10), (0, 480, 10, 10), (-20, 0, 20, 10), (0, -10, 10, 10)])
def test_box_wholly_outside_the_image_is_rejected(box):
    with pytest.raises(ApiError, match="lies outside the 640x480 image"):
        box_within_image(box, (640, 480))


@pytest.mark.parametrize("box", [(630, 470, 100, 100), (-5, -5, 10, 10), (0, 0, 640, 480)])
def test_box_overlapping_the_image_is_accepted(box):
    box_within_image(box, (640, 480))
