"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py wsgi:app` (what `make serve`,
`scripts/serve.py` and the Docker image run). Every value can be changed through the environment.

The model: WEB_CONCURRENCY processes (default 2 per CPU, at least 2), each with WEB_THREADS threads
(gthread workers). A request spends most of its time waiting on MySQL, Redis or WeChat, so threads
overlap those waits at a small memory cost, while processes use the CPUs. Each process holds its own
database pool (DB_POOL_SIZE + DB_MAX_OVERFLOW): keep that at least WEB_THREADS, and the sum over all
processes and machines under MySQL's max_connections.

The app is loaded once in the master and forked (preload_app): workers start fast and share memory,
and a broken release fails at start, not in every worker. Nothing connects at import (the engine's
pool is empty until a request), and `post_fork` forgets any connection the master made anyway.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from typing import Any


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


bind = os.environ.get("BIND", f"0.0.0.0:{_int('PORT', 8000)}")
workers = _int("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = _int("WEB_THREADS", 8)
preload_app = True
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new connections
# over them. On one shared socket the worker that wakes first takes them all: a load balancer's or
# a benchmark's burst of keep-alive connections then sat on one worker for good, which used one core
# of two (its GIL) while the others idled. The catch: another server started on the same port with
# SO_REUSEPORT (a stale gunicorn of the same user) silently gets a share of the connections instead of
# failing to bind, and a worker that stops (recycled, see max_requests) resets the connections still in
# its own backlog unless the kernel hands them over (net.ipv4.tcp_migrate_req=1, Linux 5.14+).
# WEB_REUSE_PORT=0 goes back to the shared socket.
reuse_port = _int("WEB_REUSE_PORT", 1) == 1

# A worker silent for this long is killed and replaced (a stuck request); keep it above the slowest
# legitimate request (an Excel export of 10,000 rows, a WeChat call's HTTP_TIMEOUT_SECONDS x retries).
timeout = _int("WEB_TIMEOUT_SECONDS", 60)
# On SIGTERM, workers stop accepting and get this long to finish their requests.
graceful_timeout = _int("WEB_GRACEFUL_TIMEOUT_SECONDS", 30)
# Keep-alive behind a load balancer: longer than nothing, shorter than the balancer's idle timeout.
keepalive = _int("WEB_KEEPALIVE_SECONDS", 5)
# Recycle each worker after about this many requests (jittered, so they do not all restart at once):
# bounds any slow memory growth. 0 turns it off.
max_requests = _int("WEB_MAX_REQUESTS", 5000)
max_requests_jitter = _int("WEB_MAX_REQUESTS_JITTER", 500)

# The app writes one access line per request itself (logger `app.access`, with the request id and
# duration, JSON under LOG_FORMAT=json), so gunicorn's own access log stays off.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# Behind TRUSTED_PROXY_COUNT proxies the app reads X-Forwarded-* itself (werkzeug's ProxyFix);
# gunicorn must pass them through from any peer for that.
forwarded_allow_ips = "*" if _int("TRUSTED_PROXY_COUNT", 0) > 0 else "127.0.0.1"

if os.environ.get("LOG_FORMAT", "json" if os.environ.get("APP_ENV") == "production" else "text") == "json":
    logconfig_dict: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.log_format.JsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
        },
        "root": {"level": loglevel.upper(), "handlers": ["stderr"]},
        "loggers": {"gunicorn.error": {"level": loglevel.upper(), "handlers": [], "propagate": True}},
    }


def when_ready(server: Any) -> None:
    """The preloaded app's objects (modules, mappers, the OpenAPI spec: ~200,000 of them) move to the
    collector's permanent generation before any worker is forked. Otherwise every full collection
    in a worker walks them all, holding the GIL for 130-170 ms (measured in the earn benchmark's
    workers) while every request of that worker waits, and writes to their pages, so a worker's
    memory stops being shared with the master's. The workers inherit the frozen heap."""
    gc.collect()
    gc.freeze()


def post_fork(server: Any, worker: Any) -> None:
    """A forked worker must not share the master's database connections."""
    from app.db import bound_database
    from wsgi import app

    bound_database(app).dispose(close=False)


def child_exit(server: Any, worker: Any) -> None:
    """A gone worker's metric files are merged into the totals and no longer counted as live."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
