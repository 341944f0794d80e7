"""LOG_FORMAT=json: every line a process logs is one JSON object with the request's id, method, path
and, on the access line, status and duration; phones, tokens and openids are masked as in text lines.

The app is built in a child process, as gunicorn builds it: outside tests, with the logging it sets up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from app.config import PROJECT_ROOT, Config

OPENID = "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"
PHONE = "13812345678"
TOKEN = "eyJzdWIiOjF9.Z0S1bw.N3T7kMbXq0hVt2cZ9pW8sJ4rL1o"

CHILD = f"""
import logging
from flask import request
from app import create_app

app = create_app()

@app.get("/chatty/<path:rest>")
def chatty(rest):
    logging.getLogger("app.chatty").warning(
        "member %s openid %s sent %s", "{PHONE}", "{OPENID}", request.headers["Authorization"]
    )
    return {{"ok": True}}

client = app.test_client()
client.get("/chatty/{PHONE}", headers={{"X-Request-Id": "req-json-1", "Authorization": "Bearer {TOKEN}"}})
response = client.get("/api/nowhere")
print("GENERATED", response.headers["X-Request-Id"], flush=True)
logging.getLogger("app.outside").info("no request here")
"""


def run_child(config: Config, **env: str) -> tuple[list[dict[str, Any]], str]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=PROJECT_ROOT,
        env={
            **{name: value for name, value in os.environ.items() if name not in {"LOG_FORMAT", "APP_ENV"}},
            "DATABASE_URL": config.DATABASE_URL,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    generated = result.stdout.split("GENERATED", 1)[1].split()[0]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return [json.loads(line) for line in lines], generated


def test_json_lines_carry_the_request_fields_and_are_masked(config: Config) -> None:
    entries, generated = run_child(config, LOG_FORMAT="json")

    chatty, chatty_access, missing_access, outside = entries
    assert set(chatty) == {"time", "level", "logger", "message", "request_id", "method", "path"}
    assert chatty["time"].endswith("Z") and chatty["level"] == "WARNING" and chatty["logger"] == "app.chatty"
    assert chatty["request_id"] == "req-json-1" and chatty["method"] == "GET"
    assert chatty["message"] == "member 138****5678 openid [openid] sent Bearer ***"
    assert chatty["path"] == "/chatty/138****5678"

    assert chatty_access["logger"] == "app.access" and chatty_access["level"] == "INFO"
    assert chatty_access["request_id"] == "req-json-1"
    assert chatty_access["status"] == 200 and isinstance(chatty_access["duration_ms"], float)
    assert set(chatty_access) == {*chatty, "status", "duration_ms"}
    assert missing_access["request_id"] == generated and missing_access["status"] == 404
    assert missing_access["path"] == "/api/nowhere"

    assert outside["logger"] == "app.outside" and "request_id" not in outside and "path" not in outside
    every_line = json.dumps(entries)
    assert PHONE not in every_line and OPENID not in every_line and TOKEN not in every_line


def test_text_lines_stay_the_default_outside_production(config: Config) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": config.DATABASE_URL, "LOG_FORMAT": "text", "APP_ENV": "dev"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "WARNING app.chatty member 138****5678 openid [openid] sent Bearer ***" in result.stderr
    assert not result.stderr.lstrip().startswith("{")
