"""Prometheus metrics, served at /metrics.

Under gunicorn every worker is its own process: with PROMETHEUS_MULTIPROC_DIR set (an empty directory
the workers share; `scripts/serve.py` makes it), each writes its samples there and a scrape of any
worker adds them all up (`gunicorn.conf.py` marks dead workers' files). Without it, /metrics shows the
answering process only, which is right for a single process (`make run`, tests).

The scheduler is another process: its job durations are served by `flask scheduler` itself on
SCHEDULER_METRICS_PORT, or land in the same directory when it shares one with the API.

/metrics answers a bearer of METRICS_TOKEN, or a scraper in METRICS_ALLOWED_NETWORKS (the address as
seen after TRUSTED_PROXY_COUNT proxies); anyone else gets 403. It is left out of the OpenAPI spec.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from ipaddress import ip_address
from typing import Any

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from app.errors import Forbidden

REQUEST_SECONDS = Histogram(
    "mallmember_http_request_duration_seconds",
    "Time to answer an HTTP request, by endpoint (the URL rule, not the raw path), method and status.",
    ["endpoint", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOB_SECONDS = Histogram(
    "mallmember_job_duration_seconds",
    "Time a scheduled job's run took, by job and outcome (ok or error).",
    ["job", "outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200),
)
TOKEN_REFRESHES = Counter(
    "mallmember_token_refreshes_total",
    "Access tokens fetched from WeChat or WeCom (a first fetch, an expiry or a rejected token).",
    ["dependency"],
)
DEPENDENCY_ERRORS = Counter(
    "mallmember_dependency_errors_total",
    "Failed calls to WeChat, WeCom and the car park, by dependency and code: the errcode or the car "
    "park's code, http_<status>, timeout or connection.",
    ["dependency", "code"],
)

# The endpoint label of a request no URL rule matched (a 404): raw paths would be unbounded.
UNMATCHED = "<unmatched>"


def observe_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    REQUEST_SECONDS.labels(endpoint, method, str(status)).observe(seconds)


def dependency_error(dependency: str, code: object) -> None:
    DEPENDENCY_ERRORS.labels(dependency, str(code)).inc()


def token_refreshed(dependency: str) -> None:
    TOKEN_REFRESHES.labels(dependency).inc()


class MetricsForbidden(Forbidden):
    code, message = "METRICS_FORBIDDEN", "无权读取监控指标"


class _OutboxBacklog(Collector):
    """WeCom messages waiting to be sent (pending or to be retried), counted at scrape time."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from app.db import transaction
        from app.services import push

        gauge = GaugeMetricFamily(
            "mallmember_outbox_backlog", "WeCom messages due or waiting for a retry (wecom_outbox)."
        )
        try:
            with transaction(self.app) as session:
                gauge.add_metric([], push.backlog(session))
        except SQLAlchemyError:
            return  # the database is down: /readyz says so; the series goes missing meanwhile
        yield gauge


def register_metrics(app: Flask) -> None:
    config = app.extensions["mallmember"].config
    networks = config.metrics_networks()

    def metrics() -> Response:
        if not _may_scrape(config.METRICS_TOKEN, networks):
            raise MetricsForbidden()
        registry = CollectorRegistry()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = _ProcessRegistry()
        registry.register(_OutboxBacklog(app))
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", metrics, methods=["GET"])


class _ProcessRegistry(CollectorRegistry):
    """This process's default registry plus collectors added for one scrape."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()
        yield from super().collect()


def _may_scrape(token: str, networks: tuple[Any, ...]) -> bool:
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    try:
        address = ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in networks)
