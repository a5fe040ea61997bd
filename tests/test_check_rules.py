"""The contract rules of `python run.py check`, one rule at a time, over answers built in a line.

Each test breaks one thing in an otherwise good answer and asserts on the rule's status and on its
evidence text; `test_each_fault_fails_exactly_one_rule` checks that a fault is reported once, by
its own rule, and not echoed by the others.
"""

from __future__ import annotations

import copy

import pytest

from tools.contract_rules import (
    FAILED,
    NOT_JSON,
    PASSED,
    SKIPPED,
    WARNING,
    Answer,
    Observations,
    evaluate,
    rule_accepts,
    rule_auth,
    rule_class_names,
    rule_class_types,
    rule_classes,
    rule_failure_json,
    rule_geometry_shape,
    rule_inside_image,
    rule_json,
    rule_latency,
    rule_no_zero_size,
    rule_one_geometry,
    rule_reachable,
    rule_result_fields,
    rule_skeleton_nodes,
    rule_status,
    rule_within_bbox,
    usable_classes,
)

CLASSES = [
    {"name": "face", "type": "bounding_box"},
    {"name": "person", "type": "skeleton"},
    {"name": "lips", "type": "polygon"},
]
CLASS_TYPES = usable_classes(CLASSES)
NODES = ("nose", "left_eye", "right_eye")


def box(x=10.0, y=20.0, w=30.0, h=40.0, **extra):
    return {
        "name": "face",
        "label": "face",
        "confidence": 0.9,
        "bounding_box": {"x": x, "y": y, "w": w, "h": h},
        **extra,
    }


def person(nodes=NODES, x=50.0):
    value = {"nodes": [{"name": n, "x": x + i, "y": 60.0, "occluded": False} for i, n in enumerate(nodes)]}
    return {"name": "person", "label": "person", "confidence": 0.8, "skeleton": value}


def lips(points=((10, 10), (20, 10), (15, 18))):
    return {
        "name": "lips",
        "label": "lips",
        "confidence": 0.7,
        "polygon": {"path": [{"x": float(x), "y": float(y)} for x, y in points]},
    }


def answer(results=None, *, body=None, status_code=200, mode="base64", image_wh=(200, 100), **extra) -> Answer:
    if body is None:
        body = {"status": "succeeded", "results": [box(), person(), lips()] if results is None else results}
    return Answer(
        f"POST /infer pic.jpg as {mode}",
        status_code,
        "application/json",
        body,
        str(body)[:200],
        latency_s=0.05,
        image_wh=image_wh,
        mode=mode,
        **extra,
    )


def classes_answer(body=CLASSES) -> Answer:
    return Answer("GET /classes", 200, "application/json", body, str(body))


def probe(body, status_code=400, content_type="application/json") -> Answer:
    return Answer("POST /infer with no image", status_code, content_type, body, str(body))


def test_a_good_endpoint_passes_every_rule():
    seen = Observations(
        classes_tried=(classes_answer(),),
        classes_answer=classes_answer(),
        classes_url="http://x/classes",
        inferences=(answer(), answer(mode="url", fetched=True)),
        failure_probes=(probe({"status": "failed", "results": [], "error": "no image"}),),
        auth_probes=(("infer", probe({"status": "failed"}, 401)), ("classes", probe({"status": "failed"}, 401))),
        auth_expected=True,
        modes=("base64", "url"),
        bbox_xywh=(0, 0, 200, 100),
    )
    results = evaluate(seen)
    assert {r.rule: r.status for r in results if r.status != PASSED} == {}
    assert len(results) == 18


# -- reachable, json, classes, status --------------------------------------------------------------


def test_reachable_fails_on_a_refused_connection_but_not_on_a_timeout():
    refused = Answer("GET /classes", None, error="ConnectionError: [Errno 111] Connection refused")
    timed_out = Answer("POST /infer", None, error="timeout", latency_s=35)
    result = rule_reachable([refused, timed_out, answer()])
    assert result.status == FAILED
    assert result.evidence == ("GET /classes: no HTTP answer (ConnectionError: [Errno 111] Connection refused)",)


def test_nothing_but_reachable_is_judged_when_nothing_answered():
    refused = Answer("GET /classes", None, error="ConnectionError: [Errno 111] Connection refused")
    results = evaluate(Observations(classes_tried=(refused,), inferences=(refused,)))
    assert results[0].rule == "reachable" and results[0].status == FAILED
    assert {r.status for r in results[1:]} == {SKIPPED}


def test_json_fails_on_a_body_that_is_not_json_and_warns_on_a_wrong_content_type():
    text = Answer("POST /infer a.jpg as base64", 200, "text/plain", NOT_JSON, "OK, 2 faces")
    result = rule_json([text])
    assert result.status == FAILED
    assert "Content-Type text/plain, body is not JSON: OK, 2 faces" in result.evidence[0]
    html_typed = Answer("POST /infer a.jpg as base64", 200, "text/html", {"status": "succeeded"}, "{}")
    assert rule_json([html_typed]).status == WARNING
    assert rule_json([answer()]).status == PASSED


@pytest.mark.parametrize(
    "body, evidence",
    [
        ({"classes": CLASSES}, "expected a JSON list of {name, type}"),
        ([], "the list is empty"),
        ([{"name": "face", "type": "box"}], "has type 'box', not one of V7's"),
        ([{"name": "face"}], "needs a string 'type'"),
        ([{"type": "tag"}], "needs a non-empty string 'name'"),
        ([{"name": "face", "type": "tag"}, {"name": "face", "type": "tag"}], "class 'face' is listed twice"),
        (["face"], "is not an object"),
    ],
)
def test_classes_must_be_a_list_of_name_and_known_type(body, evidence):
    result = rule_classes([classes_answer(body)], classes_answer(body))
    assert result.status == FAILED
    assert any(evidence in line for line in result.evidence), result.evidence


def test_classes_lists_every_url_tried_when_none_answered_json():
    tried = [
        Answer("GET /classes", 404, "text/html", NOT_JSON, "<h1>Not Found</h1>"),
        Answer("GET /api/classes", 401, "application/json", {"status": "failed"}, '{"status": "failed"}'),
    ]
    result = rule_classes(tried, None)
    assert result.status == FAILED
    assert result.evidence[0] == "GET /classes: HTTP 404, <h1>Not Found</h1>"
    assert "wants credentials" in result.evidence[-1]
    good = rule_classes([classes_answer()], classes_answer())
    assert good.status == PASSED and "face (bounding_box), person (skeleton), lips (polygon)" in good.evidence[0]


@pytest.mark.parametrize(
    "body, status, evidence",
    [
        ({"results": []}, FAILED, "no 'status' key"),
        ({"status": "ok", "results": []}, FAILED, "status is 'ok'"),
        ({"status": "succeeded", "results": {}}, FAILED, "'results' must be a list"),
        ([{"name": "face"}], FAILED, "must be a JSON object"),
        ({"status": "succeeded"}, WARNING, "no 'results' list"),
        ({"status": "failed", "results": [], "error": "x"}, PASSED, "1 answers had a status"),
    ],
)
def test_status_is_required_and_results_is_a_list(body, status, evidence):
    result = rule_status([answer(body=body)])
    assert result.status == status
    assert evidence in result.evidence[0]


# -- accepting pictures ----------------------------------------------------------------------------


def test_accepts_url_fails_with_the_endpoints_own_error_text_and_a_hint():
    refused = answer(
        body={"status": "failed", "results": [], "error": "image.url host is private"},
        status_code=400,
        mode="url",
        fetched=False,
    )
    result = rule_accepts("url", [refused])
    assert result.status == FAILED
    assert result.evidence[0] == "POST /infer pic.jpg as url: HTTP 400, status 'failed': image.url host is private"
    assert "--allow-private-urls" in result.evidence[1]


def test_accepts_url_fails_when_the_picture_was_never_fetched():
    result = rule_accepts("url", [answer(mode="url", fetched=False)])
    assert result.status == FAILED and "without ever fetching the picture's URL" in result.evidence[0]
    assert rule_accepts("url", [answer(mode="url", fetched=True)]).status == PASSED


def test_accepts_base64_fails_on_a_failed_answer_or_a_succeeded_one_with_an_error_code():
    unauthorized = answer(body={"status": "failed", "results": [], "error": "header X-Key is missing"}, status_code=401)
    result = rule_accepts("base64", [unauthorized])
    assert result.status == FAILED and "header X-Key is missing" in result.evidence[0]
    assert "--auth-header" in result.evidence[1]
    result = rule_accepts("base64", [answer(status_code=500)])
    assert result.status == FAILED and result.evidence[0].endswith("status succeeded but HTTP 500")
    assert rule_accepts("base64", [answer()], sent=False).status == SKIPPED


# -- results ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "result, evidence",
    [
        (box(confidence=1.5), "confidence must be a number from 0 to 1, got 1.5"),
        (box(confidence="0.9"), "confidence must be a number from 0 to 1, got '0.9'"),
        (box(confidence=True), "confidence must be a number from 0 to 1, got True"),
        ({k: v for k, v in box().items() if k != "label"}, "needs a non-empty string 'label'"),
        (box(name=""), "needs a non-empty string 'name'"),
        (box(attributes="left"), "attributes must be a list of strings"),
        (box(text="hello"), 'text must be {"text": "..."}'),
        ("face", "a result must be an object"),
    ],
)
def test_result_fields(result, evidence):
    outcome = rule_result_fields([answer([result])])
    assert outcome.status == FAILED
    assert evidence in outcome.evidence[0]


def test_result_fields_warns_when_name_and_label_differ():
    outcome = rule_result_fields([answer([box(name="Face")])])
    assert outcome.status == WARNING and "name 'Face' differs from label 'face'" in outcome.evidence[0]


def test_one_geometry():
    two = box(polygon={"path": [{"x": 1, "y": 1}, {"x": 5, "y": 1}, {"x": 3, "y": 4}]})
    none = {k: v for k, v in box().items() if k != "bounding_box"}
    outcome = rule_one_geometry([answer([two, none])])
    assert outcome.status == FAILED
    assert outcome.evidence[0].endswith("results[0] (face): has 2 geometries (bounding_box, polygon); V7 needs one")
    assert outcome.evidence[1].endswith("results[1] (face): has 0 geometries (none); V7 needs one")


@pytest.mark.parametrize(
    "result, evidence",
    [
        ({**box(), "bounding_box": {"x": 1, "y": 2, "w": 3}}, "bounding_box needs numbers x, y, w, h; h missing"),
        (box(w=-3), "bounding_box has a negative size: w=-3"),
        ({**lips(), "polygon": {"paths": [[{"x": 1, "y": 1}]]}}, "'paths' (Darwin JSON 2.0's shape)"),
        ({**lips(), "polygon": {"path": [{"x": "1", "y": 1}]}}, "polygon.path[0] is not an {x, y} point"),
        ({**person(), "skeleton": {"nodes": [{"name": "nose", "x": 1, "y": 2}]}}, "needs 'occluded': true or false"),
        ({**person(), "skeleton": [1, 2]}, "skeleton must be an object"),
    ],
)
def test_geometry_shape(result, evidence):
    outcome = rule_geometry_shape([answer([result])])
    assert outcome.status == FAILED
    assert evidence in outcome.evidence[0], outcome.evidence


def test_class_names_must_be_listed_and_are_skipped_without_classes():
    outcome = rule_class_names([answer([box(name="Face", label="Face"), box(name="Face", label="Face")])], CLASS_TYPES)
    assert outcome.status == FAILED
    assert outcome.evidence == (
        "class 'Face' is not in GET /classes (face, lips, person): V7 drops these results; 2 of them, first at "
        "POST /infer pic.jpg as base64: results[0]",
    )
    assert rule_class_names([answer()], None).status == SKIPPED


def test_class_types_must_match_the_declared_type():
    as_box = {"name": "person", "label": "person", "confidence": 0.8, "bounding_box": box()["bounding_box"]}
    outcome = rule_class_types([answer([as_box, box()])], CLASS_TYPES)
    assert outcome.status == FAILED
    assert outcome.evidence == (
        "POST /infer pic.jpg as base64: results[0] (person): GET /classes declares 'person' as skeleton, but the "
        "result carries a bounding_box",
    )


@pytest.mark.parametrize(
    "result, evidence",
    [
        (box(x=190, w=20), "bounding_box bottom-right corner at (210, 60) lies outside the 200x100 image"),
        (box(y=-1), "bounding_box top-left corner at (10, -1) lies outside"),
        (person(x=-5), "skeleton node 'nose' at (-5, 60) lies outside the 200x100 image (and 2 more points)"),
        (lips([(10, 10), (20, 10), (15, 180)]), "polygon path[2] at (15, 180) lies outside"),
    ],
)
def test_inside_image(result, evidence):
    outcome = rule_inside_image([answer([result])])
    assert outcome.status == FAILED
    assert evidence in outcome.evidence[0], outcome.evidence


def test_inside_image_allows_the_border_itself():
    assert rule_inside_image([answer([box(x=0, y=0, w=200, h=100)])]).status == PASSED


@pytest.mark.parametrize(
    "result, evidence",
    [
        (box(w=0), "bounding_box of zero size (w=0, h=40.0): V7 rejects it"),
        (lips([(1, 1), (5, 5), (9, 9)]), "polygon with 3 distinct points and no area"),
        (lips([(1, 1), (5, 5), (1, 1)]), "polygon with 2 distinct points and no area"),
    ],
)
def test_no_zero_size(result, evidence):
    outcome = rule_no_zero_size([answer([result])])
    assert outcome.status == FAILED
    assert evidence in outcome.evidence[0]


def test_skeleton_nodes_are_named_unique_and_the_same_in_every_result():
    unnamed = person()
    del unnamed["skeleton"]["nodes"][1]["name"]
    outcome = rule_skeleton_nodes([answer([unnamed])])
    assert outcome.status == FAILED and "node(s) [1] have no 'name'" in outcome.evidence[0]

    twice = rule_skeleton_nodes([answer([person(("nose", "nose", "chin"))])])
    assert twice.status == FAILED and "node name(s) ['nose'] used twice" in twice.evidence[0]

    differ = rule_skeleton_nodes([answer([person()]), answer([person(("nose", "left_eye", "chin"))])])
    assert differ.status == FAILED
    assert (
        "nodes differ from those of POST /infer pic.jpg as base64: results[0] (person) (missing ['right_eye'], "
        "extra ['chin'])" in differ.evidence[0]
    )

    order = rule_skeleton_nodes([answer([person(), person(tuple(reversed(NODES)))])])
    assert order.status == FAILED and "same names, other order" in order.evidence[0]
    assert rule_skeleton_nodes([answer([person()]), answer([person()])]).evidence == ("2 skeletons: person (3 nodes)",)


def test_within_bbox_only_warns():
    outcome = rule_within_bbox([answer([box(x=150, y=50, w=20, h=20), box()])], (0, 0, 100, 100))
    assert outcome.status == WARNING
    assert outcome.evidence == (
        "POST /infer pic.jpg as base64: results[0] (face): centre (160.0, 60.0) lies outside the bbox "
        "(0, 0, 100, 100): Auto-Annotate wants what is inside the box",
    )
    assert rule_within_bbox([answer()], None).status == SKIPPED


# -- latency, failures, auth -----------------------------------------------------------------------


def test_latency_fails_at_the_limit_warns_from_the_warning_time_and_counts_time_outs():
    def timed(seconds: float) -> Answer:
        return Answer(f"POST /infer ({seconds} s)", 200, latency_s=seconds)

    assert rule_latency([timed(0.2), timed(1.0)]).evidence == ("2 answers: median 0.60 s, slowest 1.00 s",)
    warned = rule_latency([timed(0.2), timed(12.0)])
    assert warned.status == WARNING and warned.evidence[0] == "POST /infer (12.0 s): 12.00 s (warning from 10 s)"
    failed = rule_latency([timed(31.0)])
    assert failed.status == FAILED and failed.evidence[0] == "POST /infer (31.0 s): 31.00 s, at or over the 30 s limit"
    timeout = rule_latency([Answer("POST /infer", None, latency_s=35.0, error="timeout")])
    assert timeout.status == FAILED and "no answer within 35.0 s (V7 gives up at 30 s)" in timeout.evidence[0]
    assert rule_latency([timed(0.3)], limit_s=0.25, warn_s=0.1).status == FAILED


@pytest.mark.parametrize(
    "answer_, status, evidence",
    [
        (probe(NOT_JSON, 500, "text/html"), FAILED, "HTTP 500, body is not JSON"),
        (probe({"error": "no image"}), FAILED, "JSON without 'status'"),
        (probe({"status": "succeeded", "results": []}, 200), WARNING, "answered status succeeded"),
        (Answer("POST /infer junk", None, error="ConnectionError: reset"), FAILED, "no HTTP answer"),
        (probe({"status": "failed", "results": []}), PASSED, "1 bad requests answered with status failed"),
    ],
)
def test_failure_json(answer_, status, evidence):
    outcome = rule_failure_json([answer_])
    assert outcome.status == status
    assert evidence in outcome.evidence[0]


def test_auth_fails_when_a_request_without_credentials_is_served():
    served = answer()
    outcome = rule_auth([("infer", served)], expected=True)
    assert outcome.status == FAILED and "answered HTTP 200 instead of rejecting it (401)" in outcome.evidence[0]
    open_classes = rule_auth([("classes", classes_answer())], expected=True)
    assert open_classes.status == WARNING
    assert rule_auth([("infer", probe({"status": "failed"}, 401))], expected=True).status == PASSED
    assert rule_auth([], expected=False).status == SKIPPED


# -- one fault, one rule ---------------------------------------------------------------------------


def _with(index: int, change) -> list:
    results = [box(), person(), lips()]
    results[index] = change(copy.deepcopy(results[index]))
    return results


FAULTS = {
    "result-fields": _with(0, lambda r: {**r, "confidence": 2}),
    "one-geometry": _with(0, lambda r: {k: v for k, v in r.items() if k != "bounding_box"}),
    "geometry-shape": _with(0, lambda r: {**r, "bounding_box": {"x": 1, "y": 1, "w": -1, "h": 2}}),
    "class-names": _with(0, lambda r: {**r, "name": "head", "label": "head"}),
    "class-types": _with(
        2, lambda r: {**{k: v for k, v in r.items() if k != "polygon"}, "bounding_box": box()["bounding_box"]}
    ),
    "inside-image": _with(0, lambda r: {**r, "bounding_box": {"x": 180, "y": 1, "w": 40, "h": 2}}),
    "no-zero-size": _with(0, lambda r: {**r, "bounding_box": {"x": 1, "y": 1, "w": 0, "h": 2}}),
    "skeleton-nodes": _with(1, lambda r: {**r, "skeleton": {"nodes": [{"x": 1, "y": 1, "occluded": False}]}}),
}


@pytest.mark.parametrize("rule", list(FAULTS))
def test_each_fault_fails_exactly_one_rule(rule):
    seen = Observations(
        classes_tried=(classes_answer(),),
        classes_answer=classes_answer(),
        inferences=(answer(FAULTS[rule]),),
        modes=("base64",),
    )
    failed = {r.rule for r in evaluate(seen) if r.status in (FAILED, WARNING)}
    assert failed == {rule}
