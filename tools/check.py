"""Check any HTTP endpoint against V7's BYOM contract, calling it the way V7 would.

  python run.py check http://127.0.0.1:8000/infer
  python run.py check https://my-model.example.com/api/infer --auth-header X-MY-AUTH --auth-secret S
  python run.py check URL --image my1.jpg --image my2.png --send base64 --bbox 100,80,300,200 --json

URL is the inference route as registered in V7 (any path; a bare http://host:port means
http://host:port/infer). The classes are read from URL's sibling /classes, else /api/classes
(--classes-url to name it). The checker sends built-in pictures (or --image FILE ...) as
image.base64 and/or as image.url; for URLs it serves the pictures itself from a local port on
127.0.0.1 under presigned-style URLs, so the endpoint must be allowed to fetch from this machine
(byom-playground's own API: `python run.py serve --allow-private-urls`). It also sends bad requests
(no image, bytes that are no picture, a URL that answers 404) and, when credentials are given,
requests without them.

Each rule is reported as passed, failed, warning or skipped, with the evidence. Exit status: 0 when
no rule failed (warnings too fail with --strict), 1 otherwise, 2 for bad options. The checker is
only an HTTP client: it never loads a model.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tools.contract_rules import (
    FAILED,
    NOT_JSON,
    PASSED,
    RULE_ORDER,
    SKIPPED,
    WARNING,
    Answer,
    Observations,
    RuleResult,
    evaluate,
    usable_classes,
)

#: Built-in pictures sent by default: two people (one colour, one portrait) and none (empty results).
DEFAULT_SAMPLES = ("astronaut", "grace_hopper", "coffee")
EXIF_ORIENTATION_TAG = 0x0112
#: Seconds to wait for an answer beyond the latency limit, so a slow answer is timed rather than cut off.
TIMEOUT_MARGIN_S = 5.0
CONNECT_TIMEOUT_S = 5.0
STATUS_LABELS = {PASSED: "PASS", WARNING: "WARN", FAILED: "FAIL", SKIPPED: "SKIP"}


class UsageError(ValueError):
    """Bad options or unreadable picture files: reported, exit status 2."""


@dataclass(frozen=True)
class Picture:
    name: str
    data: bytes
    #: As a viewer (and V7) shows it: EXIF orientation applied.
    width: int
    height: int


@dataclass(frozen=True)
class Credentials:
    basic: tuple[str, str] | None = None
    header: str | None = None
    secret: str | None = None

    @property
    def given(self) -> bool:
        return self.basic is not None or self.secret is not None

    def apply(self, session: Any) -> None:
        if self.basic is not None:
            session.auth = self.basic
        if self.secret is not None:
            session.headers[self.header] = self.secret

    def wrong(self) -> Credentials:
        """The same kind of credentials with a wrong password / secret."""
        return Credentials(
            basic=(self.basic[0], self.basic[1] + "-wrong") if self.basic else None,
            header=self.header,
            secret=(self.secret + "-wrong") if self.secret is not None else None,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the inference URL, e.g. http://127.0.0.1:8000/infer")
    parser.add_argument(
        "--classes-url", metavar="URL", help="the classes URL (default: URL's sibling /classes, then /api/classes)"
    )
    auth = parser.add_argument_group("authentication, as registered in V7")
    auth.add_argument("--basic-auth", metavar="USER:PASSWORD", help="send HTTP Basic credentials")
    auth.add_argument(
        "--auth-header",
        metavar="NAME",
        help="header carrying the secret, e.g. X-MY-AUTH (default with --auth-secret: X-BYOM-Secret)",
    )
    auth.add_argument("--auth-secret", metavar="SECRET", help="send this secret in --auth-header")
    pictures = parser.add_argument_group("what to send")
    pictures.add_argument(
        "--image",
        dest="images",
        action="append",
        type=Path,
        metavar="FILE",
        help=f"a picture to send (repeat for several; default: built-in pictures {', '.join(DEFAULT_SAMPLES)})",
    )
    pictures.add_argument(
        "--send",
        choices=("base64", "url", "both"),
        default="both",
        help="send pictures as image.base64, as image.url served from this machine, or both (default: both)",
    )
    pictures.add_argument(
        "--bbox",
        metavar="X,Y,W,H",
        help="an Auto-Annotate box in image pixels, sent as 'bbox' and as 'data.bbox' (V7's placement is not public)",
    )
    pictures.add_argument("--threshold", type=float, metavar="T", help="a confidence threshold 0..1 to send")
    report = parser.add_argument_group("report")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    report.add_argument(
        "--latency-limit",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="fail answers this slow (default: 30, V7's limit)",
    )
    report.add_argument(
        "--latency-warn", type=float, default=10.0, metavar="SECONDS", help="warn about answers this slow (default: 10)"
    )


# -- options --------------------------------------------------------------------------------------


def infer_url_of(url: str) -> str:
    """The inference URL: as given, or BASE/infer when only a base (no path) was given."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"URL must be an http:// or https:// address, got {url!r}")
    if parts.path in ("", "/"):
        parts = parts._replace(path="/infer")
    return urlunsplit(parts)


def classes_url_candidates(infer_url: str) -> list[str]:
    """Where GET /classes may live: URL's sibling /classes, then /api/classes (and the parent's
    /classes for an .../api/infer URL), as V7's docs and example code spell it."""
    parts = urlsplit(infer_url)
    directory = parts.path.rsplit("/", 1)[0]
    paths = [f"{directory}/classes", f"{directory}/api/classes"]
    if directory.endswith("/api"):
        paths.append(f"{directory[: -len('/api')]}/classes")
    unique = list(dict.fromkeys(paths))
    return [urlunsplit((parts.scheme, parts.netloc, path, "", "")) for path in unique]


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        x, y, w, h = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--bbox must be X,Y,W,H (four numbers), got {text!r}") from None
    if w <= 0 or h <= 0:
        raise UsageError(f"--bbox needs a positive width and height, got {text!r}")
    return x, y, w, h


def credentials_of(args: argparse.Namespace) -> Credentials:
    basic = None
    if args.basic_auth is not None:
        user, sep, password = args.basic_auth.partition(":")
        if not sep or not user:
            raise UsageError("--basic-auth must be USER:PASSWORD")
        basic = (user, password)
    if args.auth_header and args.auth_secret is None:
        raise UsageError("--auth-header needs --auth-secret")
    header = args.auth_header or ("X-BYOM-Secret" if args.auth_secret is not None else None)
    return Credentials(basic, header, args.auth_secret)


def oriented_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) as shown, EXIF orientation applied, read from the header only."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.getexif().get(EXIF_ORIENTATION_TAG) in (5, 6, 7, 8):
                width, height = height, width
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"{name} is not a picture the checker can read: {exc}") from None
    return width, height


def load_pictures(paths: list[Path] | None) -> list[Picture]:
    if paths:
        pictures = []
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
            pictures.append(Picture(path.name, data, *oriented_size(data, str(path))))
        return pictures
    from models.samples import encode_jpeg, sample_rgb  # pictures only: no model code

    pictures = []
    for name in DEFAULT_SAMPLES:
        image = sample_rgb(name)
        pictures.append(Picture(f"{name}.jpg", encode_jpeg(image), image.shape[1], image.shape[0]))
    return pictures


# -- HTTP -----------------------------------------------------------------------------------------


def exchange(
    session: Any, method: str, url: str, where: str, *, body: Any = None, timeout_s: float, **fields: Any
) -> Answer:
    """One request, timed, turned into an `Answer` (never raises for network trouble)."""
    import requests

    started = time.perf_counter()
    try:
        response = session.request(method, url, json=body, timeout=(CONNECT_TIMEOUT_S, timeout_s))
    except requests.Timeout:
        return Answer(where, None, latency_s=time.perf_counter() - started, error="timeout", **fields)
    except requests.RequestException as exc:
        return Answer(where, None, latency_s=time.perf_counter() - started, error=transport_error(exc), **fields)
    latency_s = time.perf_counter() - started
    text = response.content.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text) if text.strip() else NOT_JSON
    except ValueError:
        parsed = NOT_JSON
    return Answer(
        where, response.status_code, response.headers.get("Content-Type", ""), parsed, text[:2000], latency_s, **fields
    )


def transport_error(exc: BaseException) -> str:
    """A short reason for a failed connection ("ConnectionError: [Errno 111] Connection refused")."""
    found = re.search(r"\[Errno -?\d+\][^'\")]*", str(exc))
    reason = found.group(0).strip() if found else " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {reason}"


def _path_of(url: str) -> str:
    return urlsplit(url).path


def run_checks(
    infer_url: str,
    classes_urls: list[str],
    pictures: list[Picture],
    modes: tuple[str, ...],
    credentials: Credentials,
    bbox_xywh: tuple[float, float, float, float] | None = None,
    threshold: float | None = None,
    latency_limit_s: float = 30.0,
    latency_warn_s: float = 10.0,
) -> Observations:
    """Make every request and collect what came back."""
    import requests

    from playground.picture_server import PictureServer

    timeout_s = latency_limit_s + TIMEOUT_MARGIN_S
    infer_path = _path_of(infer_url)
    extra: dict[str, Any] = {}
    if bbox_xywh is not None:
        extra["bbox"] = dict(zip("xywh", bbox_xywh, strict=True))
    if threshold is not None:
        extra["threshold"] = threshold
    if extra:
        extra["data"] = dict(extra)

    serve_pictures = PictureServer() if "url" in modes else contextlib.nullcontext()
    with requests.Session() as session, serve_pictures as pictures_server:
        credentials.apply(session)

        classes_tried: list[Answer] = []
        classes_answer, classes_url = None, None
        for url in classes_urls:
            answer = exchange(session, "GET", url, f"GET {_path_of(url)}", timeout_s=timeout_s)
            classes_tried.append(answer)
            if answer.status_code == 200 and answer.is_json:
                classes_answer, classes_url = answer, url
                break

        def infer(where: str, body: Any, **fields: Any) -> Answer:
            return exchange(
                session, "POST", infer_url, f"POST {infer_path} {where}", body=body, timeout_s=timeout_s, **fields
            )

        def send(picture: Picture, mode: str) -> Answer:
            if mode == "base64":
                image = {"base64": base64.b64encode(picture.data).decode("ascii")}
            else:
                image = {"url": pictures_server.add(picture.data, picture.name)}
            answer = infer(
                f"{picture.name} as {mode}",
                {"image": image, **extra},
                image_wh=(picture.width, picture.height),
                mode=mode,
            )
            if mode == "url":
                path = _path_of(image["url"])
                fetched = any(_path_of(hit) == path for hit in pictures_server.hits)
                answer = dataclasses.replace(answer, fetched=fetched)
            return answer

        inferences: list[Answer] = []
        jobs = [(picture, mode) for picture in pictures for mode in modes]
        if all(a.status_code is None and a.error != "timeout" for a in classes_tried):
            first = send(*jobs[0])
            inferences.append(first)
            jobs = jobs[1:]
            if first.status_code is None and first.error != "timeout":
                return Observations(
                    classes_tried=tuple(classes_tried),
                    inferences=tuple(inferences),
                    auth_expected=credentials.given,
                    modes=modes,
                    bbox_xywh=bbox_xywh,
                    latency_limit_s=latency_limit_s,
                    latency_warn_s=latency_warn_s,
                )

        not_a_picture = base64.b64encode(b"this is not a picture, just text").decode("ascii")
        probes = [
            infer("with no image (a JSON object without 'image')", {"note": "no image here"}),
            infer("with image.base64 that is not a picture", {"image": {"base64": not_a_picture}}),
        ]
        if "url" in modes:
            missing_url = f"{pictures_server.base_url}/pictures/missing/none.jpg?X-Amz-Signature=0"
            probes.append(infer("with an image.url that answers 404", {"image": {"url": missing_url}}))

        inferences.extend(send(picture, mode) for picture, mode in jobs)

        auth_probes: list[tuple[str, Answer]] = []
        if credentials.given:
            small = min(pictures, key=lambda p: len(p.data))
            body = {"image": {"base64": base64.b64encode(small.data).decode("ascii")}}
            for label, creds in (
                ("without credentials", Credentials()),
                ("with wrong credentials", credentials.wrong()),
            ):
                with requests.Session() as other:
                    creds.apply(other)
                    auth_probes.append(
                        (
                            "infer",
                            exchange(
                                other, "POST", infer_url, f"POST {infer_path} {label}", body=body, timeout_s=timeout_s
                            ),
                        )
                    )
                    if classes_url is not None and label == "without credentials":
                        where = f"GET {_path_of(classes_url)} {label}"
                        auth_probes.append(("classes", exchange(other, "GET", classes_url, where, timeout_s=timeout_s)))

    return Observations(
        classes_tried=tuple(classes_tried),
        classes_answer=classes_answer,
        classes_url=classes_url,
        inferences=tuple(inferences),
        failure_probes=tuple(probes),
        auth_probes=tuple(auth_probes),
        auth_expected=credentials.given,
        modes=modes,
        bbox_xywh=bbox_xywh,
        latency_limit_s=latency_limit_s,
        latency_warn_s=latency_warn_s,
    )


# -- the report -----------------------------------------------------------------------------------


def exit_code(results: list[RuleResult], strict: bool = False) -> int:
    bad = {FAILED, WARNING} if strict else {FAILED}
    return 1 if any(r.status in bad for r in results) else 0


def summary_counts(results: list[RuleResult]) -> dict[str, int]:
    return {status: sum(r.status == status for r in results) for status in (PASSED, WARNING, FAILED, SKIPPED)}


def report_json(
    infer_url: str, seen: Observations, pictures: list[Picture], results: list[RuleResult], code: int
) -> dict[str, Any]:
    requests_made = []
    for answer in seen.all_answers():
        results_count = None
        if isinstance(answer.body, dict) and isinstance(answer.body.get("results"), list):
            results_count = len(answer.body["results"])
        requests_made.append(
            {
                "request": answer.where,
                "status_code": answer.status_code,
                "latency_s": round(answer.latency_s, 4),
                "error": answer.error,
                "results": results_count,
            }
        )
    return {
        "endpoint": infer_url,
        "classes_url": seen.classes_url,
        "classes": usable_classes(seen.classes_answer.body) if seen.classes_answer else None,
        "pictures": [{"name": p.name, "width": p.width, "height": p.height} for p in pictures],
        "sent_as": list(seen.modes),
        "passed": code == 0,
        "exit_code": code,
        "summary": summary_counts(results),
        "rules": [r.to_json() for r in results],
        "requests": requests_made,
    }


def report_text(
    infer_url: str, seen: Observations, pictures: list[Picture], results: list[RuleResult], code: int
) -> str:
    lines = [f"Checking {infer_url} against V7's BYOM contract"]
    if seen.classes_url is not None:
        lines.append(f"  classes:  {seen.classes_url}")
    listed = ", ".join(f"{p.name} {p.width}x{p.height}" for p in pictures)
    lines.append(f"  pictures: {listed}; sent as {' and '.join(seen.modes)}")
    lines.append(f"  requests: {len(seen.all_answers())}")
    lines.append("")
    width = max(len(rule) for rule in RULE_ORDER)
    for result in results:
        lines.append(f"{STATUS_LABELS[result.status]}  {result.rule:<{width}}  {result.title}")
        shown = result.evidence if result.status in (FAILED, WARNING) else result.evidence[:1]
        lines.extend(f"      {line}" for line in shown[:8])
        if len(shown) > 8:
            lines.append(f"      ... {len(shown) - 8} more lines (--json shows all)")
    counts = summary_counts(results)
    verdict = "all rules passed" if code == 0 else "the endpoint does not meet the contract"
    lines.append("")
    lines.append(
        f"{counts[PASSED]} passed, {counts[WARNING]} warnings, {counts[FAILED]} failed, {counts[SKIPPED]} skipped: "
        f"{verdict} (exit {code})"
    )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        infer_url = infer_url_of(args.url)
        classes_urls = [args.classes_url] if args.classes_url else classes_url_candidates(infer_url)
        credentials = credentials_of(args)
        bbox = parse_bbox(args.bbox)
        if args.threshold is not None and not 0 <= args.threshold <= 1:
            raise UsageError("--threshold must be from 0 to 1")
        if not 0 < args.latency_warn <= args.latency_limit:
            raise UsageError("--latency-warn must be positive and at most --latency-limit")
        pictures = load_pictures(args.images)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    modes = ("base64", "url") if args.send == "both" else (args.send,)
    seen = run_checks(
        infer_url,
        classes_urls,
        pictures,
        modes,
        credentials,
        bbox,
        args.threshold,
        args.latency_limit,
        args.latency_warn,
    )
    results = evaluate(seen)
    code = exit_code(results, args.strict)
    if args.json:
        print(json.dumps(report_json(infer_url, seen, pictures, results, code), indent=2))
    else:
        print(report_text(infer_url, seen, pictures, results, code))
    return code
