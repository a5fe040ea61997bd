"""V7's BYOM contract as rules: pure functions over the answers an endpoint gave.

`python run.py check` makes the HTTP requests (tools/check.py) and hands what came back to the
functions here; each one returns a `RuleResult` (passed / failed / warning / skipped, with the
evidence). Each fault is reported by exactly one rule: a result with no geometry fails
"one-geometry" and is then left alone by the rules about geometry, an answer that is not JSON
fails "json" and is then not looked into, and so on. So a report points at the cause, not at
its echoes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

PASSED, WARNING, FAILED, SKIPPED = "passed", "warning", "failed", "skipped"
#: Worst first: a rule's status is the worst of its findings.
_SEVERITY = {FAILED: 3, WARNING: 2, PASSED: 1, SKIPPED: 0}

#: Annotation types V7 knows for a class (`GET /classes`), which are also the result's geometry keys.
KNOWN_TYPES = (
    "bounding_box",
    "polygon",
    "keypoint",
    "line",
    "skeleton",
    "tag",
    "ellipse",
    "cuboid",
    "directional_vector",
)
#: V7 gives the whole inference 30 s; from 10 s on an endpoint is close enough to it to worry.
LATENCY_LIMIT_S = 30.0
LATENCY_WARN_S = 10.0
#: Coordinates may exceed the image by this much (rounding), in pixels.
INSIDE_TOLERANCE_PX = 0.01
#: Evidence lines kept per rule (the count of the rest is reported).
MAX_EVIDENCE = 20

RULE_TITLES: dict[str, str] = {
    "reachable": "the endpoint answers over HTTP",
    "json": "JSON in, JSON out: answers are JSON (Content-Type application/json)",
    "classes": "GET /classes is a list of {name, type} with known types",
    "status": "every answer has status succeeded|failed (and results as a list)",
    "accepts-base64": "a picture sent as image.base64 is answered succeeded",
    "accepts-url": "a picture sent as image.url (presigned-style) is fetched and answered succeeded",
    "result-fields": "every result has name, label (equal) and confidence from 0 to 1",
    "one-geometry": "every result has exactly one geometry",
    "geometry-shape": "each geometry has V7's shape (numbers, point paths, skeleton occluded flags)",
    "class-names": "result names are classes GET /classes lists",
    "class-types": "each result's geometry is the type GET /classes declares for its class",
    "inside-image": "coordinates lie inside the image (absolute pixels, origin top-left)",
    "no-zero-size": "no zero-size boxes, flat polygons or one-point lines",
    "skeleton-nodes": "skeleton nodes are named, and named alike in every result of a class",
    "within-bbox": "results lie inside the Auto-Annotate bbox that was sent",
    "latency": "answers come well under V7's 30 s limit",
    "failure-json": "a failure is still answered as JSON with status failed",
    "auth": "requests without valid credentials are rejected (401/403)",
}


class _NotJson:
    def __repr__(self) -> str:
        return "NOT_JSON"


#: `Answer.body` when the answer's body did not parse as JSON.
NOT_JSON: Any = _NotJson()


@dataclass(frozen=True)
class Answer:
    """One request the checker made and what came back, as the rules see it."""

    #: Says which request this was, e.g. "POST /infer astronaut.jpg as base64".
    where: str
    #: None when no HTTP answer came (see `error`).
    status_code: int | None
    content_type: str = ""
    body: Any = NOT_JSON
    #: The start of the raw body, for evidence.
    text: str = ""
    latency_s: float = 0.0
    #: Why there was no HTTP answer: "timeout" or "ConnectionError: ...".
    error: str | None = None
    #: Size of the picture sent (as a viewer shows it, EXIF orientation applied).
    image_wh: tuple[int, int] | None = None
    #: How the picture was sent: "base64" or "url".
    mode: str | None = None
    #: For "url" answers: whether the endpoint fetched the picture from the checker.
    fetched: bool | None = None

    @property
    def is_json(self) -> bool:
        return self.body is not NOT_JSON


@dataclass(frozen=True)
class RuleResult:
    rule: str
    status: str
    evidence: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return RULE_TITLES[self.rule]

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "title": self.title, "status": self.status, "evidence": list(self.evidence)}


@dataclass
class _Findings:
    """Collects what one rule saw; `result()` turns it into the rule's verdict."""

    rule: str
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: int = 0

    def fail(self, line: str) -> None:
        self.failures.append(line)

    def warn(self, line: str) -> None:
        self.warnings.append(line)

    def result(self, passed_note: str, nothing_note: str | None = None) -> RuleResult:
        if self.failures:
            return RuleResult(self.rule, FAILED, _capped(self.failures + self.warnings))
        if self.warnings:
            return RuleResult(self.rule, WARNING, _capped(self.warnings))
        if self.checked == 0 and nothing_note is not None:
            return RuleResult(self.rule, SKIPPED, (nothing_note,))
        return RuleResult(self.rule, PASSED, (passed_note,))


def _capped(lines: list[str]) -> tuple[str, ...]:
    if len(lines) <= MAX_EVIDENCE:
        return tuple(lines)
    return (*lines[:MAX_EVIDENCE], f"... and {len(lines) - MAX_EVIDENCE} more")


def worst_status(results: Iterable[RuleResult]) -> str:
    return max((r.status for r in results), key=_SEVERITY.__getitem__, default=PASSED)


# -- small helpers over parsed JSON ---------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_point(value: Any) -> bool:
    return isinstance(value, dict) and _is_number(value.get("x")) and _is_number(value.get("y"))


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: Any, limit: int = 160) -> str:
    """A value as JSON-ish evidence: strings quoted, so that '0.9' and 0.9 look different."""
    return _short(repr(value), limit)


def _body_start(answer: Answer) -> str:
    return _short(answer.text, 120) if answer.text else "(empty body)"


def failure_text(answer: Answer) -> str:
    """What the endpoint said went wrong: its `error`/`message`, else the start of the body."""
    if isinstance(answer.body, dict):
        for key in ("error", "message", "detail"):
            if isinstance(answer.body.get(key), str):
                return _short(answer.body[key], 300)
    return _body_start(answer)


def result_label(result: Any) -> str | None:
    """The class a result claims: `label`, else `name` (as V7 matches them)."""
    if not isinstance(result, dict):
        return None
    for key in ("label", "name"):
        if isinstance(result.get(key), str) and result[key]:
            return result[key]
    return None


def geometry_keys(result: dict[str, Any]) -> list[str]:
    return [key for key in KNOWN_TYPES if key in result]


def _results(answers: Sequence[Answer]) -> Iterator[tuple[Answer, int, Any]]:
    """(answer, index, result) for every result of every answer that has a results list."""
    for answer in answers:
        if isinstance(answer.body, dict) and isinstance(answer.body.get("results"), list):
            for index, result in enumerate(answer.body["results"]):
                yield answer, index, result


def _where(answer: Answer, index: int, result: Any) -> str:
    label = result_label(result)
    return f"{answer.where}: results[{index}]" + (f" ({label})" if label else "")


def _single_geometry(result: Any) -> str | None:
    if not isinstance(result, dict):
        return None
    keys = geometry_keys(result)
    return keys[0] if len(keys) == 1 else None


def _shape_problems(geometry: str, value: Any) -> list[str]:
    """How `value` breaks V7's schema for `geometry` (types only; ranges have their own rules)."""

    def points(path: Any, what: str) -> list[str]:
        if not isinstance(path, list):
            return [f"{what} must be a list of {{x, y}} points, got {_show(path, 60)}"]
        bad = [i for i, p in enumerate(path) if not _is_point(p)]
        return [f"{what}[{bad[0]}] is not an {{x, y}} point of numbers: {_show(path[bad[0]], 60)}"] if bad else []

    if not isinstance(value, dict):
        return [f"{geometry} must be an object, got {_show(value, 60)}"]
    if geometry == "bounding_box":
        missing = [k for k in "xywh" if not _is_number(value.get(k))]
        if missing:
            return [f"bounding_box needs numbers x, y, w, h; {', '.join(missing)} missing or not a number"]
        if value["w"] < 0 or value["h"] < 0:
            return [f"bounding_box has a negative size: w={value['w']}, h={value['h']}"]
        return []
    if geometry in ("polygon", "line"):
        if "path" not in value and "paths" in value:
            return [f"{geometry} has 'paths' (Darwin JSON 2.0's shape); BYOM answers use one ring: 'path'"]
        return points(value.get("path"), f"{geometry}.path")
    if geometry == "keypoint":
        return [] if _is_point(value) else [f"keypoint needs numbers x and y, got {_show(value, 60)}"]
    if geometry == "skeleton":
        nodes = value.get("nodes")
        if not isinstance(nodes, list):
            return [f"skeleton needs 'nodes': a list, got {_show(nodes, 60)}"]
        for i, node in enumerate(nodes):
            if not _is_point(node):
                return [f"skeleton.nodes[{i}] needs numbers x and y, got {_show(node, 80)}"]
            if not isinstance(node.get("occluded"), bool):
                return [f"skeleton.nodes[{i}] needs 'occluded': true or false, got {_show(node.get('occluded'))}"]
        return []
    if geometry == "tag":
        return []
    if geometry == "ellipse":
        ok = _is_point(value.get("center")) and _is_point(value.get("radius")) and _is_number(value.get("angle"))
        return [] if ok else [f"ellipse needs center {{x, y}}, radius {{x, y}} and a number angle, got {_show(value)}"]
    if geometry == "cuboid":
        bad = [k for k in ("front", "back") if _shape_problems("bounding_box", value.get(k))]
        return [f"cuboid needs front and back boxes {{x, y, w, h}}; bad: {', '.join(bad)}"] if bad else []
    if geometry == "directional_vector":
        ok = _is_number(value.get("angle")) and _is_number(value.get("length"))
        return [] if ok else [f"directional_vector needs numbers angle and length, got {_show(value)}"]
    return [f"unknown geometry {geometry}"]


def _well_formed(result: Any) -> tuple[str, Any] | None:
    """(geometry, value) of a result with one geometry of V7's shape; None for the rest."""
    geometry = _single_geometry(result)
    if geometry is None or _shape_problems(geometry, result[geometry]):
        return None
    return geometry, result[geometry]


def geometry_points(geometry: str, value: dict[str, Any]) -> list[tuple[str, float, float]]:
    """Every (what, x, y) a well-formed geometry puts on the image."""
    if geometry == "bounding_box":
        x, y, w, h = (value[k] for k in "xywh")
        return [("top-left corner", x, y), ("bottom-right corner", x + w, y + h)]
    if geometry in ("polygon", "line"):
        return [(f"path[{i}]", p["x"], p["y"]) for i, p in enumerate(value["path"])]
    if geometry == "keypoint":
        return [("point", value["x"], value["y"])]
    if geometry == "skeleton":
        return [(f"node {n.get('name', i)!r}", n["x"], n["y"]) for i, n in enumerate(value["nodes"])]
    if geometry == "ellipse":
        return [("center", value["center"]["x"], value["center"]["y"])]
    if geometry == "cuboid":
        return [
            (f"{face} {corner}", x, y)
            for face in ("front", "back")
            for corner, x, y in geometry_points("bounding_box", value[face])
        ]
    return []


def _center(geometry: str, value: dict[str, Any]) -> tuple[float, float] | None:
    if geometry == "bounding_box":
        return value["x"] + value["w"] / 2, value["y"] + value["h"] / 2
    points = geometry_points(geometry, value)
    if geometry == "skeleton":
        visible = [p for p, node in zip(points, value["nodes"], strict=True) if not node["occluded"]]
        points = visible or points
    if not points:
        return None
    return sum(p[1] for p in points) / len(points), sum(p[2] for p in points) / len(points)


def _polygon_area(path: list[dict[str, float]]) -> float:
    n = len(path)
    return abs(sum(path[i]["x"] * path[(i + 1) % n]["y"] - path[(i + 1) % n]["x"] * path[i]["y"] for i in range(n))) / 2


def usable_classes(classes_body: Any) -> dict[str, str] | None:
    """{name: type} from a /classes answer, or None when it is not a list of {name, type}."""
    if not isinstance(classes_body, list):
        return None
    found = {}
    for entry in classes_body:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("type"), str):
            found.setdefault(entry["name"], entry["type"])
    return found or None


# -- the rules -----------------------------------------------------------------------------------


def rule_reachable(answers: Sequence[Answer]) -> RuleResult:
    """Every classes and inference request got an HTTP answer (time-outs are the latency rule's business;
    bad requests and auth probes that break the connection are reported by their own rules)."""
    findings = _Findings("reachable")
    for answer in answers:
        findings.checked += 1
        if answer.status_code is None and answer.error != "timeout":
            findings.fail(f"{answer.where}: no HTTP answer ({answer.error})")
    return findings.result(f"{findings.checked} requests answered")


def rule_json(answers: Sequence[Answer]) -> RuleResult:
    """The classes and inference answers parse as JSON and say so in their Content-Type."""
    findings = _Findings("json")
    for answer in answers:
        if answer.status_code is None:
            continue
        findings.checked += 1
        content_type = answer.content_type.split(";")[0].strip().lower()
        is_json_type = content_type == "application/json" or content_type.endswith("+json")
        if not answer.is_json:
            findings.fail(
                f"{answer.where}: HTTP {answer.status_code}, Content-Type {content_type or 'none'}, "
                f"body is not JSON: {_body_start(answer)}"
            )
        elif not is_json_type:
            findings.warn(f"{answer.where}: the body is JSON but Content-Type is {content_type or 'missing'}")
    return findings.result(f"{findings.checked} answers were JSON", "no answer to look at")


def rule_classes(tried: Sequence[Answer], chosen: Answer | None) -> RuleResult:
    """The classes answer (the first URL that gave HTTP 200 with JSON) is a non-empty list of {name, type}."""
    findings = _Findings("classes")
    if chosen is None:
        for answer in tried:
            if answer.status_code is None:
                findings.fail(f"{answer.where}: no HTTP answer ({answer.error})")
            else:
                findings.fail(f"{answer.where}: HTTP {answer.status_code}, {_body_start(answer)}")
        if any(answer.status_code in (401, 403) for answer in tried):
            findings.fail(CREDENTIALS_HINT)
        if not tried:
            findings.fail("no classes URL was asked")
        return findings.result("")
    findings.checked = 1
    body = chosen.body
    if not isinstance(body, list):
        findings.fail(f"{chosen.where}: expected a JSON list of {{name, type}}, got {_show(body)}")
        return findings.result("")
    if not body:
        findings.fail(f"{chosen.where}: the list is empty: V7 would have no class to map results to")
    seen: set[str] = set()
    for i, entry in enumerate(body):
        if not isinstance(entry, dict):
            findings.fail(f"{chosen.where}: [{i}] is not an object: {_show(entry)}")
            continue
        name, kind = entry.get("name"), entry.get("type")
        if not isinstance(name, str) or not name.strip():
            findings.fail(f"{chosen.where}: [{i}] needs a non-empty string 'name', got {_show(name)}")
        elif name in seen:
            findings.fail(f"{chosen.where}: class {name!r} is listed twice")
        else:
            seen.add(name)
        if not isinstance(kind, str):
            findings.fail(f"{chosen.where}: [{i}] ({name}) needs a string 'type', got {_show(kind)}")
        elif kind not in KNOWN_TYPES:
            findings.fail(f"{chosen.where}: [{i}] ({name}) has type {kind!r}, not one of V7's {', '.join(KNOWN_TYPES)}")
    listing = ", ".join(f"{e.get('name')} ({e.get('type')})" for e in body if isinstance(e, dict) and "name" in e)
    return findings.result(f"{chosen.where}: {len(body)} classes: {_short(listing, 300)}")


def rule_status(answers: Sequence[Answer]) -> RuleResult:
    """Each JSON inference answer is an object with status succeeded|failed and, if any, a results list."""
    findings = _Findings("status")
    for answer in answers:
        if not answer.is_json:
            continue
        findings.checked += 1
        body = answer.body
        if not isinstance(body, dict):
            findings.fail(f"{answer.where}: the answer must be a JSON object, got {_show(body)}")
            continue
        status = body.get("status")
        if "status" not in body:
            findings.fail(f"{answer.where}: no 'status' key (keys: {', '.join(map(str, body)) or 'none'})")
        elif status not in ("succeeded", "failed"):
            findings.fail(f"{answer.where}: status is {status!r}, not 'succeeded' or 'failed'")
        if "results" in body and not isinstance(body["results"], list):
            findings.fail(f"{answer.where}: 'results' must be a list, got {_show(body['results'])}")
        elif status == "succeeded" and "results" not in body:
            findings.warn(f"{answer.where}: status succeeded but no 'results' list")
    return findings.result(f"{findings.checked} answers had a status", "no JSON answer to look at")


CREDENTIALS_HINT = "hint: the endpoint wants credentials: --basic-auth, or --auth-header with --auth-secret"
URL_HINT = (
    "hint: the checker serves its pictures from this machine (127.0.0.1): an endpoint that refuses local "
    "addresses must allow them for this check (byom-playground: serve --allow-private-urls), or check with "
    "--send base64"
)


def rule_accepts(mode: str, answers: Sequence[Answer], sent: bool = True) -> RuleResult:
    """Pictures sent this way (`mode` "base64" or "url") are answered succeeded with a 2xx code.

    Answers that are not JSON or have no status are left to the json and status rules.
    """
    rule = f"accepts-{mode}"
    findings = _Findings(rule)
    if not sent:
        return RuleResult(rule, SKIPPED, (f"no picture was sent as image.{mode} (see --send)",))
    hints: list[str] = []
    for answer in answers:
        if answer.mode != mode or not isinstance(answer.body, dict) or answer.body.get("status") is None:
            continue
        findings.checked += 1
        status, code = answer.body["status"], answer.status_code
        if status != "succeeded":
            findings.fail(f"{answer.where}: HTTP {code}, status {status!r}: {failure_text(answer)}")
            hints.append(CREDENTIALS_HINT if code in (401, 403) else URL_HINT if mode == "url" else "")
        elif code is None or not 200 <= code < 300:
            findings.fail(f"{answer.where}: status succeeded but HTTP {code}")
        elif mode == "url" and answer.fetched is False:
            findings.fail(f"{answer.where}: answered succeeded without ever fetching the picture's URL")
    findings.failures.extend(hint for hint in dict.fromkeys(hints) if hint)
    return findings.result(
        f"{findings.checked} pictures sent as image.{mode} answered succeeded", "no answer with a status to look at"
    )


def rule_result_fields(answers: Sequence[Answer]) -> RuleResult:
    findings = _Findings("result-fields")
    for answer, index, result in _results(answers):
        findings.checked += 1
        where = _where(answer, index, result)
        if not isinstance(result, dict):
            findings.fail(f"{where}: a result must be an object, got {_show(result)}")
            continue
        for key in ("name", "label"):
            if not isinstance(result.get(key), str) or not result[key]:
                findings.fail(f"{where}: needs a non-empty string {key!r}, got {_show(result.get(key))}")
        confidence = result.get("confidence")
        if not _is_number(confidence) or not 0 <= confidence <= 1:
            findings.fail(f"{where}: confidence must be a number from 0 to 1, got {_show(confidence)}")
        name, label = result.get("name"), result.get("label")
        if isinstance(name, str) and isinstance(label, str) and name and label and name != label:
            findings.warn(f"{where}: name {name!r} differs from label {label!r} (V7 matches the label)")
        attributes = result.get("attributes")
        if attributes is not None and (
            not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes)
        ):
            findings.fail(f"{where}: attributes must be a list of strings, got {_show(attributes)}")
        text = result.get("text")
        if text is not None and (not isinstance(text, dict) or not isinstance(text.get("text"), str)):
            findings.fail(f'{where}: text must be {{"text": "..."}}, got {_show(text)}')
    return findings.result(f"{findings.checked} results checked", "no results to look at")


def rule_one_geometry(answers: Sequence[Answer]) -> RuleResult:
    findings = _Findings("one-geometry")
    for answer, index, result in _results(answers):
        if not isinstance(result, dict):
            continue
        findings.checked += 1
        keys = geometry_keys(result)
        if len(keys) != 1:
            found = ", ".join(keys) if keys else "none"
            findings.fail(f"{_where(answer, index, result)}: has {len(keys)} geometries ({found}); V7 needs one")
    return findings.result(f"{findings.checked} results had one geometry", "no results to look at")


def rule_geometry_shape(answers: Sequence[Answer]) -> RuleResult:
    findings = _Findings("geometry-shape")
    for answer, index, result in _results(answers):
        geometry = _single_geometry(result)
        if geometry is None:
            continue
        findings.checked += 1
        for problem in _shape_problems(geometry, result[geometry]):
            findings.fail(f"{_where(answer, index, result)}: {problem}")
    return findings.result(f"{findings.checked} geometries well formed", "no geometry to look at")


def rule_class_names(answers: Sequence[Answer], classes: dict[str, str] | None) -> RuleResult:
    findings = _Findings("class-names")
    if classes is None:
        return RuleResult("class-names", SKIPPED, ("no usable GET /classes answer to compare with (see 'classes')",))
    unknown: dict[str, list[str]] = {}
    for answer, index, result in _results(answers):
        label = result_label(result)
        if label is None:
            continue
        findings.checked += 1
        if label not in classes:
            unknown.setdefault(label, []).append(f"{answer.where}: results[{index}]")
    for label, places in unknown.items():
        findings.fail(
            f"class {label!r} is not in GET /classes ({', '.join(sorted(classes))}): V7 drops these results; "
            f"{len(places)} of them, first at {places[0]}"
        )
    return findings.result(f"{findings.checked} results named a listed class", "no results to look at")


def rule_class_types(answers: Sequence[Answer], classes: dict[str, str] | None) -> RuleResult:
    findings = _Findings("class-types")
    if classes is None:
        return RuleResult("class-types", SKIPPED, ("no usable GET /classes answer to compare with (see 'classes')",))
    for answer, index, result in _results(answers):
        label, geometry = result_label(result), _single_geometry(result)
        declared = classes.get(label) if label is not None else None
        if geometry is None or declared not in KNOWN_TYPES:
            continue
        findings.checked += 1
        if geometry != declared:
            findings.fail(
                f"{_where(answer, index, result)}: GET /classes declares {label!r} as {declared}, "
                f"but the result carries a {geometry}"
            )
    return findings.result(f"{findings.checked} results had their class's type", "no results to look at")


def rule_inside_image(answers: Sequence[Answer]) -> RuleResult:
    findings = _Findings("inside-image")
    for answer, index, result in _results(answers):
        formed = _well_formed(result)
        if formed is None or answer.image_wh is None:
            continue
        findings.checked += 1
        width, height = answer.image_wh
        outside = [
            (what, x, y)
            for what, x, y in geometry_points(*formed)
            if not (-INSIDE_TOLERANCE_PX <= x <= width + INSIDE_TOLERANCE_PX)
            or not (-INSIDE_TOLERANCE_PX <= y <= height + INSIDE_TOLERANCE_PX)
        ]
        if outside:
            what, x, y = outside[0]
            more = f" (and {len(outside) - 1} more points)" if len(outside) > 1 else ""
            findings.fail(
                f"{_where(answer, index, result)}: {formed[0]} {what} at ({x:g}, {y:g}) lies outside the "
                f"{width}x{height} image{more}"
            )
    return findings.result(f"{findings.checked} results inside their image", "no results to look at")


def rule_no_zero_size(answers: Sequence[Answer]) -> RuleResult:
    findings = _Findings("no-zero-size")
    for answer, index, result in _results(answers):
        formed = _well_formed(result)
        if formed is None or formed[0] not in ("bounding_box", "polygon", "line"):
            continue
        findings.checked += 1
        geometry, value = formed
        where = _where(answer, index, result)
        if geometry == "bounding_box" and (value["w"] == 0 or value["h"] == 0):
            findings.fail(f"{where}: bounding_box of zero size (w={value['w']}, h={value['h']}): V7 rejects it")
        elif geometry == "polygon":
            distinct = {(p["x"], p["y"]) for p in value["path"]}
            if len(distinct) < 3 or _polygon_area(value["path"]) == 0:
                findings.fail(f"{where}: polygon with {len(distinct)} distinct points and no area")
        elif geometry == "line" and len({(p["x"], p["y"]) for p in value["path"]}) < 2:
            findings.fail(f"{where}: line with fewer than two distinct points")
    return findings.result(f"{findings.checked} boxes, polygons and lines had a size", "no box, polygon or line")


def rule_skeleton_nodes(answers: Sequence[Answer]) -> RuleResult:
    findings = _Findings("skeleton-nodes")
    first_names: dict[str, tuple[list[Any], str]] = {}
    for answer, index, result in _results(answers):
        formed = _well_formed(result)
        if formed is None or formed[0] != "skeleton":
            continue
        findings.checked += 1
        where = _where(answer, index, result)
        names = [node.get("name") for node in formed[1]["nodes"]]
        unnamed = [i for i, name in enumerate(names) if not isinstance(name, str) or not name]
        if unnamed:
            findings.fail(f"{where}: node(s) {unnamed[:5]} have no 'name'; V7 matches nodes by name")
            continue
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            findings.fail(f"{where}: node name(s) {twice} used twice")
            continue
        label = result_label(result) or "?"
        if label not in first_names:
            first_names[label] = (names, where)
            continue
        expected, first_where = first_names[label]
        if names != expected:
            missing = [n for n in expected if n not in names]
            extra = [n for n in names if n not in expected]
            detail = f"missing {missing[:5]}, extra {extra[:5]}" if missing or extra else "same names, other order"
            findings.fail(f"{where}: nodes differ from those of {first_where} ({detail})")
    classes = ", ".join(f"{label} ({len(names)} nodes)" for label, (names, _) in first_names.items())
    return findings.result(f"{findings.checked} skeletons: {classes}", "no skeleton results")


def rule_within_bbox(answers: Sequence[Answer], bbox_xywh: tuple[float, float, float, float] | None) -> RuleResult:
    """A warning only: whether V7 forwards the box to external models is not public."""
    if bbox_xywh is None:
        return RuleResult("within-bbox", SKIPPED, ("no bbox sent (see --bbox)",))
    findings = _Findings("within-bbox")
    bx, by, bw, bh = bbox_xywh
    for answer, index, result in _results(answers):
        formed = _well_formed(result)
        center = _center(*formed) if formed is not None else None
        if center is None:
            continue
        findings.checked += 1
        x, y = center
        if not (bx <= x <= bx + bw and by <= y <= by + bh):
            findings.warn(
                f"{_where(answer, index, result)}: centre ({x:.1f}, {y:.1f}) lies outside the bbox "
                f"({bx:g}, {by:g}, {bw:g}, {bh:g}): Auto-Annotate wants what is inside the box"
            )
    return findings.result(f"{findings.checked} results inside the bbox", "no results to look at")


def rule_latency(
    answers: Sequence[Answer], limit_s: float = LATENCY_LIMIT_S, warn_s: float = LATENCY_WARN_S
) -> RuleResult:
    findings = _Findings("latency")
    timings = []
    for answer in answers:
        if answer.error == "timeout":
            findings.checked += 1
            findings.fail(f"{answer.where}: no answer within {answer.latency_s:.1f} s (V7 gives up at {limit_s:g} s)")
        elif answer.status_code is not None:
            findings.checked += 1
            timings.append(answer.latency_s)
            if answer.latency_s >= limit_s:
                findings.fail(f"{answer.where}: {answer.latency_s:.2f} s, at or over the {limit_s:g} s limit")
            elif answer.latency_s >= warn_s:
                findings.warn(f"{answer.where}: {answer.latency_s:.2f} s (warning from {warn_s:g} s)")
    note = "no answer to time"
    if timings:
        note = f"{len(timings)} answers: median {statistics.median(timings):.2f} s, slowest {max(timings):.2f} s"
    result = findings.result(note, note)
    if result.status in (FAILED, WARNING):
        return RuleResult(result.rule, result.status, (*result.evidence, note))
    return result


def rule_failure_json(probes: Sequence[Answer]) -> RuleResult:
    """Bad requests (no image, bytes that are no picture, a URL that 404s) get JSON with status failed."""
    findings = _Findings("failure-json")
    for answer in probes:
        if answer.error == "timeout":
            continue  # the latency rule reports it
        findings.checked += 1
        if answer.status_code is None:
            findings.fail(f"{answer.where}: no HTTP answer ({answer.error})")
        elif not answer.is_json:
            findings.fail(f"{answer.where}: HTTP {answer.status_code}, body is not JSON: {_body_start(answer)}")
        elif not isinstance(answer.body, dict) or "status" not in answer.body:
            findings.fail(f"{answer.where}: HTTP {answer.status_code}, JSON without 'status': {_show(answer.body)}")
        elif answer.body["status"] == "succeeded":
            findings.warn(f"{answer.where}: answered status succeeded to a request that cannot succeed")
        elif answer.body["status"] != "failed":
            findings.fail(f"{answer.where}: status {answer.body['status']!r}, expected 'failed'")
    return findings.result(f"{findings.checked} bad requests answered with status failed", "no bad request sent")


def rule_auth(probes: Sequence[tuple[str, Answer]], expected: bool) -> RuleResult:
    """`probes` are (kind, answer): kind "infer" or "classes", sent without or with wrong credentials."""
    if not expected:
        return RuleResult(
            "auth",
            SKIPPED,
            ("no credentials given, so none expected (--basic-auth, or --auth-header with --auth-secret)",),
        )
    findings = _Findings("auth")
    for kind, answer in probes:
        findings.checked += 1
        if answer.status_code is None:
            findings.fail(f"{answer.where}: no HTTP answer ({answer.error})")
        elif answer.status_code in (401, 403):
            if not answer.is_json:
                findings.warn(f"{answer.where}: rejected (HTTP {answer.status_code}) but not as JSON")
        elif kind == "classes":
            findings.warn(f"{answer.where}: GET /classes answered HTTP {answer.status_code} without credentials")
        else:
            findings.fail(f"{answer.where}: answered HTTP {answer.status_code} instead of rejecting it (401)")
    return findings.result(f"{findings.checked} requests without valid credentials rejected", "no request was sent")


#: The order rules are reported in.
RULE_ORDER = tuple(RULE_TITLES)


@dataclass(frozen=True)
class Observations:
    """Everything the checker saw, ready for the rules."""

    classes_tried: tuple[Answer, ...] = ()
    classes_answer: Answer | None = None
    classes_url: str | None = None
    inferences: tuple[Answer, ...] = ()
    failure_probes: tuple[Answer, ...] = ()
    auth_probes: tuple[tuple[str, Answer], ...] = ()
    auth_expected: bool = False
    modes: tuple[str, ...] = ("base64",)
    bbox_xywh: tuple[float, float, float, float] | None = None
    latency_limit_s: float = LATENCY_LIMIT_S
    latency_warn_s: float = LATENCY_WARN_S

    def all_answers(self) -> list[Answer]:
        return [*self.classes_tried, *self.inferences, *self.failure_probes, *(a for _, a in self.auth_probes)]

    @property
    def unreachable(self) -> bool:
        """No request got an HTTP answer at all: nothing else can be judged."""
        answers = self.all_answers()
        return bool(answers) and all(a.status_code is None and a.error != "timeout" for a in answers)


def evaluate(seen: Observations) -> list[RuleResult]:
    """Every rule, in report order."""
    classes = usable_classes(seen.classes_answer.body) if seen.classes_answer is not None else None
    main_answers = [*([seen.classes_answer] if seen.classes_answer else []), *seen.inferences]
    timed = [*seen.inferences, *seen.failure_probes]
    rules: dict[str, Callable[[], RuleResult]] = {
        "reachable": lambda: rule_reachable([*seen.classes_tried, *seen.inferences]),
        "json": lambda: rule_json(main_answers),
        "classes": lambda: rule_classes(seen.classes_tried, seen.classes_answer),
        "status": lambda: rule_status(seen.inferences),
        "accepts-base64": lambda: rule_accepts("base64", seen.inferences, "base64" in seen.modes),
        "accepts-url": lambda: rule_accepts("url", seen.inferences, "url" in seen.modes),
        "result-fields": lambda: rule_result_fields(seen.inferences),
        "one-geometry": lambda: rule_one_geometry(seen.inferences),
        "geometry-shape": lambda: rule_geometry_shape(seen.inferences),
        "class-names": lambda: rule_class_names(seen.inferences, classes),
        "class-types": lambda: rule_class_types(seen.inferences, classes),
        "inside-image": lambda: rule_inside_image(seen.inferences),
        "no-zero-size": lambda: rule_no_zero_size(seen.inferences),
        "skeleton-nodes": lambda: rule_skeleton_nodes(seen.inferences),
        "within-bbox": lambda: rule_within_bbox(seen.inferences, seen.bbox_xywh),
        "latency": lambda: rule_latency(timed, seen.latency_limit_s, seen.latency_warn_s),
        "failure-json": lambda: rule_failure_json(seen.failure_probes),
        "auth": lambda: rule_auth(seen.auth_probes, seen.auth_expected),
    }
    if seen.unreachable:
        reason = ("the endpoint gave no HTTP answer (see 'reachable')",)
        return [rules["reachable"](), *(RuleResult(rule, SKIPPED, reason) for rule in RULE_ORDER[1:])]
    return [rules[rule]() for rule in RULE_ORDER]
