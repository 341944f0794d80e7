"""Probes: /healthz says the process answers, /readyz whether it can serve (database, Redis,
migrations at head), each check listed; neither appears in the OpenAPI spec."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from app import create_app
from app.config import Config
from app.health import code_heads

UNREACHABLE_MYSQL = "mysql+pymysql://nobody@127.0.0.1:1/mallmember"


def test_healthz_answers_without_touching_the_database(config: Config) -> None:
    client = create_app(config.with_overrides(DATABASE_URL=UNREACHABLE_MYSQL)).test_client()

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_200_when_the_database_is_reachable_and_migrated(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["migrations"]["ok"] is True
    assert body["checks"]["migrations"]["database"] == sorted(code_heads())
    assert "redis" not in body["checks"]


def test_readyz_is_503_when_the_database_is_unreachable(config: Config) -> None:
    client = create_app(config.with_overrides(DATABASE_URL=UNREACHABLE_MYSQL)).test_client()

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["migrations"]["ok"] is False


@pytest.mark.parametrize("revision", [None, "0001"], ids=["never-migrated", "behind"])
def test_readyz_is_503_until_the_migrations_reach_the_code_head(
    config: Config, tmp_path: Path, revision: str | None
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        if revision:
            connection.execute(text("INSERT INTO alembic_version VALUES (:revision)"), {"revision": revision})
    engine.dispose()
    client = create_app(config.with_overrides(DATABASE_URL=url)).test_client()

    response = client.get("/readyz")

    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"] == {"ok": True}
    assert checks["migrations"] == {
        "ok": False,
        "database": [revision] if revision else [],
        "code": sorted(code_heads()),
    }


def test_readyz_checks_redis_when_configured(redis_config: Config) -> None:
    ready = create_app(redis_config).test_client().get("/readyz")
    down = (
        create_app(redis_config.with_overrides(REDIS_URL="redis://127.0.0.1:1/0"))
        .test_client()
        .get("/readyz")
    )

    assert ready.status_code == 200 and ready.get_json()["checks"]["redis"] == {"ok": True}
    assert down.status_code == 503
    assert down.get_json()["checks"]["redis"]["ok"] is False
    assert down.get_json()["checks"]["database"] == {"ok": True}


def test_probes_and_metrics_are_not_in_the_openapi_spec(client: FlaskClient) -> None:
    paths = client.get("/api/openapi.json").get_json()["paths"]

    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)
