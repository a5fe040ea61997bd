"""Load test: throughput and latency percentiles for 1, 2, 4 and 8 concurrent clients, and memory.

Starts the API under gunicorn on a free loopback port (as `python run.py serve` does; or measures
a running server given with --url, loopback only) and sends V7-style requests (a JPEG in
image.base64) to one endpoint. Each level is bounded in count (--requests) and time (--max-seconds).
Then it sends --memory-requests more requests in three equal rounds and reads the workers' resident
memory after each: a leak shows as growth that continues from round to round.

    python -m bench.load                         # default endpoint, astronaut 512 px, 2 workers
    python -m bench.load --route /models/pose/infer --size 1536 --json

The scaling target on a 2-core machine: throughput at 2 clients >= 1.7x throughput at 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CLIENTS = (1, 2, 4, 8)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="measure this running server (loopback only) instead of starting one")
    parser.add_argument("--route", default="/infer", help="endpoint to load (default: /infer, the default models)")
    parser.add_argument("--picture", default="astronaut", help="built-in sample picture (default: astronaut)")
    parser.add_argument("--size", type=int, default=512, help="longer side of the picture in px (default: 512)")
    parser.add_argument("--clients", default=",".join(map(str, DEFAULT_CLIENTS)), help="levels (default: 1,2,4,8)")
    parser.add_argument("--requests", type=int, default=60, help="requests per level (default: 60)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time bound per level (default: 60)")
    parser.add_argument("--memory-requests", type=int, default=300, help="requests for the memory check (300)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers when starting one (default: 2)")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: the server's)")
    parser.add_argument(
        "--new-connections",
        action="store_true",
        help="open a new connection per request (as nginx does towards gunicorn) instead of keep-alive",
    )
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")


@dataclass
class Level:
    clients: int
    requests: int
    errors: int
    seconds: float
    throughput_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    #: CPU time the workers spent per request, and cores kept busy: less noisy than wall time.
    server_cpu_ms_per_request: float | None = None
    server_cores_busy: float | None = None


def percentile_ms(samples_s: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least q% of samples at or below it."""
    ordered = sorted(samples_s)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1] * 1000


def request_body(picture: str, size_px: int) -> bytes:
    import cv2

    from models.samples import encode_jpeg, sample_rgb

    image = sample_rgb(picture)
    scale = size_px / max(image.shape[:2])
    if scale != 1:
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    return json.dumps({"image": {"base64": base64.b64encode(encode_jpeg(image, quality=90)).decode()}}).encode()


def run_level(url: str, body: bytes, clients: int, count: int, max_seconds: float, new_connections: bool) -> Level:
    import requests

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        session = None if new_connections else requests.Session()
        while True:
            with lock:
                if issued[0] >= count or time.monotonic() > deadline:
                    break
                issued[0] += 1
            started = time.perf_counter()
            try:
                post = session.post if session else requests.post
                headers = {"Content-Type": "application/json"}
                if new_connections:
                    headers["Connection"] = "close"
                response = post(url, data=body, headers=headers, timeout=60)
                ok = response.status_code == 200 and response.json().get("status") == "succeeded"
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return Level(
        clients=clients,
        requests=len(latencies),
        errors=errors[0],
        seconds=round(seconds, 2),
        throughput_rps=round(len(latencies) / seconds, 2),
        p50_ms=round(percentile_ms(latencies, 50), 1),
        p95_ms=round(percentile_ms(latencies, 95), 1),
        p99_ms=round(percentile_ms(latencies, 99), 1),
    )


def worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def rss_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return round(total_kib / 1024, 1)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes and all their threads (from /proc)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def start_server(workers: int, threads: int | None, home: Path) -> tuple[subprocess.Popen, str]:
    import socket

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, str(PROJECT_DIR / "run.py"), "serve", "--port", str(port), "--workers", str(workers)]
    if threads is not None:
        command += ["--threads", str(threads)]
    command += ["--log-level", "warning"]  # the requests log stays on, as by default
    env = {**os.environ, "BYOM_HOME": str(home)}
    log = (home / "gunicorn.log").open("wb")
    process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {(home / 'gunicorn.log').read_text()}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200 and len(worker_pids(process.pid)) == workers:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.3)
    process.terminate()
    raise RuntimeError("the server did not become healthy within 120 s")


def main(args: argparse.Namespace) -> int:
    import requests

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server we started on kill, too
    process = None
    home = Path(tempfile.mkdtemp(prefix="byom-load-"))
    if args.url:
        if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
            print("error: the load test only runs against loopback addresses", file=sys.stderr)
            return 2
        base_url = args.url.rstrip("/")
    else:
        process, base_url = start_server(args.workers, args.threads, home)
    try:
        url = base_url + args.route
        body = request_body(args.picture, args.size)
        for _ in range(6):  # every worker warm (each has its own models)
            warm = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
            warm.raise_for_status()
            if warm.json().get("warnings"):
                print(
                    f"error: the endpoint is not complete: {warm.json()['warnings']} (set BYOM_MODEL_DIR)",
                    file=sys.stderr,
                )
                return 2
        pids = worker_pids(process.pid) if process is not None else []
        levels = []
        for clients in (int(c) for c in args.clients.split(",")):
            cpu_before = cpu_seconds(pids)
            level = run_level(url, body, clients, args.requests, args.max_seconds, args.new_connections)
            if pids:
                level.server_cpu_ms_per_request = round((cpu_seconds(pids) - cpu_before) / level.requests * 1000, 1)
                level.server_cores_busy = round((cpu_seconds(pids) - cpu_before) / level.seconds, 2)
            levels.append(level)
            if not args.json:
                print(
                    f"{level.clients} client(s): {level.throughput_rps:6.2f} req/s  p50 {level.p50_ms:7.1f} ms  "
                    f"p95 {level.p95_ms:7.1f} ms  p99 {level.p99_ms:7.1f} ms  "
                    f"({level.requests} requests, {level.errors} errors, {level.seconds} s; server CPU "
                    f"{level.server_cpu_ms_per_request} ms/request, {level.server_cores_busy} cores busy)",
                    file=sys.stderr,
                )
        memory = None
        if process is not None and args.memory_requests > 0:
            rounds = [rss_mib(pids)]
            per_round = max(1, args.memory_requests // 3)
            for _ in range(3):
                run_level(url, body, 2, per_round, args.max_seconds * 3, args.new_connections)
                rounds.append(rss_mib(pids))
            memory = {
                "workers": len(pids),
                "requests_per_round": per_round,
                "rss_mib_after_each_round": rounds,
                "growth_first_round_mib": round(rounds[1] - rounds[0], 1),
                "growth_later_rounds_mib": round(rounds[-1] - rounds[1], 1),
            }
            if not args.json:
                print(
                    f"memory (RSS of {len(pids)} workers, MiB) after warm-up and each of 3 rounds of {per_round} "
                    f"requests: {rounds}",
                    file=sys.stderr,
                )
        by_clients = {level.clients: level for level in levels}
        scaling = None
        if 1 in by_clients and 2 in by_clients and by_clients[1].throughput_rps > 0:
            scaling = round(by_clients[2].throughput_rps / by_clients[1].throughput_rps, 2)
            if not args.json:
                print(f"scaling 2 clients / 1 client: {scaling}x (target >= 1.7x)", file=sys.stderr)
        report = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "route": args.route,
            "picture": f"{args.picture} {args.size} px JPEG, {len(body)} byte body",
            "connections": "new per request" if args.new_connections else "keep-alive",
            "workers": args.workers if process is not None else None,
            "levels": [asdict(level) for level in levels],
            "scaling_2_over_1": scaling,
            "memory": memory,
        }
        if args.json:
            print(json.dumps(report, indent=2))
        return 0 if all(level.errors == 0 for level in levels) else 1
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
