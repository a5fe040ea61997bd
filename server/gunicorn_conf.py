"""gunicorn settings for CPU-bound inference; `python run.py serve` passes the values in env.

Why these choices:
- One worker process per core: inference is CPU-bound, and the GIL lets one process use one
  core for Python work. Each worker loads its own copy of the models (no preload: MediaPipe
  task objects must not cross a fork).
- A few threads per worker (gthread): while one request waits on a slow image download,
  another can run; the models themselves are guarded by locks.
- timeout above V7's 30 s deadline so that gunicorn only kills truly stuck workers;
  graceful_timeout lets in-flight requests finish on restart (SIGHUP) or stop (SIGTERM).
- max_requests with jitter recycles workers now and then, so slow leaks in native code
  cannot accumulate.
"""

import os

bind = os.environ.get("BYOM_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("BYOM_WORKERS", "2"))
threads = int(os.environ.get("BYOM_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("BYOM_WORKER_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 5
max_requests = int(os.environ.get("BYOM_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
loglevel = os.environ.get("BYOM_LOG_LEVEL", "info")
errorlog = "-"
accesslog = None  # the app logs one structured line per request itself
#: gunicorn's control socket lives at one fixed path per user: several servers would fight over it.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("BYOM_FORWARDED_ALLOW_IPS", "127.0.0.1")
