"""Probes for the load balancer and the orchestrator; left out of the OpenAPI spec.

- `GET /healthz`: the process answers (liveness); no I/O, so a slow database never gets workers killed.
- `GET /readyz`: this worker can serve (readiness): the database answers, Redis answers when
  REDIS_URL is set, and the database's Alembic revision is the code's head (a worker of a new release
  waits until the migrations have run). 200 or 503, with each check's outcome.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import redis
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.db import bound_database


@cache
def code_heads() -> frozenset[str]:
    """The Alembic head revisions of this release's migrations (read once per process)."""
    from alembic.script import ScriptDirectory

    from app.cli import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def _database_check(app: Flask) -> tuple[dict[str, Any], dict[str, Any]]:
    """The database's reachability, and whether its schema is at the code's head."""
    try:
        with bound_database(app).engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            try:
                applied = set(connection.scalars(text("SELECT version_num FROM alembic_version")))
            except SQLAlchemyError:
                applied = set()
    except SQLAlchemyError as error:
        failed = {"ok": False, "error": type(getattr(error, "orig", None) or error).__name__}
        return failed, {"ok": False, "error": "database unreachable"}
    heads = code_heads()
    migrations: dict[str, Any] = {"ok": applied == heads, "database": sorted(applied), "code": sorted(heads)}
    return {"ok": True}, migrations


def _redis_check(client: redis.Redis) -> dict[str, Any]:
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True}


def register_health(app: Flask) -> None:
    def healthz() -> ResponseReturnValue:
        return jsonify({"status": "ok"})

    def readyz() -> ResponseReturnValue:
        database, migrations = _database_check(app)
        checks = {"database": database, "migrations": migrations}
        redis_client = app.extensions["mallmember"].redis
        if redis_client is not None:
            checks["redis"] = _redis_check(redis_client)
        ready = all(check["ok"] for check in checks.values())
        return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), (
            200 if ready else 503
        )

    app.add_url_rule("/healthz", "healthz", healthz, methods=["GET"])
    app.add_url_rule("/readyz", "readyz", readyz, methods=["GET"])
