"""Measure latency per model: in-process and through HTTP (gunicorn), on the same pictures.

Both sides run one request at a time with the same OpenCV threads (the server's own default
gives each of its workers cores/workers threads, for throughput: see `python run.py load`).
In-process means what a Python caller pays for the same input: decoding the JPEG file and
running the model through the driver (crop, checks, mapping). Through HTTP adds what V7's call
adds: base64, JSON, the request itself and gunicorn. The ratio HTTP/in-process of the p50s shows
the fixed per-request overhead, also printed in ms. Runs on loopback only, bounded in count.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MODELS = ("opencv-face", "mediapipe-face", "face-landmarks", "pose", "hands")
DEFAULT_SIZES_PX = (512, 1536)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="models to measure")
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        default=list(DEFAULT_SIZES_PX),
        help="square picture sizes in px (astronaut, resized; JPEG)",
    )
    parser.add_argument("--iterations", type=int, default=30, help="timed requests per model and size (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first (default 3)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gunicorn workers for the HTTP side (default 1: one request at a time, like in-process)",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")


def percentile_ms(samples_s: list[float], q: float) -> float:
    ordered = sorted(samples_s)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index] * 1000


def picture_jpeg(size_px: int) -> bytes:
    import cv2

    from models.samples import encode_jpeg, sample_rgb

    image = sample_rgb("astronaut")
    if image.shape[0] != size_px:
        image = cv2.resize(image, (size_px, size_px), interpolation=cv2.INTER_CUBIC)
    return encode_jpeg(image, quality=90)


def time_calls(call, warmup: int, iterations: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def main(args: argparse.Namespace) -> int:
    import cv2
    import requests

    from models.driver import Request, run_model
    from models.registry import ModelRegistry
    from server.cli import gunicorn_command
    from server.images import decode_image
    from server.settings import Settings

    settings = Settings.from_env()
    registry = ModelRegistry.with_plugins(settings.extra_models)
    unavailable = [m for m in args.models if not registry.is_available(m)]
    if unavailable:
        print(
            f"error: models without their files: {', '.join(unavailable)} (python run.py models pull)", file=sys.stderr
        )
        return 1

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="byom-bench-"))
    env = {
        **os.environ,
        "BYOM_HOME": str(home),
        "BYOM_BIND": f"127.0.0.1:{port}",
        "BYOM_WORKERS": str(args.workers),
        "BYOM_THREADS": "1",
        "BYOM_NO_REQUEST_LOG": "1",
        "BYOM_LOG_LEVEL": "warning",
        # the same OpenCV threads as this process, so that both sides run the model code alike
        "BYOM_OPENCV_THREADS": str(cv2.getNumThreads()),
    }
    server = subprocess.Popen(gunicorn_command(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                print("error: the API did not start", file=sys.stderr)
                return 1
            time.sleep(0.2)

        session = requests.Session()
        for size_px in args.sizes:
            jpeg = picture_jpeg(size_px)
            body = json.dumps({"image": {"base64": base64.b64encode(jpeg).decode()}})
            for name in args.models:
                model = registry.get(name)

                def in_process(model=model, jpeg=jpeg):
                    image = decode_image(
                        jpeg, max_pixels=settings.max_image_pixels, max_side_px=settings.max_image_side_px
                    )
                    return run_model(model, image, Request())

                def over_http(name=name, body=body):
                    response = session.post(
                        f"{url}/models/{name}/infer",
                        data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=30,
                    )
                    response.raise_for_status()
                    return response

                local = time_calls(in_process, args.warmup, args.iterations)
                remote = time_calls(over_http, args.warmup, args.iterations)
                local_p50, remote_p50 = statistics.median(local) * 1000, statistics.median(remote) * 1000
                rows.append(
                    {
                        "model": name,
                        "size_px": size_px,
                        "in_process_p50_ms": round(local_p50, 1),
                        "in_process_p95_ms": round(percentile_ms(local, 95), 1),
                        "http_p50_ms": round(remote_p50, 1),
                        "http_p95_ms": round(percentile_ms(remote, 95), 1),
                        "ratio_p50": round(remote_p50 / local_p50, 2),
                        "overhead_p50_ms": round(remote_p50 - local_p50, 1),
                    }
                )
    finally:
        server.terminate()
        server.wait(timeout=20)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if args.json:
        print(json.dumps({"machine": machine, "iterations": args.iterations, "rows": rows}, indent=2))
        return 0
    print(f"Latency on {machine}; {args.iterations} requests each, JPEG astronaut, p50/p95 in ms\n")
    print("| model | picture | in-process p50 / p95 | HTTP p50 / p95 | HTTP/in-process (p50) | overhead p50 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['size_px']}² | {r['in_process_p50_ms']} / {r['in_process_p95_ms']} | "
            f"{r['http_p50_ms']} / {r['http_p95_ms']} | {r['ratio_p50']}x | {r['overhead_p50_ms']} ms |"
        )
    return 0
