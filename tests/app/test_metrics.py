"""/metrics in Prometheus' text format: request latency by URL rule and status, token refreshes,
dependency errors, the outbox backlog; open to METRICS_TOKEN's bearer and the allowed networks only.

The counters live for the whole test process, so each test compares before and after."""

from __future__ import annotations

from datetime import date

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from app import create_app
from app.config import Config
from app.db import utcnow
from app.models import OutboxKind, OutboxStatus, WeComOutboxMessage
from app.sandbox import SandboxProcess
from tests.flows import shopper_login

TOKEN = "scrape-token-0123456789"


def samples(client: FlaskClient, **headers: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(seen: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return seen.get((name, frozenset(labels.items())), 0.0)


def test_a_request_is_counted_under_its_url_rule_and_status(client: FlaskClient) -> None:
    series = "mallmember_http_request_duration_seconds_count"
    rule = {"endpoint": "/api/admin/v1/qr-scenes/<int:scene_id>/image", "method": "GET", "status": "401"}
    before = samples(client)

    assert client.get("/api/admin/v1/qr-scenes/7/image").status_code == 401
    assert client.get("/api/admin/v1/qr-scenes/8/image").status_code == 401
    assert client.get("/no/such/page/13800138000").status_code == 404

    after = samples(client)
    assert value(after, series, **rule) == value(before, series, **rule) + 2
    unmatched = {"endpoint": "<unmatched>", "method": "GET", "status": "404"}
    assert value(after, series, **unmatched) == value(before, series, **unmatched) + 1
    assert not any("13800138000" in str(labels) for _, labels in after)
    buckets = [key for key in after if key[0] == "mallmember_http_request_duration_seconds_bucket"]
    assert any(("endpoint", rule["endpoint"]) in labels for _, labels in buckets)


def test_token_refreshes_and_dependency_errors_are_counted(
    client: FlaskClient, sandbox: SandboxProcess
) -> None:
    before = samples(client)

    shopper_login(client, "o-metrics")  # jscode2session needs no token
    sandbox.inject_fault("wechat", "/sns/jscode2session", 45011, "api minute-quota reach limit")
    limited = client.post("/api/mp/v1/auth/login", json={"code": "sandbox:o-metrics"})
    sandbox.inject_fault("wechat", "/sns/jscode2session", -1, "system error", http_status=502)
    failed = client.post("/api/mp/v1/auth/login", json={"code": "sandbox:o-metrics"})

    assert limited.status_code == 503 and failed.status_code == 503
    after = samples(client)
    errors = "mallmember_dependency_errors_total"
    for code in ("45011", "http_502"):
        assert value(after, errors, dependency="wechat", code=code) == (
            value(before, errors, dependency="wechat", code=code) + 1
        )


def test_a_token_fetch_is_counted(app: Flask) -> None:
    client = app.test_client()
    before = samples(client)

    with app.app_context():
        from app.extensions import extensions

        extensions().wecom.send_text(["advisor01"], "你好")
        extensions().wecom.send_text(["advisor01"], "再见")  # the token is reused

    refreshes = "mallmember_token_refreshes_total"
    assert value(samples(client), refreshes, dependency="wecom") == (
        value(before, refreshes, dependency="wecom") + 1
    )


def test_car_park_errors_are_counted_by_code(client: FlaskClient, app: Flask) -> None:
    before = samples(client)

    with app.app_context():
        from app.extensions import extensions

        assert extensions().carpark.payment_state("never-sent").value == "not_found"

    errors = "mallmember_dependency_errors_total"
    assert value(samples(client), errors, dependency="carpark", code="2004") == (
        value(before, errors, dependency="carpark", code="2004") + 1
    )


def test_the_outbox_backlog_is_counted_at_scrape_time(client: FlaskClient, session: Session) -> None:
    for number, status in enumerate(
        [OutboxStatus.PENDING, OutboxStatus.FAILED, OutboxStatus.SENT, OutboxStatus.DEAD]
    ):
        session.add(
            WeComOutboxMessage(
                dedupe_key=f"backlog-{number}",
                kind=OutboxKind.DIGEST,
                business_date=date(2026, 5, 1),
                touser="advisor01",
                payload={"msgtype": "text", "text": {"content": "x"}},
                status=status,
                next_attempt_at=utcnow(),
            )
        )
    session.commit()

    assert value(samples(client), "mallmember_outbox_backlog") == 2


def test_metrics_are_refused_to_other_addresses_without_the_token(config: Config) -> None:
    client = create_app(config.with_overrides(METRICS_TOKEN=TOKEN)).test_client()
    outsider = {"REMOTE_ADDR": "203.0.113.9"}

    refused = client.get("/metrics", environ_base=outsider)
    wrong = client.get("/metrics", environ_base=outsider, headers={"Authorization": "Bearer nope"})
    bearer = client.get("/metrics", environ_base=outsider, headers={"Authorization": f"Bearer {TOKEN}"})
    local = client.get("/metrics")

    assert refused.status_code == 403 and refused.get_json()["code"] == "METRICS_FORBIDDEN"
    assert wrong.status_code == 403
    assert bearer.status_code == 200 and b"mallmember_http_request_duration_seconds" in bearer.data
    assert local.status_code == 200


def test_behind_trusted_proxies_the_forwarded_address_decides(config: Config) -> None:
    allowed = {"METRICS_ALLOWED_NETWORKS": "10.0.0.0/8"}
    direct = create_app(config.with_overrides(**allowed)).test_client()
    proxied = create_app(config.with_overrides(TRUSTED_PROXY_COUNT=1, **allowed)).test_client()
    from_lb = {"environ_base": {"REMOTE_ADDR": "192.0.2.1"}}

    # Without trusted proxies a forged header counts for nothing: the peer is the load balancer.
    assert direct.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"}, **from_lb).status_code == 403
    assert proxied.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"}, **from_lb).status_code == 200
    assert proxied.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"}, **from_lb).status_code == 403
    # Only the hops of trusted proxies: a client's own X-Forwarded-For entry further left is ignored.
    spoofed = {"X-Forwarded-For": "10.1.2.3, 198.51.100.7"}
    assert proxied.get("/metrics", headers=spoofed, **from_lb).status_code == 403


def test_behind_trusted_proxies_urls_take_the_forwarded_scheme_and_host(config: Config) -> None:
    app = create_app(config.with_overrides(TRUSTED_PROXY_COUNT=1))

    @app.get("/whereami")
    def whereami() -> dict[str, str]:
        from flask import request

        return {"url": request.url, "remote_addr": str(request.remote_addr)}

    seen = (
        app.test_client()
        .get(
            "/whereami",
            headers={
                "X-Forwarded-For": "198.51.100.7",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "member.example.com",
            },
        )
        .get_json()
    )

    assert seen == {"url": "https://member.example.com/whereami", "remote_addr": "198.51.100.7"}


def test_job_runs_are_timed_by_job_and_outcome(app: Flask, client: FlaskClient) -> None:
    from app import jobs

    series = "mallmember_job_duration_seconds_count"
    before = value(samples(client), series, job="purge-pos-nonces", outcome="ok")

    jobs.run_job(app, "purge-pos-nonces")

    assert value(samples(client), series, job="purge-pos-nonces", outcome="ok") == before + 1
