"""Log lines mask phones, tokens, openids and secrets: the app's own warnings about a failing WeChat
call, the HTTP client's request lines (the WeChat secret rides in a query string), tracebacks of an
unexpected error, and the access logs of werkzeug and gunicorn for a URL that carries a token."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from app.config import PROJECT_ROOT, Config
from app.log_masking import mask
from app.sandbox import SandboxProcess
from tests.flows import bearer, shopper_login, sign_up
from tests.network import free_port

# WeChat's shape: 28 characters of [A-Za-z0-9_-] starting with "o".
OPENID = "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"
PHONE = "13812345678"
WECHAT_SECRET = Config.from_env({}).WECHAT_SECRET


def assert_masked(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} in the log:\n{text}"


def test_logging_in_logs_the_wechat_request_without_the_secret_code_or_openid(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    token = shopper_login(client, OPENID)["token"]

    request_lines = [line for line in caplog.messages if "jscode2session" in line]
    assert request_lines, caplog.text  # urllib3 logs each request line, query string and all
    assert "secret=***" in request_lines[0] and "js_code=***" in request_lines[0]
    assert_masked(caplog.text, WECHAT_SECRET, OPENID, token)


def test_a_failing_wechat_call_is_logged_with_the_phone_and_openid_masked(
    client: FlaskClient, sandbox: SandboxProcess, caplog: pytest.LogCaptureFixture
) -> None:
    token = shopper_login(client, OPENID)["token"]
    sandbox.inject_fault(
        "wechat",
        "/wxa/business/getuserphonenumber",
        -1,
        f"system error: phone {PHONE} of openid {OPENID}, session_key=c2Vzc2lvbi1rZXk= hints: [rid: 1]",
    )
    caplog.set_level(logging.DEBUG)

    response = sign_up(client, token, PHONE)

    assert response.status_code == 503
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert any("errcode=-1" in record.getMessage() for record in warnings), caplog.text
    assert "138****5678" in caplog.text and "[openid]" in caplog.text and "session_key=***" in caplog.text
    assert "access_token=***" in caplog.text  # the phone-number call's URL
    assert_masked(caplog.text, PHONE, OPENID, "c2Vzc2lvbi1rZXk=", token)


def test_the_traceback_of_an_unexpected_error_is_masked(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    def explodes() -> str:
        raise RuntimeError(f"member {PHONE} with {token} and openid={OPENID}")

    app.add_url_rule("/explodes", view_func=explodes)
    token = shopper_login(client, OPENID)["token"]
    caplog.set_level(logging.INFO)

    response = client.get("/explodes")

    assert response.status_code == 500 and response.get_json()["code"]
    [record] = [record for record in caplog.records if record.exc_info]
    assert (
        "Traceback" in record.exc_text and "RuntimeError: member 138****5678 with [token]" in record.exc_text
    )
    assert "RuntimeError: member 138****5678" in caplog.text
    assert_masked(caplog.text, PHONE, token, OPENID)


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app behind werkzeug's own HTTP server (which writes the access log), on a free port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def test_werkzeug_access_log_masks_tokens_and_phones_in_the_url(
    client: FlaskClient, served: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = shopper_login(client, OPENID)["token"]
    caplog.set_level(logging.INFO)

    query = requests.get(f"{served}/api/mp/v1/me?access_token={token}&phone={PHONE}", timeout=5)
    path = requests.get(f"{served}/api/mp/v1/coupons/{token}/{PHONE}", headers=bearer(token), timeout=5)

    assert query.status_code == 401 and path.status_code == 404
    access = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert len(access) == 2, caplog.text
    assert "access_token=***&phone=138****5678" in access[0]
    assert "/coupons/[token]/138****5678" in access[1]
    assert_masked(caplog.text, token, PHONE)


def test_gunicorn_access_log_masks_tokens_and_phones_in_the_url(config: Config) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": config.DATABASE_URL,
        "WECHAT_API_BASE": config.WECHAT_API_BASE,
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            f"--bind=127.0.0.1:{port}",
            "--workers=1",
            "--access-logfile=-",
            "--no-control-socket",
            "wsgi:app",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    token = "eyJzdWIiOjF9.Z0S1bw.N3T7kMbXq0hVt2cZ9pW8sJ4rL1o"
    try:
        url = f"http://127.0.0.1:{port}/api/mp/v1/me?access_token={token}&openid={OPENID}&phone={PHONE}"
        for _ in range(300):
            try:
                # Generous: the worker imports the app after the port opens, on a busy machine.
                response = requests.get(url, headers=bearer(token), timeout=60)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("gunicorn did not start")
        assert response.status_code == 401
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    # gunicorn's own access line (the app's, `app.access`, carries the path without the query string).
    lines = output.splitlines()
    access = [line for line in lines if "GET /api/mp/v1/me" in line and "app.access" not in line]
    assert access, output
    assert "access_token=***&openid=***&phone=138****5678" in access[0]
    assert_masked(output, token, PHONE, OPENID)


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("GET /x?access_token=BqX9 HTTP/1.1", "GET /x?access_token=*** HTTP/1.1"),
        ("GET /x?access_token=bqX9&y=1", "GET /x?access_token=***&y=1"),
        ("{'session_key': b'c2Vz'}", "{'session_key': b'***'}"),
        ('{"secret": "Bob"}', '{"secret": "***"}'),
    ],
)
def test_a_value_is_masked_whole_whatever_letter_it_starts_with(line: str, masked: str) -> None:
    # The token in the URL is random: one that started with "B" kept its first letter.
    assert mask(line) == masked
