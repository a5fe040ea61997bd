"""gunicorn settings for CPU-bound inference; `python run.py serve` passes the values in env.

Why these choices (measured with `python -m bench.load` on 2 cores; numbers in README "Production"):
- Processes give the parallelism: every model runs under its own lock and the Python around it holds
  the GIL, so one worker process uses about one core. Default: 2 workers, one per core here
  (`--workers` = the number of cores elsewhere).
- One request at a time per worker (the "sync" worker class, `--threads 1`): a busy worker is not
  waiting on the listening socket, so the kernel hands each new connection to an idle worker.
- OpenCV runs with the worker's share of the cores (`BYOM_OPENCV_THREADS`, default cores/workers = 1
  here), so one request uses one core and two requests use both. Measured on 2 cores, default
  endpoint, 512 px JPEG: 6.1 req/s at 1 client, 11.1-11.6 at 2 (1.83-1.87x), ~11.3 at 4 and 8.
  The former setting (4 threads per worker, OpenCV on 2 threads) answered a lone request faster
  (p50 118 ms against 162 ms) but scaled only 1.32-1.39x from 1 to 2 clients: a lone request already
  used 1.4 cores, and with threads two requests often land on the same worker. For one user clicking
  Auto-Annotate at a time, `BYOM_OPENCV_THREADS=2` gives that lower latency back.
- Slow image URLs hold a sync worker for at most BYOM_URL_TIMEOUT (10 s); `--threads N` (gthread)
  keeps a worker serving meanwhile, at the cost of the even spreading above.
- Every worker loads its own models after the fork (no `preload_app`: MediaPipe graphs own threads
  and native state that must not cross a fork) and runs each once (BYOM_PRELOAD_MODELS, on by
  default) before taking requests, so V7's first request does not pay the warm-up.
- `timeout` (60 s) is above V7's 30 s: a sync worker stuck longer on one request is killed and
  replaced; `graceful_timeout` lets in-flight requests finish on SIGHUP (reload) and SIGTERM (stop).
- `max_requests` (with jitter, so workers do not restart together) recycles workers now and then:
  slow leaks in native code cannot build up; the replacement warms up before it takes requests.
- No keep-alive and no request buffering in a sync worker: put nginx in front when exposed (it
  buffers slow clients and keeps their connections alive; deploy/nginx/byom.conf).
- Metrics: prometheus_client's multiprocess mode needs PROMETHEUS_MULTIPROC_DIR before any worker
  imports it. Unless set, this file creates a private temporary folder, wipes stale files at start,
  tells prometheus_client when a worker exits (child_exit) and removes the folder at exit.
"""

import glob
import ipaddress
import os
import shutil
import tempfile

bind = os.environ.get("BYOM_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("BYOM_WORKERS", "2"))
threads = int(os.environ.get("BYOM_THREADS", "1"))
#: One request at a time per worker ("sync"): a busy worker is not waiting on the socket, so the
#: kernel hands the next connection to an idle one. Threads (gthread) are for slow image URLs.
worker_class = "gthread" if threads > 1 else "sync"
#: gthread only: at most this many connections per worker (working + kept alive), so that one
#: worker does not queue connections while another one idles.
worker_connections = 2 * threads
#: Threads OpenCV may use inside one request: the worker's share of the cores (1 with one worker per
#: core), so that concurrent requests in several workers do not fight over the same cores.
_opencv_threads = int(os.environ.get("BYOM_OPENCV_THREADS") or max(1, (os.cpu_count() or 1) // workers))
timeout = int(os.environ.get("BYOM_WORKER_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 5
max_requests = int(os.environ.get("BYOM_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
loglevel = os.environ.get("BYOM_LOG_LEVEL", "info")
errorlog = "-"
accesslog = None  # the app logs one structured line per request itself (server/observability.py)
#: gunicorn's control socket lives at one fixed path per user: several servers would fight over it.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("BYOM_FORWARDED_ALLOW_IPS", "127.0.0.1")

#: Set when this file created the metrics folder (so it removes it at exit; a reload keeps it).
_CREATED_METRICS_DIR = "BYOM_CREATED_METRICS_DIR"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="byom-metrics-")
    os.environ[_CREATED_METRICS_DIR] = os.environ["PROMETHEUS_MULTIPROC_DIR"]


def on_starting(server):
    """Counters start from zero: values of an earlier run in the same folder are wiped."""
    for path in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.unlink(path)


def when_ready(server):
    if os.environ.get("BYOM_OPEN_WARNING_SHOWN"):
        return
    if os.environ.get("BYOM_BASIC_AUTH") or os.environ.get("BYOM_AUTH_SECRET"):
        return
    exposed = [str(listener) for listener in server.LISTENERS if _is_exposed(listener)]
    if exposed:
        server.log.warning(
            "WARNING: listening on %s with NO authentication: anyone who can reach it can use the models. "
            "Set BYOM_BASIC_AUTH=USER:PASSWORD or BYOM_AUTH_HEADER + BYOM_AUTH_SECRET.",
            ", ".join(exposed),
        )


def _is_exposed(listener) -> bool:
    address = listener.sock.getsockname()
    if not isinstance(address, tuple):  # a unix socket: reachable through whatever proxies it
        return False
    try:
        return not ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return True


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    created = os.environ.get(_CREATED_METRICS_DIR)
    if created and created == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(created, ignore_errors=True)


def post_fork(server, worker):
    """Runs in each new worker, before it imports the app."""
    import cv2

    cv2.setNumThreads(_opencv_threads)


def worker_exit(server, worker):
    """Close the worker's models while it still can: MediaPipe tasks left to exit print tracebacks."""
    from models.registry import ModelRegistry

    ModelRegistry.close_all()
