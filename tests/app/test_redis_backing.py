"""With REDIS_URL set, access tokens and login throttling are shared by every worker."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app import create_app
from app.config import Config
from app.extensions import extensions
from app.sandbox import SandboxProcess
from tests import factories


def test_workers_share_one_wechat_access_token(
    app: Flask, redis_config: Config, sandbox: SandboxProcess
) -> None:
    for worker in (create_app(redis_config), create_app(redis_config)):
        with worker.app_context():
            extensions().wechat.send_subscribe_message("o-member", "tmpl", {"thing1": {"value": "hi"}})

    token_fetches = [r for r in sandbox.requests("wechat") if r["path"] == "/cgi-bin/stable_token"]
    assert len(token_fetches) == 1
    assert len(sandbox.messages("wechat")) == 2


def test_login_failures_are_counted_across_workers(
    app: Flask, redis_config: Config, session: Session
) -> None:
    factories.create_operator(session, "ops", "correct-horse")
    session.commit()

    for _ in range(redis_config.ADMIN_LOGIN_MAX_FAILURES):
        worker = create_app(redis_config).test_client()
        worker.post("/api/admin/v1/auth/login", json={"username": "ops", "password": "guess"})
    response = (
        create_app(redis_config)
        .test_client()
        .post("/api/admin/v1/auth/login", json={"username": "ops", "password": "correct-horse"})
    )

    assert response.status_code == 429


def test_logins_fail_open_with_a_warning_when_redis_is_down(
    app: Flask, config: Config, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    factories.create_operator(session, "ops", "correct-horse")
    session.commit()
    worker = create_app(config.with_overrides(REDIS_URL="redis://127.0.0.1:1/0")).test_client()

    wrong = worker.post("/api/admin/v1/auth/login", json={"username": "ops", "password": "guess"})
    right = worker.post("/api/admin/v1/auth/login", json={"username": "ops", "password": "correct-horse"})

    assert wrong.status_code == 401 and wrong.get_json()["code"] == "LOGIN_FAILED"
    assert right.status_code == 200 and right.get_json()["token"]
    assert "login throttle storage unreachable" in caplog.text
