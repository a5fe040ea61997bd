"""A one-click self-check: send V7-style requests to an endpoint and judge each rule of V7's contract.

It calls the endpoint over HTTP exactly as V7 would (base64 and presigned-style URL pictures, the
Auto-Annotate box at the top level and under "data", the whole-picture box of Ctrl/Cmd+Enter, broken
requests) and reports each rule as passed, failed or skipped, with the reason. The judging functions
are pure, so each rule is unit-tested on hand-made answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from playground.client import V7_DEADLINE_S, Call, EndpointClient, build_infer_request
from playground.picture_server import PictureServer

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
#: Annotation types V7 knows (GET /classes may list any of them).
V7_TYPES = ("bounding_box", "polygon", "keypoint", "line", "skeleton", "tag", "ellipse", "cuboid", "directional_vector")

RULE_CLASSES_SHAPE = "GET /classes answers a JSON array of {name, type}"
RULE_CLASSES_VALUES = "class names are unique and types are V7 annotation types"
RULE_NAMES = "every result has name and label (equal), naming a class that /classes lists"
RULE_CONFIDENCE = "confidence is a number from 0 to 1"
RULE_GEOMETRY = "exactly one geometry per result, of the type /classes gives its class"
RULE_SKELETON = "skeleton nodes have name, x, y ≥ 0 and occluded (true/false), named as the class's nodes"
RULE_INSIDE = "coordinates are inside the image"
RULE_ZERO_SIZE = "no zero-size boxes (V7 rejects them)"
RULE_DEADLINE = f"every answer comes within {V7_DEADLINE_S:g} s (V7's limit)"
RULE_SAME_RESULTS = "image.url and image.base64 of the same picture give the same results"
RULE_AUTH = "calls without credentials are refused with 401 and a JSON body"
RESULT_RULES = (RULE_NAMES, RULE_CONFIDENCE, RULE_GEOMETRY, RULE_SKELETON, RULE_INSIDE, RULE_ZERO_SIZE)
#: How many problems a failed rule lists.
MAX_DETAILS = 3


@dataclass(frozen=True)
class Check:
    rule: str
    outcome: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == PASSED


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_classes_answer(call: Call) -> tuple[list[Check], dict[str, str]]:
    """Judge GET /classes; returns the checks and the classes (name -> type) to judge results against."""
    body = call.body
    if call.status_code != 200 or not isinstance(body, list):
        reason = call.error or f"HTTP {call.status_code}, got {type(body).__name__}"
        return [Check(RULE_CLASSES_SHAPE, FAILED, reason), Check(RULE_CLASSES_VALUES, SKIPPED, "no class list")], {}
    malformed = [
        c
        for c in body
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(c.get("type"), str)
    ]
    if malformed:
        return [
            Check(RULE_CLASSES_SHAPE, FAILED, f"entries without a string name and type: {malformed[:MAX_DETAILS]}"),
            Check(RULE_CLASSES_VALUES, SKIPPED, "no usable class list"),
        ], {}
    checks = [Check(RULE_CLASSES_SHAPE, PASSED, f"{len(body)} classes")]
    names = [c["name"] for c in body]
    problems = [f"{n!r} is listed {names.count(n)} times" for n in dict.fromkeys(names) if names.count(n) > 1]
    problems += [f"{c['name']!r} has type {c['type']!r}" for c in body if c["type"] not in V7_TYPES]
    problems += ["a class has an empty name" for c in body if not c["name"].strip()][:1]
    if not body:
        problems.append("the list is empty: V7 would have no class to map")
    checks.append(Check(RULE_CLASSES_VALUES, FAILED if problems else PASSED, "; ".join(problems[:MAX_DETAILS])))
    return checks, {c["name"]: c["type"] for c in body}


def _inside(x: Any, y: Any, resolution_wh: tuple[int, int], tolerance: float = 0.01) -> bool:
    return -tolerance <= x <= resolution_wh[0] + tolerance and -tolerance <= y <= resolution_wh[1] + tolerance


def result_problems(
    result: Any,
    classes: Mapping[str, str],
    skeleton_nodes: Mapping[str, Sequence[str]],
    resolution_wh: tuple[int, int],
) -> dict[str, list[str]]:
    """Problems of one result, by rule (rules with no problem are absent)."""
    problems: dict[str, list[str]] = {}

    def add(rule: str, text: str) -> None:
        problems.setdefault(rule, []).append(text)

    if not isinstance(result, dict):
        add(RULE_NAMES, f"a result is {type(result).__name__}, not an object")
        return problems
    name, label = result.get("name"), result.get("label")
    who = str(label if label is not None else name)
    if not isinstance(name, str) or not isinstance(label, str):
        add(RULE_NAMES, f"{who}: name and label are both required strings")
    elif name != label:
        add(RULE_NAMES, f"name {name!r} differs from label {label!r}")
    if isinstance(label or name, str) and (label or name) not in classes:
        add(RULE_NAMES, f"{who}: not a class /classes lists (V7 drops it)")
    confidence = result.get("confidence")
    if not _number(confidence) or not 0 <= confidence <= 1:
        add(RULE_CONFIDENCE, f"{who}: confidence {confidence!r}")
    geometries = [k for k in V7_TYPES if k in result]
    if len(geometries) != 1:
        add(RULE_GEOMETRY, f"{who}: {len(geometries)} geometries {geometries}")
        return problems
    geometry, value = geometries[0], result[geometries[0]]
    declared = classes.get(label or name) if isinstance(label or name, str) else None
    if declared is not None and declared != geometry:
        add(RULE_GEOMETRY, f"{who}: /classes says {declared}, the result has {geometry}")
    points: list[Any] = []
    if geometry == "bounding_box":
        if not isinstance(value, dict) or not all(_number(value.get(k)) for k in "xywh"):
            add(RULE_GEOMETRY, f"{who}: bounding_box needs numbers x, y, w, h")
            return problems
        if value["w"] <= 0 or value["h"] <= 0:
            add(RULE_ZERO_SIZE, f"{who}: w={value['w']}, h={value['h']}")
        points = [value, {"x": value["x"] + value["w"], "y": value["y"] + value["h"]}]
    elif geometry in ("polygon", "line"):
        path = value.get("path") if isinstance(value, dict) else None
        if not isinstance(path, list) or len(path) < (3 if geometry == "polygon" else 2):
            add(RULE_GEOMETRY, f"{who}: {geometry} needs a 'path' list of points")
            return problems
        points = path
    elif geometry == "keypoint":
        points = [value]
    elif geometry == "skeleton":
        nodes = value.get("nodes") if isinstance(value, dict) else None
        if not isinstance(nodes, list):
            add(RULE_SKELETON, f"{who}: skeleton needs a 'nodes' list")
            return problems
        for node in nodes:
            if (
                not isinstance(node, dict)
                or not isinstance(node.get("name"), str)
                or not isinstance(node.get("occluded"), bool)
                or not _number(node.get("x"))
                or not _number(node.get("y"))
                or node["x"] < 0
                or node["y"] < 0
            ):
                add(RULE_SKELETON, f"{who}: node {node!r}")
                return problems
        expected = list(skeleton_nodes.get(label or name, ()))
        names = [n["name"] for n in nodes]
        if expected and sorted(names) != sorted(expected):
            missing = sorted(set(expected) - set(names))
            extra = sorted(set(names) - set(expected))
            add(RULE_SKELETON, f"{who}: node names differ from the class's (missing {missing}, extra {extra})")
        points = nodes
    for point in points:
        if not isinstance(point, dict) or not _number(point.get("x")) or not _number(point.get("y")):
            add(RULE_GEOMETRY, f"{who}: {geometry} has a point without numeric x and y")
            break
        if not _inside(point["x"], point["y"], resolution_wh):
            width, height = resolution_wh
            add(RULE_INSIDE, f"{who}: ({point['x']}, {point['y']}) is outside the {width}x{height} image")
            break
    return problems


def check_answer(label: str, call: Call) -> Check:
    """One V7-style request: answered HTTP 200 with JSON and status "succeeded"."""
    rule = f"{label}: HTTP 200, JSON, status succeeded"
    body = call.body
    if (
        call.status_code == 200
        and isinstance(body, dict)
        and body.get("status") == "succeeded"
        and isinstance(body.get("results"), list)
    ):
        return Check(rule, PASSED, f"{len(body['results'])} results in {call.elapsed_ms:.0f} ms")
    if call.status_code == 200 and isinstance(body, dict):
        return Check(rule, FAILED, f"status {body.get('status')!r}, results {type(body.get('results')).__name__}")
    return Check(rule, FAILED, call.error or f"HTTP {call.status_code}")


def check_results(
    answers: Sequence[Call],
    classes: Mapping[str, str],
    skeleton_nodes: Mapping[str, Sequence[str]],
    resolution_wh: tuple[int, int],
) -> list[Check]:
    """The result rules over every successful answer, one Check per rule."""
    found: dict[str, list[str]] = {rule: [] for rule in RESULT_RULES}
    count = 0
    for call in answers:
        if call.status_code != 200 or not isinstance(call.body, dict) or not isinstance(call.body.get("results"), list):
            continue
        for result in call.body["results"]:
            count += 1
            for rule, texts in result_problems(result, classes, skeleton_nodes, resolution_wh).items():
                found[rule].extend(texts)
    checks = []
    for rule in RESULT_RULES:
        if count == 0:
            checks.append(
                Check(rule, SKIPPED, "no results to check: pick a picture and box where the model finds something")
            )
        elif found[rule]:
            more = f" (+{len(found[rule]) - MAX_DETAILS} more)" if len(found[rule]) > MAX_DETAILS else ""
            checks.append(Check(rule, FAILED, "; ".join(found[rule][:MAX_DETAILS]) + more))
        else:
            checks.append(Check(rule, PASSED, f"{count} results checked"))
    return checks


def check_deadline(answers: Sequence[Call]) -> Check:
    timed = [c for c in answers if c.status_code is not None]
    if not timed:
        return Check(RULE_DEADLINE, SKIPPED, "no answer came")
    slowest = max(c.elapsed_ms for c in timed)
    outcome = PASSED if slowest <= V7_DEADLINE_S * 1000 else FAILED
    return Check(RULE_DEADLINE, outcome, f"slowest {slowest:.0f} ms")


def check_failure_answer(label: str, call: Call, expected_status: range = range(400, 500)) -> Check:
    """A bad request must get a JSON failure V7 can read: {"status": "failed", "results": []} and 4xx."""
    rule = f"{label} gets a JSON failure (4xx, status failed, results [])"
    body = call.body
    if call.status_code is None:
        return Check(rule, FAILED, call.error or "no answer")
    if not isinstance(body, dict):
        return Check(rule, FAILED, f"HTTP {call.status_code} with a non-JSON body ({call.content_type or 'no type'})")
    if body.get("status") != "failed" or body.get("results") != []:
        return Check(
            rule, FAILED, f"HTTP {call.status_code}, status {body.get('status')!r}, results {body.get('results')!r}"
        )
    if call.status_code not in expected_status:
        return Check(
            rule, FAILED, f"HTTP {call.status_code} (expected {expected_status.start}..{expected_status.stop - 1})"
        )
    message = body.get("error") or body.get("message")
    return Check(rule, PASSED, f"HTTP {call.status_code}: {message}" if message else f"HTTP {call.status_code}")


def same_results(a: Call, b: Call, tolerance_px: float = 1.0) -> Check:
    """URL and base64 requests for one picture and box should agree (same classes, positions within 1 px)."""

    def summary(call: Call) -> list[tuple[str, list[float]]]:
        out = []
        for r in call.body["results"]:
            numbers: list[float] = []
            for key in V7_TYPES:
                value = r.get(key)
                if isinstance(value, dict):
                    if key == "bounding_box" or key == "keypoint":
                        numbers += [float(value.get(k, 0)) for k in ("x", "y", "w", "h") if k in value]
                    for p in value.get("path", value.get("nodes", [])) or []:
                        numbers += [float(p.get("x", 0)), float(p.get("y", 0))]
            out.append((str(r.get("label")), numbers))
        return sorted(out, key=lambda item: (item[0], item[1][:2]))

    ok = [
        c
        for c in (a, b)
        if c.status_code == 200 and isinstance(c.body, dict) and isinstance(c.body.get("results"), list)
    ]
    if len(ok) < 2:
        return Check(RULE_SAME_RESULTS, SKIPPED, "one of the two requests failed (see above)")
    first, second = summary(a), summary(b)
    if [n for n, _ in first] != [n for n, _ in second]:
        return Check(RULE_SAME_RESULTS, FAILED, f"classes differ: {[n for n, _ in first]} vs {[n for n, _ in second]}")
    for (name, xs), (_, ys) in zip(first, second, strict=True):
        if len(xs) != len(ys) or any(abs(x - y) > tolerance_px for x, y in zip(xs, ys, strict=False)):
            return Check(RULE_SAME_RESULTS, FAILED, f"{name}: positions differ by more than {tolerance_px:g} px")
    return Check(RULE_SAME_RESULTS, PASSED, f"{len(first)} results agree")


def _is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def run_self_check(
    client: EndpointClient,
    *,
    picture_bytes: bytes,
    resolution_wh: tuple[int, int],
    box_xywh: tuple[float, float, float, float],
    threshold: float = 0.5,
    model: str | None = None,
    skeleton_nodes: Mapping[str, Sequence[str]] | None = None,
    serve_url: bool | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Check]:
    """Send V7-style requests to `client`'s endpoint and judge each rule.

    `serve_url` (default: when the endpoint is on this machine) serves the picture from a local port
    and sends it as a presigned-style `image.url`; a remote endpoint could not fetch it, so that
    request is then skipped. `skeleton_nodes` (class -> node names, from GET /models when the
    endpoint is this project's server) lets skeleton node names be checked too.
    """
    say = progress or (lambda _text: None)
    skeleton_nodes = skeleton_nodes or {}
    checks: list[Check] = []

    say("GET /classes")
    class_checks, classes = check_classes_answer(client.call("GET", client.classes_path(model)))
    checks += class_checks

    answers: list[Call] = []
    requests_to_send = [
        ("image.base64 + bbox", build_infer_request(image_bytes=picture_bytes, box_xywh=box_xywh, threshold=threshold)),
        (
            "bbox and threshold under data",
            build_infer_request(image_bytes=picture_bytes, box_xywh=box_xywh, threshold=threshold, placement="data"),
        ),
        (
            "whole-picture box (Ctrl/Cmd+Enter)",
            build_infer_request(image_bytes=picture_bytes, box_xywh=(0, 0, *resolution_wh), threshold=threshold),
        ),
    ]
    base64_call = None
    for label, body in requests_to_send:
        say(f"POST {label}")
        call = client.infer(body, model)
        base64_call = base64_call or call
        answers.append(call)
        checks.append(check_answer(label, call))

    serve_url = _is_loopback_url(client.base_url) if serve_url is None else serve_url
    url_label = "image.url (presigned-style) + bbox"
    if serve_url:
        say(f"POST {url_label}")
        with PictureServer() as pictures:
            url = pictures.add(picture_bytes, "picture")
            url_call = client.infer(build_infer_request(image_url=url, box_xywh=box_xywh, threshold=threshold), model)
        answers.append(url_call)
        check = check_answer(url_label, url_call)
        if not check.passed and url_call.status_code == 400 and "allow-private-urls" in (url_call.error or ""):
            check = Check(
                check.rule,
                SKIPPED,
                "the endpoint refuses local URLs: start it with --allow-private-urls "
                "to check this here (V7's presigned URLs are public)",
            )
        checks.append(check)
        checks.append(
            same_results(base64_call, url_call)
            if check.outcome != SKIPPED
            else Check(RULE_SAME_RESULTS, SKIPPED, "no URL answer")
        )
    else:
        checks.append(
            Check(
                f"{url_label}: HTTP 200, JSON, status succeeded",
                SKIPPED,
                "the endpoint is not on this machine, so it cannot fetch a picture served from here",
            )
        )
        checks.append(Check(RULE_SAME_RESULTS, SKIPPED, "no URL answer"))

    checks += check_results(answers, classes, skeleton_nodes, resolution_wh)
    checks.append(check_deadline(answers))

    say("POST broken requests")
    checks.append(check_failure_answer("a request without an image", client.infer({"threshold": threshold}, model)))
    checks.append(
        check_failure_answer(
            "a picture that is not an image", client.infer({"image": {"base64": "aGVsbG8gd29ybGQ="}}, model)
        )
    )
    checks.append(
        check_failure_answer(
            "a body that is not JSON",
            client.call("POST", client.infer_path(model), raw_body=b"{not json", content_type="application/json"),
        )
    )
    if client.credentials.headers():
        say("POST without credentials")
        call = client.infer(requests_to_send[0][1], model, with_auth=False)
        check = check_failure_answer("a call without credentials", call, range(401, 402))
        checks.append(Check(RULE_AUTH, check.outcome, check.detail))
    else:
        checks.append(
            Check(
                RULE_AUTH,
                SKIPPED,
                "no credentials are set here: an endpoint reachable from the internet "
                "should require Basic auth or a secret header",
            )
        )
    return checks


def summary(checks: Sequence[Check]) -> dict[str, int]:
    return {outcome: sum(1 for c in checks if c.outcome == outcome) for outcome in (PASSED, FAILED, SKIPPED)}
