"""Pure playground logic: request building, error wording, class table rules, registration text, log rows."""

from __future__ import annotations

import base64

import pytest

from playground.classes import endpoint_classes, mapping_from_rows, rows_from_models, validate_rows
from playground.client import (
    Call,
    Credentials,
    build_infer_request,
    describe_answer_problem,
    request_for_display,
)
from playground.register import auth_summary, curl_command, reachability_problem, skeleton_specs
from playground.requests_view import request_rows

MODELS = {
    "default_models": ["boxes", "bodies"],
    "models": [
        {"name": "boxes", "classes": [
            {"model_class": "face", "name": "face", "type": "bounding_box", "enabled": True, "threshold": None},
            {"model_class": "eye", "name": "eye", "type": "polygon", "enabled": True, "threshold": 0.3},
        ]},
        {"name": "bodies", "classes": [
            {"model_class": "person", "name": "person", "type": "skeleton", "enabled": True, "threshold": None,
             "skeleton": {"nodes": ["a", "b"], "edges": [["a", "b"]]}},
            {"model_class": "face", "name": "face", "type": "bounding_box", "enabled": False, "threshold": None},
        ]},
        {"name": "other", "classes": [
            {"model_class": "thing", "name": "thing", "type": "polygon", "enabled": True, "threshold": None},
        ]},
    ],
}  # fmt: skip


# -- request building ---------------------------------------------------------------------


def test_base64_request_with_box_and_threshold_at_the_top():
    body = build_infer_request(image_bytes=b"\x89PNG....", box_xywh=(1, 2.345, 3, 4), threshold=0.5)
    assert body == {"image": {"base64": base64.b64encode(b"\x89PNG....").decode()},
                    "bbox": {"x": 1.0, "y": 2.35, "w": 3.0, "h": 4.0}, "threshold": 0.5}  # fmt: skip
    assert "data:" not in body["image"]["base64"]


def test_box_and_threshold_under_data():
    body = build_infer_request(
        image_url="https://s3/x.jpg?sig=1", box_xywh=(0, 0, 5, 5), threshold=0.2, placement="data"
    )
    assert body == {"image": {"url": "https://s3/x.jpg?sig=1"},
                    "data": {"bbox": {"x": 0.0, "y": 0.0, "w": 5.0, "h": 5.0}, "threshold": 0.2}}  # fmt: skip


def test_no_box_no_threshold_means_just_the_image():
    assert build_infer_request(image_url="https://a/b.png") == {"image": {"url": "https://a/b.png"}}
    assert build_infer_request(image_url="https://a/b.png", placement="data") == {"image": {"url": "https://a/b.png"}}


@pytest.mark.parametrize("kwargs", [{}, {"image_bytes": b"x", "image_url": "https://a"}])
def test_exactly_one_image_source(kwargs):
    with pytest.raises(ValueError, match="exactly one"):
        build_infer_request(**kwargs)


def test_display_copy_shortens_base64_only():
    body = {"image": {"base64": "A" * 5000}, "bbox": {"x": 1}}
    shown = request_for_display(body, keep_chars=10)
    assert shown["image"]["base64"] == "AAAAAAAAAA…(5000 characters)"
    assert shown["bbox"] == {"x": 1}
    assert len(body["image"]["base64"]) == 5000  # the original is untouched


def test_credentials_from_the_server_variables():
    creds = Credentials.from_env({"BYOM_BASIC_AUTH": "me:pa:ss", "BYOM_AUTH_SECRET": "s3"})
    headers = creds.headers()
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"me:pa:ss").decode()
    assert headers["X-BYOM-Secret"] == "s3"  # the server's default header name
    assert Credentials.from_env({"BYOM_AUTH_HEADER": "X-MY-AUTH", "BYOM_AUTH_SECRET": "k"}).headers() == {
        "X-MY-AUTH": "k"
    }
    assert Credentials.from_env({}).headers() == {}
    assert "me" in creds.describe() and "s3" not in creds.describe()


def test_answer_problems_in_words():
    failed = Call("POST", "u", 400, body={"status": "failed", "results": [], "error": "bbox is missing w"})
    assert describe_answer_problem(failed) == "HTTP 400: bbox is missing w"
    unauthorized = Call("POST", "u", 401, body={"status": "failed", "error": "authentication required"})
    assert "--basic-auth" in describe_answer_problem(unauthorized)
    html = Call("POST", "u", 502, text="<html><body><h1>Bad Gateway</h1></body></html>", content_type="text/html")
    assert describe_answer_problem(html) == "HTTP 502: the answer is not JSON (text/html): Bad Gateway"
    assert describe_answer_problem(Call("GET", "u", 200, body=[{"name": "a"}])) is None


# -- class table --------------------------------------------------------------------------


def test_rows_list_every_model_class():
    rows = rows_from_models(MODELS)
    assert [(r["model"], r["model_class"]) for r in rows] == [
        ("boxes", "face"), ("boxes", "eye"), ("bodies", "person"), ("bodies", "face"), ("other", "thing")
    ]  # fmt: skip
    assert rows[1] == {"model": "boxes", "model_class": "eye", "v7_name": "eye", "type": "polygon",
                       "enabled": True, "threshold": 0.3}  # fmt: skip


def test_valid_table_has_no_problems_and_becomes_the_mapping():
    rows = rows_from_models(MODELS)
    rows[0]["v7_name"] = "  Face  "
    rows[1]["threshold"] = float("nan")  # an emptied cell
    assert validate_rows(rows, ["boxes", "bodies"], MODELS) == []
    mapping = mapping_from_rows(rows, ["boxes", "bodies"])
    assert mapping["default_models"] == ["boxes", "bodies"]
    assert mapping["classes"]["boxes"]["face"] == {"v7_name": "Face", "enabled": True, "threshold": None}
    assert mapping["classes"]["boxes"]["eye"]["threshold"] is None


def test_empty_name_is_refused():
    rows = rows_from_models(MODELS)
    rows[2]["v7_name"] = "   "
    assert validate_rows(rows, ["boxes"], MODELS) == ["bodies/person: the V7 class name is empty"]


def test_one_name_one_type_on_an_endpoint():
    rows = rows_from_models(MODELS)
    rows[1]["v7_name"] = "face"  # eye (polygon) renamed like face (bounding_box) on the same model
    problems = validate_rows(rows, ["boxes"], MODELS)
    assert any("'face'" in p and "boxes/face (bounding_box)" in p and "boxes/eye (polygon)" in p for p in problems)


def test_same_name_across_endpoints_that_never_meet_is_fine():
    rows = rows_from_models(MODELS)
    rows[4]["v7_name"] = "face"  # other/thing (polygon) is on no endpoint with a "face" box
    assert validate_rows(rows, ["boxes", "bodies"], MODELS) == []
    problems = validate_rows(rows, ["boxes", "other"], MODELS)
    assert len(problems) == 1 and "the default endpoint" in problems[0]


def test_same_type_may_share_a_name_and_disabled_classes_do_not_count():
    rows = rows_from_models(MODELS)
    rows[3]["enabled"] = True  # bodies/face is bounding_box like boxes/face: merged, fine
    assert validate_rows(rows, ["boxes", "bodies"], MODELS) == []
    rows[3]["enabled"], rows[3]["v7_name"] = False, "person"  # disabled: cannot clash with the skeleton
    assert validate_rows(rows, ["boxes", "bodies"], MODELS) == []


def test_threshold_and_default_models_are_checked():
    rows = rows_from_models(MODELS)
    rows[0]["threshold"] = 1.5
    problems = validate_rows(rows, [], MODELS)
    assert "the default endpoint needs at least one model" in problems
    assert "boxes/face: the threshold 1.5 is outside 0..1" in problems
    assert validate_rows(rows_from_models(MODELS), ["nope"], MODELS) == [
        "the default endpoint names an unknown model 'nope'"
    ]


def test_endpoint_classes_merge_by_name_and_carry_skeletons():
    default = endpoint_classes(MODELS)
    assert [(c.name, c.type) for c in default] == [("face", "bounding_box"), ("eye", "polygon"),
                                                   ("person", "skeleton")]  # fmt: skip
    person = default[2]
    assert person.nodes == ("a", "b") and person.edges == (("a", "b"),)
    assert skeleton_specs(default) == [{"name": "person", "nodes": ["a", "b"], "edges": [["a", "b"]]}]
    assert [c.name for c in endpoint_classes(MODELS, "other")] == ["thing"]


# -- registration text --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reachable"),
    [
        ("http://127.0.0.1:8000/infer", False),
        ("http://localhost:8000/infer", False),
        ("http://192.168.1.5/infer", False),
        ("http://myserver/infer", False),
        ("https://abc.trycloudflare.com/infer", True),
        ("https://8.8.8.8/infer", True),
    ],
)
def test_reachability(url, reachable):
    assert (reachability_problem(url) is None) is reachable


def test_auth_summary_names_the_header_and_warns_when_open():
    method, lines = auth_summary({"basic": True, "header": "X-MY-AUTH"})
    assert method == "basic + header"
    assert any("X-MY-AUTH" in line for line in lines)
    method, lines = auth_summary({"basic": False, "header": None})
    assert method == "none" and "anyone" in lines[0]


def test_curl_command_reads_secrets_from_variables():
    command = curl_command(
        "https://x.example/infer",
        basic_auth=True,
        auth_header="X-MY-AUTH",
        box_xywh=(1, 2, 3, 4),
        threshold=0.5,
        file_name="my photo.jpg",
    )
    assert "base64 -w0 'my photo.jpg'" in command
    assert '-u "$BYOM_BASIC_AUTH"' in command and '-H "X-MY-AUTH: $BYOM_AUTH_SECRET"' in command
    assert '"bbox": {"x": 1.0, "y": 2.0, "w": 3.0, "h": 4.0}, "threshold": 0.5' in command


# -- requests log rows --------------------------------------------------------------------


def test_request_rows():
    entries = [{"id": 7, "time": 0, "route": "/infer", "client": "10.0.0.1", "image_source": "url s3.example",
                "bbox": {"x": 1, "y": 2.5, "w": 3, "h": 4}, "status_code": 400, "latency_ms": 12.3,
                "request": {}, "response": {"status": "failed", "results": [], "error": "bad bbox"}}]  # fmt: skip
    (row,) = request_rows(entries)
    assert row["bbox"] == "1, 2.5, 3, 4"
    assert row["results"] == 0 and row["error"] == "bad bbox" and row["status"] == 400
    assert row["image"] == "url s3.example"
