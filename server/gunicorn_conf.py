"""gunicorn settings for CPU-bound inference; `python run.py serve` passes the values in env.

Why these choices (measured with `python -m bench.load` on 2 cores; numbers in README "Production"):
- Processes, not threads, give parallelism: the models run under a lock each, and the Python around
  them holds the GIL, so one worker process uses about one core. Default: one worker per core.
- Every worker loads its own models after the fork (no `preload_app`: MediaPipe graphs own threads
  and native state that must not cross a fork) and runs each once (BYOM_PRELOAD_MODELS, on by
  default) before taking requests, so V7's first request does not pay the warm-up.
- gthread workers with a few threads: a request waiting on a slow image.url download (up to
  BYOM_URL_TIMEOUT) holds a thread, not the whole worker, so other requests keep being served.
  `worker_connections` caps how many connections one worker takes at a time, so that under load a
  busy worker leaves new connections to an idle one instead of queueing them behind its own.
- `timeout` is above V7's 30 s: gunicorn only kills workers that are really stuck (with gthread
  the heartbeat comes from the main loop, so it does not fire on a long request);
  `graceful_timeout` lets in-flight requests finish on SIGHUP (reload) and SIGTERM (stop).
- `max_requests` (with jitter, so workers do not restart together) recycles workers now and then:
  slow leaks in native code cannot build up; the replacement warms up before it takes requests.
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
threads = int(os.environ.get("BYOM_THREADS", "4"))
worker_class = "gthread"
worker_connections = int(os.environ.get("BYOM_WORKER_CONNECTIONS", str(threads)))
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
    n = os.environ.get("BYOM_CV_THREADS")
    if n:
        import cv2

        cv2.setNumThreads(int(n))
